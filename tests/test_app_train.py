"""AppTest: the Train page queues a run that trains in its own process, polled by reruns, and saved."""
import io
import json
import time
from pathlib import Path

import numpy as np
from app_support import make_env, open_app, poll, texts

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
    at.number_input(key="train.epochs").set_value(1)
    at.number_input(key="train.latent_dim").set_value(2)
    at.number_input(key="train.max_train").set_value(300)
    at.number_input(key="train.max_test").set_value(60)
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
    runs = make_env(monkeypatch, tmp_path)
    at = open_app(PAGE)
    at.selectbox(key="train.data").set_value("upload").run()
    at.file_uploader(key="train.upload").set_value(("bars.npz", tiny_npz(), "application/octet-stream")).run()
    assert not at.exception and not at.error, texts(at.error)
    assert "216 training and 24 test images" in at.success[0].value and "3 classes" in at.success[0].value
    at.number_input(key="train.epochs").set_value(400)
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
    runs = make_env(monkeypatch, tmp_path, VAE_LAB_HEARTBEAT_S=1)
    at = open_app(PAGE)
    at.number_input(key="train.epochs").set_value(500)
    at.text_input(key="train.hidden").set_value("32")
    at.number_input(key="train.max_train").set_value(200)
    at.number_input(key="train.max_test").set_value(20)
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


def test_moving_to_another_page_keeps_the_run_going(monkeypatch, tmp_path):
    runs = make_env(monkeypatch, tmp_path)
    at = open_app(PAGE)
    at.number_input(key="train.epochs").set_value(500)
    at.text_input(key="train.hidden").set_value("32")
    at.number_input(key="train.max_train").set_value(200)
    at.number_input(key="train.max_test").set_value(20)
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
