"""Writes a training run's record into its folder while it trains (the layout is ``vae.record.FILES``).

``RunLog`` is one more subscriber of the training loop's events, like the CLI's progress bar, plus the loop's
``on_epoch_end`` hook: every completed epoch leaves a checkpoint and a loadable run folder, so a killed process or
server loses at most the epoch in progress. Whoever watches the run (the app, another replica, a person with
``tail -f``) reads the files; nothing is shared in memory. The job's own record (``job.json``, the stop file) is
kept by ``vae.jobs.JobControl``, which the command line attaches.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .checkpoint import save_checkpoint
from .config import RunConfig
from .data import DataSplit
from .record import (
    EVENTS_FILE,
    LIVE,
    SNAPSHOTS,
    DataInfo,
    EpochRecord,
    Final,
    History,
    Metrics,
    Snapshot,
    snapshot_path,
    write_snapshot,
)
from .runs import save_run

MAX_STEP_EVENTS = 1500       # step events kept in events.jsonl for the live curves (thinned evenly)
LIVE_EVERY_S = 1.0           # the live reconstructions are rewritten at most this often


def clear_record(run_dir: str | Path) -> None:
    """Remove a previous run's record (events, pictures, checkpoint) before a fresh run in the same folder."""
    run_dir = Path(run_dir)
    for name in (EVENTS_FILE, LIVE):
        (run_dir / name).unlink(missing_ok=True)
    for name in (SNAPSHOTS, "checkpoint", "checkpoint.new", "checkpoint.old"):
        shutil.rmtree(run_dir / name, ignore_errors=True)


class RunLog:
    """Subscriber (``__call__(event)``) and epoch hook (``on_epoch_end(trainer)``) for one run folder.
    ``emit`` receives the ``saved`` event once an epoch is on disk."""

    def __init__(self, run_dir: str | Path, config: RunConfig, data: DataSplit,
                 emit: Callable[[dict[str, Any]], None] | None = None):
        self.dir, self.config, self.data = Path(run_dir), config, data
        self.dir.mkdir(parents=True, exist_ok=True)
        self.emit = emit or (lambda e: None)
        self.every = 0
        self.last_live = 0.0
        self.recon: tuple[np.ndarray, np.ndarray] | None = None
        self.events = open(self.dir / EVENTS_FILE, "a", encoding="utf-8")

    def close(self) -> None:
        self.events.close()

    def _append(self, event: dict[str, Any]) -> None:
        if not self.events.closed:
            self.events.write(json.dumps(event, allow_nan=True, default=float) + "\n")
            self.events.flush()

    # ------------------------------------------------------------------------------------ events
    def __call__(self, e: dict[str, Any]) -> None:
        kind = e["type"]
        if kind == "start":
            self.every = self.every or max(1, -(-e["total_steps"] // MAX_STEP_EVENTS))
            self._append({**e, "time": time.time()})
        elif kind == "step":
            if e["global_step"] % max(1, self.every) == 0 or e["global_step"] == 1:
                self._append(e)
        elif kind == "recon":
            self.recon = (e["inputs"], e["recons"])
            now = time.monotonic()
            if now - self.last_live >= LIVE_EVERY_S:
                self.last_live = now
                write_snapshot(self.dir / LIVE, Snapshot(inputs=e["inputs"], recons=e["recons"],
                                                         global_step=e["global_step"]))
        elif kind == "epoch":
            self._epoch(e)
        elif kind == "end":
            self._append({**e, "time": time.time()})

    def _epoch(self, e: dict[str, Any]) -> None:
        lat = e.get("latent") or {}
        self._append({k: v for k, v in e.items() if k != "latent"})
        record = EpochRecord.from_dict(e)
        kl = record.test_kl_per_dim or record.kl_per_dim
        inputs, recons = self.recon if self.recon is not None else (None, None)
        write_snapshot(snapshot_path(self.dir, e["epoch"]), Snapshot(
            mu=lat.get("mu"), logvar=lat.get("logvar"), y=lat.get("y"), inputs=inputs, recons=recons,
            kl_per_dim=None if kl is None else np.asarray(kl, np.float32)))
        if self.recon is not None:
            write_snapshot(self.dir / LIVE, Snapshot(inputs=inputs, recons=recons))

    # ------------------------------------------------------------------------------------ epochs
    def on_epoch_end(self, trainer) -> None:
        """The run as of this epoch: a checkpoint to resume from and a folder any tool can load."""
        ck = trainer.checkpoint()
        save_checkpoint(self.dir, trainer.model, ck)
        history = History.from_dict(ck.history)
        last = history.epochs[-1] if history.epochs else None
        final = Final()
        if last is not None and "neg_elbo" in last.test:
            final = Final.from_dict({**last.test, "active_units": last.active_units,
                                     "kl_per_dim": last.test_kl_per_dim})
        total = sum(s.cfg.epochs for s in trainer.stages)
        save_run(self.dir, trainer.model, self.config, Metrics(
            status="running", message=f"training: epoch {ck.epoch} of {total} done", seconds=ck.elapsed,
            n_train=len(self.data.train), history=history, final=final,
            data=DataInfo(self.data.name, self.data.source, self.data.class_names)))
        # only now: "epoch N saved" promises that a kill from here on keeps epoch N
        self.emit({"type": "saved", "epoch": ck.epoch, "test": None if last is None else last.test})
