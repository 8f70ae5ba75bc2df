"""AppTest: the pages on models logged with vae.track (tests/foreign_models.py), what only such a run shows: the
user's class named, the page that cannot apply stopping in one line, the Doctor's fix that cannot start, the export
of a decoder the browser cannot run, and the test images a run folder holds."""
import json
import shutil

import numpy as np
import pytest
import torch
from app_support import make_env, open_app, pick_run, plotly_values, texts
from foreign_models import ConvRGBVAE, ExamplesVAE, train_and_log
from helpers import blobs

import vae
from vae.data import load_dataset


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """Two models trained one epoch by their own loop and logged: the pytorch/examples MLP (its decoder translates
    for the browser) and the conv RGB VAE (GroupNorm, SiLU, upsampling: it does not)."""
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("logged")
    digits = load_dataset("mnist5k", max_train=256, max_test=100)
    ex = ExamplesVAE()
    with vae.track(root / "examples", ex, digits.test.x, labels=digits.test.y, output="probs") as lab:
        train_and_log(lab, ex, digits.train.x.float().view(-1, 784) / 255, epochs=1)
    data = blobs(96, side=16, channels=3, classes=2)
    conv = ConvRGBVAE()
    with vae.track(root / "conv", conv, data.x[:48], labels=data.y[:48], output="logits", decode=conv.generate,
                   encode=lambda t: tuple(conv.encoder(t).flatten(1).chunk(2, dim=1))) as lab:
        train_and_log(lab, conv, data.x.float() / 255, epochs=1, batch=32)
    return root


def app_on(monkeypatch, tmp_path, logged, name, page):
    runs = make_env(monkeypatch, tmp_path)
    runs.mkdir(parents=True, exist_ok=True)
    shutil.copytree(logged / name, runs / name)
    at = open_app(page)
    return pick_run(at, name), runs / name


def test_home_and_the_sidebar_name_the_users_class(monkeypatch, tmp_path, logged):
    at, _ = app_on(monkeypatch, tmp_path, logged, "examples", None)
    assert "**examples** · 20-D latent · ExamplesVAE, your code logged with vae.track" in texts(at.markdown)
    assert any("ExamplesVAE (your code, vae.track)" in c for c in texts(at.sidebar.caption))


def test_loss_forces_says_in_one_line_that_it_cannot_apply(monkeypatch, tmp_path, logged):
    at, _ = app_on(monkeypatch, tmp_path, logged, "conv", "app_pages/loss_forces.py")
    [line] = texts(at.info)
    assert "ConvRGBVAE was logged from its own training loop with vae.track" in line and "\n" not in line
    assert not at.get("plotly_chart") and not at.button, "the page stops after its line"


def test_inside_names_the_programs_layers_not_sizes_it_does_not_know(monkeypatch, tmp_path, logged):
    at, _ = app_on(monkeypatch, tmp_path, logged, "examples", "app_pages/inside.py")
    [diagram] = [h.proto.body for h in at.get("html") if "vae-inside" in h.proto.body]
    assert "ExamplesVAE&#x27;s encode, stored as ONNX: Gemm ×3, Relu" in diagram
    assert "decode(z): probabilities" in diagram and "MLP" not in diagram
    at.segmented_control(key="inside.source").set_value("Draw one").run()
    assert any("encodes on the server only" in t for t in texts(at.info))


def test_generate_says_where_z_comes_from(monkeypatch, tmp_path, logged):
    at, _ = app_on(monkeypatch, tmp_path, logged, "conv", "app_pages/generate.py")
    assert any("z is drawn from N(0, I)" in c for c in texts(at.caption))
    assert any(c.startswith("48 samples · seed 0") for img in at.get("image") for c in img.captions)


def test_export_holds_the_programs_and_says_why_no_browser_decoder(monkeypatch, tmp_path, logged):
    import io
    import zipfile

    from vae.bundle import run_zip
    at, folder = app_on(monkeypatch, tmp_path, logged, "conv", "app_pages/latent_map.py")
    [why] = [c for c in texts(at.caption) if c.startswith("No browser decoder to export:")]
    assert "no browser layer for" in why and "Conv" in why
    assert any("holds its ONNX programs" in c for c in texts(at.caption))
    names = zipfile.ZipFile(io.BytesIO(run_zip(folder))).namelist()
    assert {"conv/encode.onnx", "conv/decode.onnx", "conv/model.safetensors", "conv/config.json"} <= set(names)
    at, _ = app_on(monkeypatch, tmp_path / "b", logged, "examples", "app_pages/latent_map.py")
    assert "Decoder for the browser (.json)" in [b.proto.label for b in at.get("download_button")]


def test_the_doctor_cannot_start_a_fix_for_a_tracked_run(logged):
    from ui import usecases_view as U
    run = vae.load_run(logged / "examples")
    finding = {"code": "posterior_collapse", "suggested_changes": {"train": {"free_bits": 0.5, "beta": 1.0}}}
    status, line = U.start_fix(run, finding)
    assert status == "error" and line.startswith("ExamplesVAE trains in its own loop") and "\n" not in line
    words = U.in_your_loop({"train": {"free_bits": 0.5, "lr": run.config.train.lr / 10}}, run.config)
    assert words == ["free bits: no KL cost for the first 0.5 nats of each latent dimension",
                     "a learning rate 10× lower"]


def test_pages_use_the_test_images_a_run_folder_holds(monkeypatch, tmp_path, logged):
    """A folder holding its own test images (test_images.safetensors): the pages show those, not a stand-in."""
    from safetensors.torch import save_file
    runs = make_env(monkeypatch, tmp_path)
    runs.mkdir(parents=True)
    shutil.copytree(logged / "conv", runs / "conv")
    data = blobs(48, side=16, channels=3, classes=2, seed=3)
    save_file({"x": data.x.contiguous(), "y": data.y.long()}, str(runs / "conv" / "test_images.safetensors"))
    at = pick_run(open_app("app_pages/reconstructions.py"), "conv")
    assert any("Mean −ELBO over 48 test images" in t for t in texts(at.markdown))
    scores = [float(c.split("·")[1].split()[0]) for c in at.get("image")[0].captions]
    assert len(scores) == 16 and np.isfinite(scores).all()
    assert not any("holds no test images" in c for c in texts(at.caption))
    (runs / "conv" / "test_images.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    at = pick_run(open_app("app_pages/reconstructions.py"), "conv")
    assert any("test images cannot be read" in c for c in texts(at.caption))
    assert not at.exception


def test_compare_puts_a_tracked_run_beside_one_vae_lab_trained(monkeypatch, tmp_path, logged):
    """The curves are the test figures VAE Lab measured at each log; the table names the user's class."""
    from ui import catalogue
    at, _ = app_on(monkeypatch, tmp_path, logged, "examples", "app_pages/compare.py")
    paths = {e.name: e.path for e in catalogue.catalogue()}
    at.multiselect(key="compare.runs").set_value([paths["examples"], paths["mnist-16d"]]).run()
    assert not at.exception
    table = at.dataframe[0].value                      # a column per run
    row = table["examples"]
    assert row["model"] == "ExamplesVAE" and row["epochs"] == "1" and row["β"] == "—"   # no β: not VAE Lab's
    curves = at.get("plotly_chart")[0].proto.spec
    traces = [t for t in json.loads(curves)["data"] if t.get("name") == "examples"]
    run = vae.load_run(logged / "examples")
    assert traces and [round(float(v), 3) for v in plotly_values(traces[0]["y"])] == [
        round(e.test["neg_elbo"], 3) for e in run.metrics.history.epochs]


def test_a_tracked_run_uploads_only_where_the_operator_allows_it(monkeypatch, tmp_path, logged):
    """A tracked run's model is two programs: refused as an upload by default (one line naming the switch); with
    VAE_LAB_ALLOW_TRACKED_UPLOADS=1 its checked files are kept as they came and every page opens it."""
    import zipfile

    from ui import uploads
    src = logged / "examples"
    buf = tmp_path / "mine.zip"
    with zipfile.ZipFile(buf, "w") as zf:
        for f in sorted(src.iterdir()):
            if f.is_file() and f.name in uploads.ACCEPTED_FILES:
                zf.write(f, f"examples/{f.name}")
    runs = make_env(monkeypatch, tmp_path)
    monkeypatch.delenv("VAE_LAB_ALLOW_TRACKED_UPLOADS", raising=False)
    with pytest.raises(uploads.UploadError, match="not accepted as an upload on this server.*"
                                                   "VAE_LAB_ALLOW_TRACKED_UPLOADS"):
        uploads.install_run([("mine.zip", buf.read_bytes())])
    assert not runs.exists() or not any(runs.iterdir())
    monkeypatch.setenv("VAE_LAB_ALLOW_TRACKED_UPLOADS", "1")
    saved = uploads.install_run([("mine.zip", buf.read_bytes())])
    for name in ("encode.onnx", "decode.onnx", "test_images.safetensors", "model.safetensors"):
        assert (saved / name).read_bytes() == (src / name).read_bytes(), name
    at = pick_run(open_app("app_pages/reconstructions.py"), saved.name)
    assert not at.exception and not at.error, texts(at.error)
    # a test-images file that does not fit the model is refused with what it must hold
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        for f in ("model.safetensors", "config.json", "encode.onnx", "decode.onnx"):
            zf.write(src / f, f)
        zf.writestr("test_images.safetensors", b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    with pytest.raises(uploads.UploadError, match="test_images.safetensors"):
        uploads.install_run([("bad.zip", bad.read_bytes())])


def test_a_tracked_loop_still_training_is_listed_and_watched_live(monkeypatch, tmp_path):
    """The run folder is written as the user's loop trains: while it runs, the Train page lists it in progress (its
    epoch read from the folder, as for the app's own jobs) and Watch follows it; once the loop ends it is a run."""
    from foreign_models import ExamplesVAE as Examples
    runs = make_env(monkeypatch, tmp_path)
    torch.manual_seed(0)
    digits = load_dataset("mnist5k", max_train=256, max_test=100)
    model = Examples()
    x = digits.train.x.float().view(-1, 784) / 255

    def in_progress(at) -> str:
        found = [e for e in at.expander if e.label.startswith("Other runs in progress")]
        return " ".join(m.value for e in found for m in e.markdown)

    with vae.track(runs / "mine", model, digits.test.x, labels=digits.test.y, output="probs") as lab:
        train_and_log(lab, model, x, epochs=1)
        at = open_app("app_pages/train.py")
        assert not at.exception
        assert "**mine** · training, epoch 1" in in_progress(at), in_progress(at)
        at.button(key="train.watch.mine").click().run()
        assert not at.exception and "Watching mine" in texts(at.subheader), texts(at.subheader)
        lab.log(2, loss=1.0)
        assert "**mine** · training, epoch 2" in in_progress(open_app("app_pages/train.py"))
    after = open_app("app_pages/train.py")
    assert not after.exception and "mine" not in in_progress(after)
    from ui import catalogue
    assert "mine" in [e.name for e in catalogue.catalogue()], "the ended loop's folder is a run the picker lists"
