"""Writes a training run's progress into its folder while it trains (the layout is in ``vae.jobs``).

``RunLog`` is one more subscriber of the training loop's events, like the CLI's progress bar, plus the
loop's ``on_epoch_end`` hook: every completed epoch leaves a checkpoint and a loadable run folder, so a
killed process or server loses at most the epoch in progress. Whoever watches the run (the app, another
replica, a person with ``tail -f``) reads the files; nothing is shared in memory.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import jobs
from .checkpoint import save_checkpoint
from .config import RunConfig
from .data import DataSplit
from .runs import save_run

MAX_STEP_EVENTS = 1500       # step events kept in events.jsonl for the live curves (thinned evenly)
LIVE_EVERY_S = 1.0           # the live reconstructions are rewritten at most this often


class RunLog:
    """Subscriber (``__call__(event)``) and epoch hook (``on_epoch_end(trainer)``) for one run folder."""

    def __init__(self, run_dir: str | Path, config: RunConfig, data: DataSplit, *, launched_by: str = ""):
        self.dir, self.config, self.data = Path(run_dir), config, data
        self.dir.mkdir(parents=True, exist_ok=True)
        self.every = 1
        self.last_status = 0.0
        self.last_live = 0.0
        self.recon: tuple[np.ndarray, np.ndarray] | None = None
        self.launched_by = launched_by
        self.events = open(self.dir / jobs.EVENTS, "a", encoding="utf-8")

    def close(self) -> None:
        self.events.close()

    def _append(self, event: dict[str, Any]) -> None:
        self.events.write(json.dumps(event, allow_nan=True, default=float) + "\n")
        self.events.flush()

    # ------------------------------------------------------------------------------------ events
    def __call__(self, e: dict[str, Any]) -> None:
        kind = e["type"]
        if kind == "start":
            self.every = max(1, -(-e["total_steps"] // MAX_STEP_EVENTS))
            self._append({**e, "time": time.time()})
            jobs.write_status(self.dir, state="running", pid=os.getpid(), host=jobs.HOST, started=time.time(),
                              epochs=e["epochs"], total_steps=e["total_steps"], launched_by=self.launched_by,
                              message="training", epoch=e.get("resumed_at_epoch") or 0,
                              world_size=e.get("world_size", 1), device=e.get("device"))
            self.last_status = time.monotonic()
        elif kind in ("step", "m2_step"):
            if e["global_step"] % self.every == 0 or e["global_step"] == 1:
                self._append(e)
            now = time.monotonic()
            if now - self.last_status >= jobs.HEARTBEAT_S:
                self.last_status = now
                jobs.write_status(self.dir, step=e["global_step"], epoch_running=e["epoch"],
                                  samples_per_sec=e.get("samples_per_sec"), eta=e.get("eta"),
                                  elapsed=e.get("elapsed"))
        elif kind == "recon":
            self.recon = (e["inputs"], e["recons"])
            now = time.monotonic()
            if now - self.last_live >= LIVE_EVERY_S:
                self.last_live = now
                jobs.write_npz(self.dir / jobs.LIVE, inputs=e["inputs"], recons=e["recons"],
                               global_step=np.array(e["global_step"]))
        elif kind == "epoch":
            lat = e.get("latent") or {}
            record = {k: v for k, v in e.items() if k != "latent"}
            self._append(record)
            jobs.write_npz(jobs.snapshot_path(self.dir, e["epoch"]), mu=lat.get("mu"), logvar=lat.get("logvar"),
                           y=lat.get("y"), inputs=None if self.recon is None else self.recon[0],
                           recons=None if self.recon is None else self.recon[1],
                           kl_per_dim=np.asarray(e.get("test_kl_per_dim") or e["kl_per_dim"], np.float32))
            if self.recon is not None:
                jobs.write_npz(self.dir / jobs.LIVE, inputs=self.recon[0], recons=self.recon[1])
            # the status's "epoch" moves in on_epoch_end, once that epoch is saved
        elif kind == "end":
            self._append({**e, "time": time.time()})

    # ------------------------------------------------------------------------------------ epochs
    def on_epoch_end(self, trainer) -> None:
        """The run as of this epoch: a checkpoint to resume from and a folder any tool can load."""
        ck = trainer.checkpoint()
        save_checkpoint(self.dir, trainer.model, ck)
        last = ck.history["epochs"][-1] if ck.history["epochs"] else {}
        save_run(self.dir, trainer.model, self.config, {
            "status": "running", "message": f"training: epoch {ck.epoch} of {self.config.train.epochs} done",
            "seconds": ck.elapsed, "n_train": len(self.data.train), "history": ck.history,
            "final": {**(last.get("test") or {}), "active_units": last.get("active_units"),
                      "kl_per_dim": last.get("test_kl_per_dim")} if last.get("test") else {},
            "data": {"name": self.data.name, "source": self.data.source, "class_names": self.data.class_names}})
        # only now: "epoch N" in the status promises that a kill from here on keeps epoch N
        jobs.write_status(self.dir, epoch=ck.epoch, test=last.get("test"))
