"""``torchrun -m vae train``: two real processes on gloo (CPU), a small data set, each case under a minute.

A normal run, a Stop in the middle, a NaN on one rank only, a resume, and the app's queue handing a job
to torchrun through the launcher setting.
"""
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vae import jobs
from vae.checkpoint import has_checkpoint
from vae.runs import load_run

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
TRAIN = ["-m", "vae", "train", "--data", "mnist5k", "--max-train", "1200", "--max-test", "200", "--hidden", "64",
         "--latent-dim", "2", "--batch-size", "100", "--threads", "1", "--quiet"]


def torchrun(*args, env=None, **kw) -> subprocess.Popen:
    return subprocess.Popen([*TORCHRUN, *TRAIN, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, **(env or {})}, **kw)


def finish(proc, timeout=120) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def summary(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def test_two_ranks_train_one_run_folder_written_by_rank_0(tmp_path):
    code, out, err = finish(torchrun("--epochs", 3, "--out", tmp_path / "run"))
    assert code == 0, err[-2000:]
    s = summary(out)
    assert s["status"] == "completed" and s["world_size"] == 2 and s["backend"] == "gloo"
    assert len(out.strip().splitlines()) == 1, "only rank 0 prints"
    run = load_run(tmp_path / "run")
    assert run.metrics.distributed == {"world_size": 2, "backend": "gloo"}
    epochs = run.metrics.history.epochs
    assert [e.epoch for e in epochs] == [1, 2, 3]
    # --batch-size is the global batch: 1,200 images in batches of 100 are 12 steps an epoch, as on one process
    assert run.metrics.history.steps[-1].global_step == 36
    assert epochs[-1].test["neg_elbo"] < epochs[0].test["neg_elbo"]
    assert jobs.read_status(tmp_path / "run")["state"] == "done"
    assert [p.name for p in tmp_path.iterdir()] == ["run"], "no rank made a folder of its own"


@pytest.mark.parametrize("objective, terms", [("btcvae", {"mi", "tc", "dwkl"}), ("factorvae", {"tc", "disc_loss"})])
def test_the_disentangling_objectives_train_under_torchrun(tmp_path, objective, terms):
    """beta-TCVAE (its minibatch-weighted sampling over each rank's batch) and FactorVAE (its discriminator, a second
    optimizer whose gradients are averaged across ranks too) through two gloo ranks: one run folder, both objectives'
    terms recorded and finite, the rank-0 model on disk loads and the test -ELBO is finite."""
    code, out, err = finish(torchrun("--epochs", 2, "--objective", objective, "--out", tmp_path / "run"))
    assert code == 0, err[-2000:]
    s = summary(out)
    assert s["status"] == "completed" and s["world_size"] == 2, s
    run = load_run(tmp_path / "run")
    assert run.config.train.objective == objective
    last = run.metrics.history.epochs[-1]
    assert terms <= set(last.train) and all(math.isfinite(v) for v in last.train.values()), last.train
    assert math.isfinite(last.test["neg_elbo"])
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_a_stop_ends_every_rank_and_resume_continues(tmp_path):
    run = tmp_path / "run"
    proc = torchrun("--epochs", 400, "--out", run)
    deadline = time.monotonic() + 60
    while (jobs.read_status(run) or {}).get("epoch", 0) < 2:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    t0 = time.monotonic()
    jobs.request_stop(run)
    code, out, err = finish(proc, timeout=60)
    assert code == 0, err[-2000:]
    assert time.monotonic() - t0 < 15, "every rank should stop within a few seconds"
    assert summary(out)["status"] == "cancelled"
    kept = len(load_run(run).metrics.history.epochs)
    assert jobs.read_status(run)["state"] == "stopped" and has_checkpoint(run) and kept >= 2
    # resume the same folder under torchrun, with fewer epochs left: it continues from the checkpoint
    cfg = json.loads((run / "config.json").read_text())
    cfg["train"]["epochs"] = kept + 2
    (run / "config.json").write_text(json.dumps(cfg))
    code, out, err = finish(subprocess.Popen([*TORCHRUN, "-m", "vae", "train", "--resume", str(run), "--threads", "1",
                                              "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    assert code == 0, err[-2000:]
    assert summary(out)["status"] == "completed"
    epochs = [e.epoch for e in load_run(run).metrics.history.epochs]
    assert epochs == list(range(1, kept + 3)), epochs


def test_ctrl_c_in_the_terminal_stops_every_rank_and_saves(tmp_path):
    """A terminal's Ctrl-C reaches torchrun and its workers (one process group); torchrun forwards it again."""
    run = tmp_path / "run"
    proc = torchrun("--epochs", 400, "--out", run, start_new_session=True)
    deadline = time.monotonic() + 60
    while (jobs.read_status(run) or {}).get("epoch", 0) < 2:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)
    code, out, err = finish(proc, timeout=60)
    assert summary(out)["status"] == "cancelled", err[-2000:]
    assert jobs.read_status(run)["state"] == "stopped" and load_run(run).metrics.status == "cancelled"
    assert "[rank" not in err, "no rank died with a traceback: " + err[-2000:]


@pytest.mark.parametrize("rank", [0, 1])
def test_a_nan_on_one_rank_ends_every_rank_cleanly(tmp_path, rank):
    run = tmp_path / "run"
    faulty = [str(Path(__file__).parent / "apps" / "faulty_train.py"), str(rank), "20", *TRAIN[2:]]
    root = str(Path(__file__).resolve().parents[1])       # the script's own folder is its sys.path[0], not the repo
    proc = subprocess.Popen([*TORCHRUN, *faulty, "--epochs", "50", "--out", str(run)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": root})
    code, out, err = finish(proc, 90)
    assert code == 0, "an orderly ending is not a crash for torchrun to restart: " + err[-2000:]
    s = summary(out)
    assert s["status"] == "failed"
    assert "non-finite on 1 of 2 ranks at epoch 2" in err, err[-1000:]
    metrics = load_run(run).metrics
    assert metrics.status == "failed" and len(metrics.history.epochs) == 1
    assert jobs.read_status(run)["state"] == "failed"


def test_the_app_queue_hands_a_job_to_torchrun(tmp_path):
    from ui.jobview import snapshot
    from ui.scheduler import Scheduler
    from vae.config import DataConfig, ModelConfig, RunConfig, TrainConfig
    cfg = RunConfig(model=ModelConfig(latent_dim=2, hidden=(64,)), train=TrainConfig(epochs=2, batch_size=100),
                    data=DataConfig(name="mnist5k", max_train=1200, max_test=200))
    launcher = " ".join(TORCHRUN)
    sched = Scheduler(tmp_path / "runs", max_jobs=1, interval=0.2, launch=jobs.Launch(prefix=launcher, threads=1))
    try:
        run = sched.submit("A", cfg, "mnist5k")
        deadline = time.monotonic() + 90
        while snapshot(run)["status"] not in ("done", "failed", "interrupted"):
            assert time.monotonic() < deadline, (run / "train.log").read_text()[-2000:]
            time.sleep(0.2)
        snap = snapshot(run)
        assert snap["status"] == "done", snap["message"]
        metrics = load_run(run).metrics
        assert metrics.distributed["world_size"] == 2
        assert jobs.read_status(run)["launcher"] == launcher
        assert len(snap["epoch_records"]) == 2
    finally:
        sched.close(stop_jobs=True)


def test_one_process_is_unchanged_by_the_distributed_code_path(tmp_path):
    """Without torchrun the same command trains on one process and records no distributed block."""
    out = subprocess.run([sys.executable, *TRAIN, "--epochs", "1", "--out", str(tmp_path / "r")], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "world_size" not in summary(out.stdout) and load_run(tmp_path / "r").metrics.distributed is None
    assert Path(tmp_path / "r" / "model.safetensors").is_file()
