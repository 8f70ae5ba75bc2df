"""AppTest: the Train page queues a run that trains in its own process, polled by reruns, and saved."""
import io
import json
import time
import typing
from pathlib import Path

import numpy as np
from app_support import make_env, open_app, poll, texts

from vae.config import MAX_LATENT, Activation, ModelConfig, RunConfig, TrainConfig

PAGE = "app_pages/train.py"


def tiny_npz(n: int = 240, side: int = 12, classes: int = 3) -> bytes:
    """Class-dependent bright bars on noise: uint8 [n, side, side] and labels."""
    rng = np.random.default_rng(0)
    y = np.arange(n) % classes
    x = (rng.random((n, side, side)) * 40).astype(np.uint8)
    for i in range(n):
        r = 1 + 3 * y[i]
        x[i, r:r + 3, 1:side - 1] = 230
    buf = io.BytesIO()
    np.savez(buf, x=x, y=y)
    return buf.getvalue()


def finished(at) -> bool:
    return any("Training finished" in t or "topped" in t for t in texts(at.success) + texts(at.warning))


def saved_runs(runs: Path) -> list[Path]:
    return sorted(p for p in runs.iterdir() if (p / "model.safetensors").is_file()) if runs.is_dir() else []


def test_one_epoch_on_mnist5k_saves_a_run_that_becomes_active(monkeypatch, tmp_path):
    runs = make_env(monkeypatch, tmp_path)
    at = open_app(PAGE)
    assert texts(at.title) == ["Train"]
    assert at.button(key="train.start").proto.label == "Start"
    at.text_input(key="train.epochs").set_value("1")
    at.text_input(key="train.latent_dim").set_value("2")
    at.text_input(key="train.max_train").set_value("300")
    at.text_input(key="train.max_test").set_value("60")
    at.text_input(key="train.hidden").set_value("64")
    at.run()
    at.button(key="train.start").click().run()
    assert not at.exception and not at.error, texts(at.error)
    poll(at, finished, timeout=120)
    assert "Training finished" in at.success[0].value
    [run] = saved_runs(runs)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["n_train"] == 300
    assert len(metrics["history"]["epochs"]) == 1
    # the dashboard stays: curves, KL bars / latent map and the reconstruction strip
    assert len(at.get("plotly_chart")) >= 2
    assert any("reconstructions" in c for img in at.get("image") for c in img.captions)
    # the run is active in the sidebar (after the rerun the page triggers)
    at.run()
    assert at.sidebar.selectbox(key="app.run").value == str(run)
    assert "trained" in " ".join(at.sidebar.selectbox(key="app.run").options)


def test_uploaded_npz_trains_and_stop_keeps_what_was_learned(monkeypatch, tmp_path):
    runs = make_env(monkeypatch, tmp_path, VAE_LAB_MAX_EPOCHS=0)   # it trains until stopped
    at = open_app(PAGE)
    at.selectbox(key="train.data").set_value("upload").run()
    at.file_uploader(key="train.upload").set_value(("bars.npz", tiny_npz(), "application/octet-stream")).run()
    assert not at.exception and not at.error, texts(at.error)
    assert "216 training and 24 test images" in at.success[0].value and "3 classes" in at.success[0].value
    at.text_input(key="train.epochs").set_value("400")
    at.selectbox(key="train.batch_size").set_value(32)
    at.text_input(key="train.hidden").set_value("32")
    at.checkbox(key="train.conditional").check()
    at.run()
    at.button(key="train.start").click().run()
    assert not at.error, texts(at.error)
    poll(at, lambda a: any(p.value > 0 for p in a.get("progress")), timeout=60, interval=0.2)
    assert at.button(key="train.start").proto.disabled, "Start is disabled while a run is in progress"
    at.button(key="train.stop").click().run()
    poll(at, finished, timeout=60, interval=0.2)
    assert "Stopped by request" in at.warning[0].value
    [run] = saved_runs(runs)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "cancelled" and metrics["data"]["class_names"] == ["0", "1", "2"]
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["conditional"] and config["model"]["image_size"] == 12
    assert "bars" in run.name


def test_a_session_that_stops_polling_stops_its_training(monkeypatch, tmp_path):
    runs = make_env(monkeypatch, tmp_path, VAE_LAB_HEARTBEAT_S=1, VAE_LAB_MAX_EPOCHS=0)
    at = open_app(PAGE)
    at.text_input(key="train.epochs").set_value("500")
    at.text_input(key="train.hidden").set_value("32")
    at.text_input(key="train.max_train").set_value("200")
    at.text_input(key="train.max_test").set_value("20")
    at.run()
    at.button(key="train.start").click().run()
    poll(at, lambda a: any(p.value > 0 for p in a.get("progress")), timeout=60, interval=0.2)
    time.sleep(4)  # no reruns, so no heartbeat: the scheduler stops the job, which saves
    deadline = time.monotonic() + 30
    while not saved_runs(runs) and time.monotonic() < deadline:
        time.sleep(0.2)
    [run] = saved_runs(runs)
    time.sleep(0.5)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "cancelled" and "no heartbeat" in metrics["message"]
    at.run()
    assert "no heartbeat" in at.warning[0].value


def test_a_bad_setting_is_one_error_line(monkeypatch, tmp_path):
    make_env(monkeypatch, tmp_path)
    at = open_app(PAGE)
    at.text_input(key="train.hidden").set_value("big,small").run()
    at.button(key="train.start").click().run()
    assert not at.exception
    assert len(at.error) == 1 and "layer widths are comma-separated" in at.error[0].value


def test_fields_in_error_keep_start_disabled_and_say_which_and_what_they_accept(monkeypatch, tmp_path):
    runs = make_env(monkeypatch, tmp_path)
    at = open_app(PAGE)
    assert not at.button(key="train.start").proto.disabled
    for key, text in (("train.latent_dim", "500"), ("train.epochs", "0"), ("train.beta", "-3"), ("train.lr", "100"),
                      ("train.seed", "abc")):
        at.text_input(key=key).set_value(text)
    at.button(key="train.start").click().run()      # typed and pressed in the same moment: nothing starts
    assert at.button(key="train.start").proto.disabled
    [line] = texts(at.error)
    for said in (f"Latent dimensions takes a whole number (1 to {MAX_LATENT}), not 500",
                 "Epochs takes a whole number (1 to 200: this server's limit), not 0",
                 "β (KL weight) takes a number (0 to 1000)",
                 "Learning rate takes a number (above 0, up to 10), not 100", "Seed takes a whole number"):
        assert said in line, (said, line)
    assert not saved_runs(runs) and not (runs.is_dir() and any(runs.iterdir()))
    assert at.text_input(key="train.seed").value == "abc"      # what was typed stays, refused, not dropped
    at.text_input(key="train.latent_dim").set_value("12").run()
    assert "Latent dimensions" not in texts(at.error)[0]


def test_the_forms_defaults_ranges_and_choices_are_the_cores(monkeypatch, tmp_path):
    make_env(monkeypatch, tmp_path)
    at = open_app(PAGE)
    assert at.selectbox(key="train.batch_size").value == TrainConfig().batch_size
    assert at.text_input(key="train.latent_dim").value == str(ModelConfig().latent_dim)
    assert at.text_input(key="train.lr").value == f"{TrainConfig().lr:g}"
    from ui import train_form
    assert train_form.default(train_form.BY_KEY["train.latent_dim"]) == ModelConfig().latent_dim
    assert train_form.default(train_form.BY_KEY["train.lr"]) == TrainConfig().lr
    assert train_form.rule(train_form.BY_KEY["train.latent_dim"]) == f"1 to {MAX_LATENT}"
    assert train_form.ACTIVATIONS == list(typing.get_args(Activation))
    assert TrainConfig().batch_size in train_form.BATCH_SIZES
    for f in train_form.FIELDS:     # the default passes the field's own check, and the range text is read
        assert train_form.parse(f, train_form.fmt(train_form.default(f))) == train_form.default(f)
        assert train_form.rule(f) and "must be" not in train_form.rule(f)


def test_a_run_ended_by_its_time_budget_shows_a_full_bar_that_says_so():
    from ui.train_panel import progress_text
    cfg = RunConfig(train=TrainConfig(epochs=30, time_budget=20.0))
    snap = {"status": "done", "message": "time budget of 20 s reached at epoch 24", "config": cfg, "epoch": 24,
            "epochs": 30, "step": 216, "total_steps": 270, "elapsed": 20.3, "eta": float("nan")}
    assert progress_text(snap) == (1.0, "Done: the 20 s time budget ended it after epoch 24 of 30 · 216 steps · "
                                        "took 20 s")
    snap.update(message="", epoch=30, step=270)
    assert progress_text(snap)[1].startswith("Done: all 30 epochs")
    # while it trains, the bar and its words follow the clock, not the epochs it will not reach
    snap.update(status="training", epoch=11, step=99, elapsed=17.4, eta=12.0, samples_per_sec=5000.0)
    frac, text = progress_text(snap)
    assert frac == 17.4 / 20 and text.startswith("Epoch 11 of at most 30 · 17 of 20 s · 5,000 images/s"), text
    assert text.endswith("about 3 s left"), text


def test_moving_to_another_page_keeps_the_run_going(monkeypatch, tmp_path):
    runs = make_env(monkeypatch, tmp_path, VAE_LAB_MAX_EPOCHS=0)   # it trains until stopped
    at = open_app(PAGE)
    at.text_input(key="train.epochs").set_value("500")
    at.text_input(key="train.hidden").set_value("32")
    at.text_input(key="train.max_train").set_value("200")
    at.text_input(key="train.max_test").set_value("20")
    at.run()
    at.button(key="train.start").click().run()
    at.switch_page("app_pages/generate.py").run()
    assert texts(at.title) == ["Generate"] and not at.exception
    # the sidebar follows the run from any page: the process starting, then its epochs
    poll(at, lambda a: any("Training: epoch" in p.proto.text for p in a.sidebar.get("progress")), timeout=60,
         interval=0.2)
    assert texts(at.title) == ["Generate"]
    at.switch_page(PAGE).run()
    assert at.button(key="train.stop")  # the live dashboard is back, with its Stop button
    poll(at, lambda a: any(p.value > 0 for p in a.main.get("progress")), timeout=60, interval=0.2)
    at.button(key="train.stop").click().run()
    poll(at, finished, timeout=60, interval=0.2)
    [run] = saved_runs(runs)
    assert json.loads((run / "metrics.json").read_text())["status"] == "cancelled"


def test_a_figure_the_record_lacks_shows_a_dash_not_an_error():
    """A NaN test figure is left out of the epoch's record (vae.record): the dashboard's metrics say "—" for it, and
    the others as measured (it raised a KeyError before)."""
    from streamlit.testing.v1 import AppTest

    def page():
        from ui.train_panel import dashboard
        from vae.config import ModelConfig, RunConfig, TrainConfig
        from vae.record import EpochRecord
        cfg = RunConfig(model=ModelConfig(latent_dim=4), train=TrainConfig(epochs=3))
        rec = EpochRecord(epoch=1, test={"recon": 100.0, "kl": 3.0}, kl_per_dim=[1.0, 1.0, 0.5, 0.5], active_units=3)
        dashboard({"status": "failed", "message": "a non-finite loss", "config": cfg, "epoch": 1, "epochs": 3,
                   "step": 10, "total_steps": 30, "elapsed": 2.0, "eta": float("nan"), "samples_per_sec": 100.0,
                   "epoch_records": [rec], "steps": [], "latent": None, "recon": None, "run_dir": "r",
                   "class_names": None})

    at = AppTest.from_function(page, default_timeout=30).run()
    assert not at.exception, at.exception
    shown = {m.label: m.value for m in at.metric}
    assert shown == {"Test −ELBO": "—", "Bits per pixel": "—", "Active dims": "3/4"}, shown
