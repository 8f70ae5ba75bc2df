"""Nothing lost: every epoch leaves a checkpoint and a loadable run; a resumed run continues exactly.

The pipeline writes the run folder while it trains (vae.runlog); ``python -m vae train --resume RUN_DIR``
continues from the last completed epoch with the same optimizer moments, shuffling stream and noise.
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch
from helpers import tiny_split

from vae import jobs
from vae.checkpoint import has_checkpoint, load_checkpoint
from vae.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from vae.pipeline import train_run
from vae.runs import RunError, load_run


def config(epochs=4, **train) -> RunConfig:
    return RunConfig(model=ModelConfig(image_size=8, latent_dim=2, hidden=(16,)),
                     train=TrainConfig(**{"epochs": epochs, "batch_size": 32, "threads": 1, "binarize": True,
                                          **train}),
                     data=DataConfig(name="blobs"))


def stop_after_epoch(n: int):
    stop = threading.Event()
    return stop, (lambda e: stop.set() if e["type"] == "epoch" and e["epoch"] == n else None)


def test_a_resumed_run_is_bit_identical_to_one_never_stopped(tmp_path):
    data = tiny_split(n_train=200, n_test=40)
    straight = train_run(config(), data, tmp_path / "straight")
    stop, cb = stop_after_epoch(2)
    first = train_run(config(), data, tmp_path / "split", callback=[cb, jobs.JobControl(tmp_path / "split")],
                      cancel=stop)
    assert first.status == "cancelled" and has_checkpoint(tmp_path / "split")
    assert jobs.read_status(tmp_path / "split")["state"] == "stopped"
    second = train_run(config(), data, tmp_path / "split", resume=True)
    a, b = straight.model.state_dict(), second.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a), "resuming changed the trajectory"
    assert [e.epoch for e in second.metrics.history.epochs] == [1, 2, 3, 4]
    assert second.final.neg_elbo == straight.final.neg_elbo
    assert not has_checkpoint(tmp_path / "split"), "a completed run drops its optimizer state"
    events, _ = jobs.read_events(tmp_path / "split")
    assert [e["type"] for e in events if e["type"] != "step"] == ["start", "epoch", "epoch", "end",
                                                                   "start", "epoch", "epoch", "end"]
    snaps = sorted(p.name for p in (tmp_path / "split" / jobs.SNAPSHOTS).iterdir())
    assert snaps == [f"epoch-{i:04d}.npz" for i in range(1, 5)]
    snap = jobs.read_snapshot(tmp_path / "split" / jobs.SNAPSHOTS / snaps[-1])
    assert snap.mu.shape == (40, 2) and snap.recons.shape[1:] == (1, 8, 8) and snap.kl_per_dim.shape == (2,)


def test_every_epoch_leaves_a_loadable_run_and_a_matching_checkpoint(tmp_path):
    data = tiny_split(n_train=200, n_test=40)
    seen = []

    def check(e):
        if e["type"] == "epoch" and e["epoch"] >= 2:   # the folder as of the previous epoch, while training
            run = load_run(tmp_path / "r")
            _, ck = load_checkpoint(tmp_path / "r")
            seen.append((len(run.metrics.history.epochs), ck.epoch, run.metrics.status))
    train_run(config(epochs=3), data, tmp_path / "r", callback=check)
    assert seen == [(1, 1, "running"), (2, 2, "running")]


def test_a_checkpoint_cut_mid_write_is_refused_not_mixed(tmp_path):
    data = tiny_split(n_train=200, n_test=40)
    stop, cb = stop_after_epoch(1)
    train_run(config(), data, tmp_path / "r", callback=cb, cancel=stop)
    state = tmp_path / "r" / "checkpoint" / "state.json"
    saved = json.loads(state.read_text())
    state.write_text(json.dumps({**saved, "epoch": 2}))      # weights of epoch 1, state of "epoch 2"
    with pytest.raises(RunError, match="cut mid-write"):
        load_checkpoint(tmp_path / "r")


def test_resume_refuses_a_folder_of_another_run(tmp_path):
    data = tiny_split(n_train=200, n_test=40)
    stop, cb = stop_after_epoch(1)
    train_run(config(), data, tmp_path / "r", callback=cb, cancel=stop)
    other = RunConfig(model=ModelConfig(image_size=8, latent_dim=3, hidden=(16,)), train=config().train,
                      data=config().data)
    with pytest.raises(RunError, match="another run"):
        train_run(other, data, tmp_path / "r", resume=True)


def vae_cli(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "vae", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def test_kill_9_of_the_cli_then_resume_from_the_command_line(tmp_path):
    run = tmp_path / "run"
    proc = vae_cli("train", "--data", "mnist5k", "--max-train", 1000, "--max-test", 100, "--hidden", 32,
                   "--latent-dim", 2, "--epochs", 6, "--batch-size", 100, "--threads", 1, "--quiet", "--out", run)
    deadline = time.monotonic() + 120
    while (jobs.read_status(run) or {}).get("epoch", 0) < 2:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    status = jobs.read_status(run)
    assert jobs.effective_state(status) == "interrupted"
    kept = len(load_run(run).metrics.history.epochs)
    # the checkpoint is written before the run folder, so a kill between the two leaves it one epoch ahead
    # (never behind); resume starts from the checkpoint either way
    assert kept >= 2 and load_checkpoint(run)[1].epoch in (kept, kept + 1)
    done = vae_cli("train", "--resume", run, "--threads", 1, "--quiet")
    out, err = done.communicate(timeout=180)
    assert done.returncode == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["status"] == "completed"
    assert [e.epoch for e in load_run(run).metrics.history.epochs] == [1, 2, 3, 4, 5, 6]
    assert jobs.read_status(run)["state"] == "done"


def test_resume_takes_no_other_run_settings(tmp_path, capsys):
    from vae.cli import main
    assert main(["train", "--resume", str(tmp_path), "--epochs", "3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--epochs cannot go with --resume" in err[0]


def test_a_kill_between_the_checkpoint_renames_still_resumes(tmp_path):
    """save_checkpoint fills checkpoint.new/ then renames: checkpoint/ -> checkpoint.old/, checkpoint.new/ ->
    checkpoint/. Killed between the two renames, the run has no checkpoint/ but a complete .new and .old."""
    import shutil
    data = tiny_split(n_train=200, n_test=40)
    stop, cb = stop_after_epoch(2)
    train_run(config(), data, tmp_path / "r", callback=cb, cancel=stop)
    run = tmp_path / "r"
    assert (run / "checkpoint" / "state.json").is_file() and not (run / "checkpoint.new").exists()
    shutil.copytree(run / "checkpoint", run / "checkpoint.old")
    (run / "checkpoint").rename(run / "checkpoint.new")
    assert load_checkpoint(run)[1].epoch == 2
    result = train_run(config(), data, run, resume=True)
    assert result.status == "completed" and not any(run.glob("checkpoint*"))
