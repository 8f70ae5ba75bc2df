"""A full disk (or any failed write) while the app writes for a browser: one line that names the failure without the
server's path, and nothing half-written left in the runs or uploads folders. A resume passes the same free-space
floor as a start."""
from __future__ import annotations

import errno
import json

import pytest
from app_support import ROOT, make_env, open_app, texts
from test_app_train import tiny_npz

from ui import owners, settings, uploads
from ui import state as S
from vae import jobs
from vae import runs as vae_runs
from vae.config import ModelConfig, RunConfig, TrainConfig

PAGE = "app_pages/train.py"
DEMO = ROOT / "assets" / "runs" / "mnist-16d"


def _no_space(*_a, **_k):
    raise OSError(errno.ENOSPC, "No space left on device", "/srv/secret/runs/x.tmp")


def _left(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) if folder.is_dir() else []


def test_queue_run_on_a_full_disk_raises_and_leaves_no_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(jobs, "atomic_write_bytes", _no_space)
    config = RunConfig(model=ModelConfig(latent_dim=2), train=TrainConfig(epochs=1))
    with pytest.raises(OSError):
        jobs.queue_run(tmp_path, config, "mnist5k", owner="p")
    assert _left(tmp_path) == []


def test_start_on_a_full_disk_is_one_line_without_a_path_and_nothing_is_listed(monkeypatch, tmp_path):
    runs = make_env(monkeypatch, tmp_path)
    at = open_app(PAGE)
    for key, text in {"train.epochs": "1", "train.hidden": "32", "train.max_train": "200",
                      "train.max_test": "20"}.items():
        at.text_input(key=key).set_value(text)
    at.run()
    monkeypatch.setattr(jobs, "atomic_write_bytes", _no_space)
    at.button(key="train.start").click().run()
    assert not at.exception
    [line] = texts(at.error)
    assert line == ("Cannot start: the server could not write the run (No space left on device); "
                    "nothing was started"), line
    assert "/srv" not in line and _left(runs) == []


def test_run_and_data_uploads_on_a_full_disk_are_one_line_and_keep_nothing(monkeypatch, tmp_path):
    runs = make_env(monkeypatch, tmp_path)
    files = [(f, (DEMO / f).read_bytes()) for f in ("model.safetensors", "config.json")]
    monkeypatch.setattr(vae_runs, "atomic_write_bytes", _no_space)      # what save_run writes with
    monkeypatch.setattr(uploads, "atomic_write_bytes", _no_space)
    with pytest.raises(uploads.UploadError) as e:
        uploads.install_run(files)
    assert str(e.value) == ("model.safetensors, config.json: the server could not store it (No space left on "
                            "device); nothing was kept"), e.value
    assert _left(runs) == []
    with pytest.raises(uploads.UploadError, match=r"^bars.npz: the server could not store it \(No space left on "
                                                  r"device\); nothing was kept$"):
        uploads.save_dataset_upload("bars.npz", tiny_npz())
    up = settings.uploads_dir()
    assert not up.is_dir() or not [p for p in up.rglob("*") if p.is_file()]


def test_resume_is_refused_below_the_free_space_floor_as_a_start_is(monkeypatch, tmp_path):
    runs = make_env(monkeypatch, tmp_path)
    at = open_app(PAGE)
    me = owners.person_of(at.session_state[S.WHO_TOKEN])
    config = RunConfig(model=ModelConfig(latent_dim=2), train=TrainConfig(epochs=1))
    run_dir = jobs.queue_run(runs, config, "mnist5k", owner=me)
    jobs.write_status(run_dir, state="interrupted", message="the training process stopped")
    at.run()
    monkeypatch.setenv("VAE_LAB_MIN_FREE_MB", str(10**12))       # a floor no disk has
    at.button(key=f"{S.TRAIN_RESUME}.{run_dir.name}").click().run()
    assert not at.exception
    line = " ".join(texts(at.error))
    assert line.startswith(f"Cannot resume {run_dir.name}: the server's disk has") and "under its floor" in line, line
    assert json.loads((run_dir / jobs.JOB).read_text())["state"] == "interrupted"
