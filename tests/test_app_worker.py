"""The training worker without Streamlit: sessions are isolated, stop and heartbeat rules hold."""
import time

import pytest
from helpers import tiny_split

from ui.worker import Registry, TrainJob
from vae.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from vae.runs import load_run


def config(epochs: int) -> RunConfig:
    return RunConfig(model=ModelConfig(image_size=8, latent_dim=2, hidden=(16,)),
                     train=TrainConfig(epochs=epochs, batch_size=8, threads=1, recon_every=2),
                     data=DataConfig(name="blobs"))


def wait(cond, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_two_sessions_train_at_once_and_see_only_their_own_job(tmp_path):
    reg = Registry()
    a = reg.start(TrainJob("session-a", config(2), tiny_split(), tmp_path / "a"))
    b = reg.start(TrainJob("session-b", config(400), tiny_split(), tmp_path / "b"))
    assert reg.get("session-a") is a and reg.get("session-b") is b and reg.get("session-c") is None
    with pytest.raises(RuntimeError, match="already training"):
        reg.start(TrainJob("session-b", config(1), tiny_split(), tmp_path / "c"))
    a.join(60)
    assert a.snapshot()["status"] == "done" and b.running
    assert len(a.snapshot()["epoch_records"]) == 2
    b.stop()
    b.join(60)
    snap = b.snapshot()
    assert snap["status"] == "stopped" and snap["message"] == "stopped by request"
    assert load_run(snap["run_path"]).metrics["status"] == "cancelled"
    assert load_run(a.snapshot()["run_path"]).metrics["status"] == "completed"


def test_no_heartbeat_stops_the_job_unless_the_websocket_is_open(tmp_path):
    alive = {"value": True}
    job = TrainJob("s", config(100_000), tiny_split(), tmp_path / "r", heartbeat_timeout=0.5,
                   alive=lambda: alive["value"]).start()
    wait(lambda: job.snapshot()["step"] > 0)
    time.sleep(1.5)                      # heartbeat is stale, but the runtime says the tab is open
    assert job.running
    alive["value"] = None                # the runtime cannot tell: the heartbeat decides
    job.join(30)
    snap = job.snapshot()
    assert snap["status"] == "stopped" and "no heartbeat" in snap["message"]
    assert load_run(snap["run_path"]).metrics["message"].startswith("stopped: no heartbeat")


def test_a_failing_job_reports_one_line(tmp_path):
    bad = RunConfig(model=ModelConfig(image_size=16, latent_dim=2, hidden=(8,)), train=TrainConfig(epochs=1),
                    data=DataConfig(name="blobs"))   # 16x16 model, 8x8 data
    job = TrainJob("s", bad, tiny_split(), tmp_path / "r").start()
    job.join(30)
    snap = job.snapshot()
    assert snap["status"] == "failed" and snap["message"].startswith("training failed: ")
    assert "\n" not in snap["message"] and snap["run_path"] is None
