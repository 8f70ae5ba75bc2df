"""What a page shows of a training job, read from its run folder (``vae.jobs`` layout). No Streamlit here.

``snapshot(run_dir)`` returns the dict the Train page draws: state, progress, the live curves' points,
the epoch records, the latest reconstructions and latent map. The events log is read incrementally (each
call reads only the bytes appended since the last), once per process for all sessions watching the same
run, and arrays are re-read only when their file changes.
"""
from __future__ import annotations

import math
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from vae import jobs
from vae.config import RunConfig
from vae.record import EpochRecord, Snapshot, read_snapshot, snapshot_epochs, snapshot_path
from vae.runs import CONFIG, WEIGHTS, RunError, config_from_bytes

MAX_STEP_POINTS = 1500
STATES = {"queued": "queued", "running": "training", "done": "done", "stopped": "stopped", "failed": "failed",
          "interrupted": "interrupted"}
RUNNING = ("queued", "starting", "training", "saving")


class _Tail:
    """The parsed events of one run folder, extended on each ``refresh``."""

    def __init__(self, run_dir: Path):
        self.dir, self.offset, self.lock = run_dir, 0, threading.Lock()
        self.start: dict[str, Any] = {}
        self.end: dict[str, Any] | None = None
        self.steps: list[dict[str, float]] = []
        self.epochs: list[EpochRecord] = []

    def refresh(self) -> "_Tail":
        with self.lock:
            events, self.offset = jobs.read_events(self.dir, self.offset)
            for e in events:
                kind = e.get("type")
                if kind == "start":
                    self.start, self.end = e, None
                    resumed = e.get("resumed_at_epoch") or 0
                    self.epochs = [r for r in self.epochs if r.epoch <= resumed]
                    self.steps = [s for s in self.steps if s["epoch"] <= resumed]
                elif kind == "step":
                    figures = {k: float(e[k]) for k in self.start.get("reports") or ("loss", "recon", "kl")
                               if isinstance(e.get(k), (int, float))}
                    if "recon" in figures and "kl" in figures:
                        figures["neg_elbo"] = figures["recon"] + figures["kl"]
                    self.steps.append({"step": e["global_step"], "epoch": e["epoch"], "beta": e.get("beta"),
                                       "stage": e.get("stage") or "", **figures})
                    if len(self.steps) > 2 * MAX_STEP_POINTS:
                        self.steps = self.steps[::2]
                elif kind == "epoch":
                    self.epochs.append(EpochRecord.from_dict(e))
                elif kind == "end":
                    self.end = e
            return self


class _Cache:
    """A small LRU of per-run readers and file-stamped values, shared by every session of the process."""

    def __init__(self, size: int = 64):
        self.size, self.lock = size, threading.Lock()
        self.items: OrderedDict[Any, Any] = OrderedDict()

    def get(self, key, make):
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        value = make()
        with self.lock:
            self.items[key] = value
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        return value


_TAILS, _FILES = _Cache(64), _Cache(256)


def _stamp(path: Path) -> float | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def _file(path: Path, read):
    """``read(path)``, cached until the file changes."""
    stamp = _stamp(path)
    if stamp is None:
        return None
    return _FILES.get((str(path), stamp), lambda: read(path))


def _config(path: Path) -> RunConfig | None:
    try:
        return config_from_bytes(path.read_bytes(), str(path))
    except (OSError, RunError):
        return None


def latest_snapshot(run_dir: Path) -> Snapshot | None:
    epochs = snapshot_epochs(run_dir)
    return _file(snapshot_path(run_dir, epochs[-1]), read_snapshot) if epochs else None


def shown_epoch(status: dict, state: str, epochs: int) -> int:
    """The epoch the progress line names: while training, the one in progress (``epoch_running`` is written
    only with the heartbeat, so it can lag the epochs saved since); once ended, the last one saved."""
    done, running = int(status.get("epoch") or 0), int(status.get("epoch_running") or 0)
    if state in RUNNING:
        return max(running, min(done + 1, epochs) if epochs else done + 1)
    return done or running


def snapshot(run_dir: str | Path, queue_position: int | None = None) -> dict[str, Any]:
    """Everything the Train page draws for the job in ``run_dir`` (keys as the dashboard reads them)."""
    run_dir = Path(run_dir)
    status = jobs.read_status(run_dir) or {}
    state = STATES.get(jobs.effective_state(status) or "queued", "queued")
    tail = _TAILS.get(str(run_dir), lambda: _Tail(run_dir)).refresh()
    if state == "queued" and status.get("launched"):
        state = "starting"
    if state == "training" and tail.end is not None:
        state = "saving"
    last = tail.steps[-1] if tail.steps else {}
    total = tail.start.get("total_steps") or status.get("total_steps") or 0
    live = _file(run_dir / jobs.LIVE, read_snapshot)
    snap = latest_snapshot(run_dir)
    step = max(int(status.get("step") or 0), int(last.get("step") or 0))
    config = _file(run_dir / CONFIG, _config)
    eta = status.get("eta")
    message = status.get("message") or ""
    if state == "interrupted" and status.get("state") == "running":   # before anyone has written why
        message = f"the training process stopped before the run ended; {jobs.kept(run_dir, status)}"
    epochs = int(tail.start.get("epochs") or status.get("epochs") or 0)
    if state == "stopped" and not message:
        message = jobs.stop_reason(run_dir) or "stopped"
    return {
        "status": state, "message": message, "stop_reason": jobs.stop_reason(run_dir) or "",
        "epoch": shown_epoch(status, state, epochs), "epochs": epochs, "step": step, "total_steps": total,
        "eta": float(eta) if isinstance(eta, (int, float)) else math.nan,
        "elapsed": float(status.get("elapsed") or 0.0),
        "samples_per_sec": float(status.get("samples_per_sec") or 0.0),
        "steps": list(tail.steps[-MAX_STEP_POINTS:]), "epoch_records": list(tail.epochs),
        "recon": live.pair() if live is not None else None,
        "latent": {"mu": snap.mu, "y": snap.y} if snap is not None and snap.mu is not None else None,
        "run_path": run_dir if (run_dir / WEIGHTS).is_file() else None,
        "version": (tail.offset, _stamp(run_dir / jobs.JOB)), "config": config,
        "class_names": status.get("class_names"), "n_train": int(tail.start.get("n_train") or 0),
        "n_test": int(tail.start.get("n_test") or 0), "queue_position": queue_position,
        "final": status.get("final") or {}, "run_dir": run_dir,
        "world_size": int(status.get("world_size") or 1), "launcher": status.get("launcher") or "",
        "device": status.get("device") or "",
    }


def forget(run_dir: str | Path) -> None:
    """Drop a folder's cached reader (after its folder was reset by a fresh run)."""
    with _TAILS.lock:
        _TAILS.items.pop(str(Path(run_dir)), None)
