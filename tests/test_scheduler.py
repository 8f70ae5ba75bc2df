"""The app's training queue without Streamlit: jobs are real processes (``python -m vae train --resume``).

Queue limit and places, one job per session, Stop (queued and running), kill -9 of a job, a server that
goes away and comes back, sessions that disappear, and a job that fails before training.
"""
import json
import os
import signal
import time
from pathlib import Path

import pytest

from ui.jobview import snapshot
from ui.scheduler import Scheduler
from vae import jobs
from vae.checkpoint import has_checkpoint, load_checkpoint
from vae.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from vae.runs import load_run


def config(epochs: int = 2, max_train: int = 600) -> RunConfig:
    return RunConfig(model=ModelConfig(latent_dim=2, hidden=(32,)),
                     train=TrainConfig(epochs=epochs, batch_size=100, threads=1),
                     data=DataConfig(name="mnist5k", max_train=max_train, max_test=100))


def wait(cond, timeout=90.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def state(run_dir) -> str:
    return snapshot(run_dir)["status"]


@pytest.fixture
def sched(tmp_path):
    s = Scheduler(tmp_path / "runs", max_jobs=1, interval=0.2)
    yield s
    s.close(stop_jobs=True)


def test_the_progress_line_names_the_epoch_in_progress_then_the_last_saved():
    from ui.jobview import shown_epoch
    # recorded: a 20 s run whose heartbeat last wrote epoch_running 19, then saved epochs 20 and 21 and ended
    ended = {"state": "done", "epoch": 21, "epoch_running": 19}
    assert shown_epoch(ended, "done", 30) == 21
    assert shown_epoch({"epoch": 20, "epoch_running": 19}, "training", 30) == 21     # 20 saved: 21 is running
    assert shown_epoch({"epoch": 30, "epoch_running": 30}, "saving", 30) == 30       # never past the last
    assert shown_epoch({"epoch": 0, "epoch_running": 0}, "training", 30) == 1
    assert shown_epoch({"epoch_running": 3}, "stopped", 30) == 3                     # nothing saved yet


def test_the_queue_holds_jobs_beyond_the_limit_and_reports_their_place(sched):
    # A trains long enough (4,000 images an epoch) that it is still training when B's place is checked
    a = sched.submit("A", config(epochs=2, max_train=4000), "mnist5k")
    b = sched.submit("B", config(epochs=1), "mnist5k")
    with pytest.raises(RuntimeError, match="already have a run"):
        sched.submit("B", config(), "mnist5k")                 # one person, one job
    wait(lambda: state(a) == "training", what="A training")
    assert state(b) == "queued" and sched.queue_position(b) == 1 and len(sched.running()) == 1
    wait(lambda: state(a) == "done", what="A done")
    wait(lambda: state(b) == "done", what="B done")
    for run_dir in (a, b):
        run = load_run(run_dir)
        assert run.metrics.status == "completed" and not has_checkpoint(run_dir)
    snap = snapshot(a)
    assert [e.epoch for e in snap["epoch_records"]] == [1, 2] and snap["steps"] and snap["recon"] is not None
    assert sched.job_of("A") == a and sched.job_of("C") is None


def test_stop_takes_a_queued_job_off_the_queue_and_stops_a_running_one_keeping_what_it_learned(sched):
    a = sched.submit("A", config(epochs=500, max_train=2000), "mnist5k")
    b = sched.submit("B", config(), "mnist5k")
    sched.stop(b)
    assert state(b) == "stopped" and "off the queue" in snapshot(b)["message"]
    wait(lambda: bool(snapshot(a)["epoch_records"]), what="A's first epoch")
    sched.stop(a)
    wait(lambda: state(a) == "stopped", timeout=30, what="A stopped")
    run = load_run(a)
    assert run.metrics.status == "cancelled" and run.metrics.message == "stopped by request"
    assert has_checkpoint(a), "a stopped run keeps its checkpoint: it can be resumed"


def test_kill_9_of_a_job_keeps_its_last_epoch_and_resume_continues_it(sched):
    a = sched.submit("A", config(epochs=4, max_train=2000), "mnist5k")
    wait(lambda: len(snapshot(a)["epoch_records"]) >= 2, what="two epochs")
    os.kill(jobs.read_status(a)["pid"], signal.SIGKILL)
    wait(lambda: "killed" in snapshot(a)["message"], timeout=10, what="the scheduler to see the kill")
    assert state(a) == "interrupted"
    message = snapshot(a)["message"]
    assert "killed (signal 9)" in message and "kept up to epoch" in message and "\n" not in message
    kept = int(message.split("kept up to epoch ")[1].split(".")[0])
    # nothing half-written: every file parses, the run loads as of the kept epoch, the checkpoint matches it
    for name in ("config.json", "metrics.json", "job.json"):
        json.loads((a / name).read_text())
    run = load_run(a)
    weights, ck = load_checkpoint(a)
    assert ck.epoch == kept                          # the message names what resume continues from
    # the checkpoint is written before the run folder, so a kill between the two leaves the folder one behind
    assert len(run.metrics.history.epochs) in (kept - 1, kept) and run.metrics.status == "running"
    sched.resume("A", a)
    wait(lambda: state(a) == "done", what="resumed run done")
    run = load_run(a)
    assert [e.epoch for e in run.metrics.history.epochs] == [1, 2, 3, 4]
    assert run.metrics.status == "completed"


def test_a_restarted_server_adopts_live_jobs_and_marks_dead_ones_interrupted(tmp_path):
    root = tmp_path / "runs"
    first = Scheduler(root, max_jobs=2, interval=0.2)
    live = first.submit("A", config(epochs=500, max_train=2000), "mnist5k")
    dead = first.submit("B", config(epochs=500, max_train=2000), "mnist5k")
    wait(lambda: state(live) == "training" and state(dead) == "training", what="both training")
    first.close(stop_jobs=False)                      # the server goes away; its jobs keep training
    os.kill(jobs.read_status(dead)["pid"], signal.SIGKILL)
    time.sleep(0.5)
    second = Scheduler(root, max_jobs=2, interval=0.2)
    try:
        assert live in second.running() and state(live) == "training"
        assert state(dead) == "interrupted" and "server was restarted" in snapshot(dead)["message"]
        second.stop(live)
        wait(lambda: state(live) == "stopped", timeout=30, what="adopted job stopped")
    finally:
        second.close(stop_jobs=True)


def test_a_session_that_is_gone_has_its_job_stopped(tmp_path):
    alive = {"A": True}
    s = Scheduler(tmp_path / "runs", max_jobs=1, interval=0.2, heartbeat_timeout=0.5,
                  session_alive=lambda sid: alive.get(sid))
    try:
        a = s.submit("A", config(epochs=500, max_train=2000), "mnist5k")
        wait(lambda: state(a) == "training", what="training")
        time.sleep(1.5)                               # stale heartbeat, but the websocket is open
        assert state(a) == "training"
        alive["A"] = None                             # the runtime cannot tell: the heartbeat decides
        wait(lambda: state(a) == "stopped", timeout=30, what="stopped")
        assert snapshot(a)["message"].startswith("stopped: no heartbeat")
    finally:
        s.close(stop_jobs=True)


def test_a_job_that_fails_before_training_says_why_in_one_line(sched):
    bad = RunConfig(model=ModelConfig(image_size=16, latent_dim=2, hidden=(8,)), train=TrainConfig(epochs=1),
                    data=DataConfig(name="mnist5k"))   # a 16x16 model for 28x28 data
    a = sched.submit("A", bad, "mnist5k")
    wait(lambda: state(a) == "failed", what="failed")
    msg = snapshot(a)["message"]
    assert "16" in msg and "28" in msg and "\n" not in msg, msg
    assert not (Path(a) / "model.safetensors").exists()
