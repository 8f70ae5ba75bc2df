"""AppTest: a run with two stochastic layers on every page (each says what it shows of the lower layer), Inside's
second row and KL per layer, the Doctor reading each layer, and the Train page's choice of layers, refused in one
line where the core refuses it."""
import json
import shutil

import pytest
from app_support import make_env, open_app, pick_run, texts

from ui.pages import PAGES
from vae.cli import main

NOTE = "This model has two stochastic layers"


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    root = tmp_path_factory.mktemp("two")
    assert main(["train", "--data", "digits8", "--latent-layers", "2", "--latent-dim", "3", "--hidden", "64",
                 "--decoder-hidden", "32,64", "--epochs", "2", "--threads", "1", "--out", str(root / "two"),
                 "--quiet"]) == 0
    return root / "two"


def app_on(monkeypatch, tmp_path, two, page):
    runs = make_env(monkeypatch, tmp_path)
    runs.mkdir(parents=True, exist_ok=True)
    shutil.copytree(two, runs / "two")
    return pick_run(open_app(page), "two")


@pytest.mark.parametrize("page", [p.path for p in PAGES if "use_cases" not in p.path])
def test_every_page_opens_on_a_two_layer_run(monkeypatch, tmp_path, two, page):
    at = app_on(monkeypatch, tmp_path, two, page)
    assert not at.exception, at.exception
    if any(name in page for name in ("latent_map", "sliders", "generate")):
        [note] = [t for t in texts(at.info) if NOTE in t]
        assert "mean of its conditional prior p(z₁ | z)" in note
    if "dimensions" in page:
        assert any(c.startswith("KL per layer: top z ") for c in texts(at.caption))


def test_inside_draws_the_lower_layer_and_its_kl(monkeypatch, tmp_path, two):
    at = app_on(monkeypatch, tmp_path, two, "app_pages/inside.py")
    [diagram] = [h.proto.body for h in at.get("html") if "vae-inside" in h.proto.body]
    for testid in ("vae-inside-lower-mu", "vae-inside-lower-sigma", "vae-inside-lower-eps", "vae-inside-lower-z",
                   "vae-inside-lower-prior-mu", "vae-inside-kl-top", "vae-inside-kl-lower"):
        assert f"data-testid='{testid}'" in diagram, testid
    assert "[z₁, z] 6" in diagram, "the decoder line says it reads both layers"
    assert len(at.get("plotly_chart")) >= 3, "the map, the top layer's KL bars and the lower layer's"
    assert any("KL of each dimension of the lower layer z₁" in c for c in texts(at.caption))


def test_the_doctor_reads_the_lower_layer(monkeypatch, tmp_path, two):
    """The run's final record rewritten so its lower layer carries nothing: the Doctor names that layer."""
    runs = make_env(monkeypatch, tmp_path)
    runs.mkdir(parents=True, exist_ok=True)
    shutil.copytree(two, runs / "two")
    metrics = json.loads((runs / "two" / "metrics.json").read_text())
    final = metrics["final"]
    final.update(kl_per_layer=[final["kl_per_layer"][0], 0.004], kl_per_dim_lower=[0.001, 0.002, 0.001],
                 active_units_lower=0)
    (runs / "two" / "metrics.json").write_text(json.dumps(metrics))
    at = pick_run(open_app("app_pages/doctor.py"), "two")
    assert not at.exception, at.exception
    shown = " ".join(texts(at.markdown) + texts(at.subheader) + [e.proto.label for e in at.get("expander")])
    assert "The lower layer z₁ is unused: 0 of 3 dimensions active" in shown, shown


def test_the_train_page_offers_two_layers_and_refuses_them_with_a_conv_model(monkeypatch, tmp_path):
    make_env(monkeypatch, tmp_path)
    at = open_app("app_pages/train.py")
    at.segmented_control(key="train.layers").set_value(2).run()
    assert not at.button(key="train.start").proto.disabled and not at.error
    at.segmented_control(key="train.arch").set_value("Conv").run()
    assert at.button(key="train.start").proto.disabled
    [line] = texts(at.error)
    assert "Stochastic layers: model.latent_layers 2 is built for the unconditional mlp" in line
