"""Training in a background thread, one job per browser session, polled by the pages.

``TrainJob`` owns a thread that runs the one pipeline (``vae.pipeline.train_run``) and subscribes to its events; it
never calls ``st.*``. Pages read ``job.snapshot()`` (a copy taken under the job's lock)
from a fragment that reruns every ``settings.poll_seconds()``; each poll is also a
heartbeat.

Lifetime rules:
- Stop (``job.stop()``) sets the cancel event that ``fit`` checks before every batch; what
  was learned is saved as a run folder like a completed run (status ``cancelled``).
- A job whose session has gone (no heartbeat for ``settings.heartbeat_timeout()`` seconds
  and, when the Streamlit runtime can tell, no open websocket either) cancels itself
  from the training thread and is saved. The websocket check keeps a run going in a
  background tab, whose timers the browser may slow to one a minute.
- Jobs are keyed by Streamlit session id in a process-wide ``Registry`` (an
  ``st.cache_resource`` singleton guarded by a lock): sessions never see each other's
  progress, but every session lists the saved runs, which are plain folders.
"""
from __future__ import annotations

import math
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from vae.config import RunConfig
from vae.data import DataSplit
from vae.pipeline import train_run

MAX_STEP_POINTS = 1500       # step records kept for the live curves (older ones are thinned)
RUNNING = ("starting", "training", "saving")


@dataclass
class TrainJob:
    """One training run of one session. Fields below the line change while it runs."""

    session_id: str
    config: RunConfig
    data: DataSplit
    out_dir: Path
    heartbeat_timeout: float = 60.0
    alive: Callable[[], bool | None] = lambda: None   # True/False when the runtime knows the session
    # ---
    status: str = "starting"          # starting | training | saving | done | stopped | failed
    message: str = ""
    stop_reason: str = ""
    epoch: int = 0
    step: int = 0
    total_steps: int = 0
    epochs: int = 0
    eta: float = math.nan
    elapsed: float = 0.0
    samples_per_sec: float = 0.0
    steps: list[dict[str, float]] = field(default_factory=list)
    epoch_records: list[dict[str, Any]] = field(default_factory=list)
    recon: tuple[np.ndarray, np.ndarray] | None = None
    latent: dict[str, np.ndarray | None] | None = None
    run_path: Path | None = None
    version: int = 0
    started: float = field(default_factory=time.time)
    last_heartbeat: float = field(default_factory=time.monotonic)
    seen_by_session: bool = False     # the session has made the saved run active

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.cancel = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"vae-train-{self.session_id[:8]}", daemon=True)
        self._step_every = 1

    # ----- called from the pages (script threads)
    def start(self) -> "TrainJob":
        self._thread.start()
        return self

    def heartbeat(self) -> None:
        self.last_heartbeat = time.monotonic()

    def stop(self, reason: str = "stopped by request") -> None:
        with self._lock:
            if not self.stop_reason:
                self.stop_reason = reason
        self.cancel.set()

    @property
    def running(self) -> bool:
        return self.status in RUNNING

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def snapshot(self) -> dict[str, Any]:
        """A consistent copy for drawing: lists are copied, arrays are replaced, never mutated."""
        with self._lock:
            return {
                "status": self.status, "message": self.message, "stop_reason": self.stop_reason,
                "epoch": self.epoch, "epochs": self.epochs, "step": self.step, "total_steps": self.total_steps,
                "eta": self.eta, "elapsed": self.elapsed, "samples_per_sec": self.samples_per_sec,
                "steps": list(self.steps), "epoch_records": list(self.epoch_records), "recon": self.recon,
                "latent": self.latent, "run_path": self.run_path, "version": self.version,
                "config": self.config, "class_names": self.data.class_names,
                "n_train": int(self.data.train.x.shape[0]), "n_test": int(self.data.test.x.shape[0]),
            }

    # ----- the training thread
    def _session_gone(self) -> bool:
        if time.monotonic() - self.last_heartbeat <= self.heartbeat_timeout:
            return False
        try:
            alive = self.alive()
        except Exception:  # the runtime is shutting down
            alive = None
        return alive is not True

    def _on_event(self, e: dict[str, Any]) -> None:
        kind = e["type"]
        with self._lock:
            if kind == "start":
                self.status = "training"
                self.total_steps, self.epochs = e["total_steps"], e["epochs"]
                self._step_every = max(1, math.ceil(self.total_steps / MAX_STEP_POINTS))
            elif kind == "step":
                self.epoch, self.step = e["epoch"], e["global_step"]
                self.eta, self.elapsed, self.samples_per_sec = e["eta"], e["elapsed"], e["samples_per_sec"]
                if self.step % self._step_every == 0 or self.step == 1:
                    self.steps.append({"step": self.step, "epoch": self.epoch, "recon": e["recon"], "kl": e["kl"],
                                       "neg_elbo": e["recon"] + e["kl"], "loss": e["loss"], "beta": e["beta"]})
            elif kind == "epoch":
                rec = {k: e[k] for k in ("epoch", "train", "kl_per_dim", "elapsed", "partial") if k in e}
                if "test" in e:
                    rec["test"] = e["test"]
                rec["active_units"] = e.get("active_units")
                self.epoch_records.append(rec)
                if e.get("latent") is not None:
                    self.latent = e["latent"]
            elif kind == "recon":
                self.recon = (e["inputs"], e["recons"])
            self.version += 1
        if kind == "step" and not self.cancel.is_set() and self._session_gone():
            self.stop(f"stopped: no heartbeat from the browser for {self.heartbeat_timeout:g} s (tab closed?)")

    def _set(self, **kw: Any) -> None:
        with self._lock:
            for k, v in kw.items():
                setattr(self, k, v)
            self.version += 1

    def _on_pipeline_event(self, e: dict[str, Any]) -> None:
        if e["type"] == "end" and self.step > 0:
            self._set(status="saving")
        self._on_event(e)

    def _run(self) -> None:
        try:
            def extra(result, final) -> dict[str, Any]:
                cancelled = result.status == "cancelled" and self.stop_reason
                return {"trained_in": "app", **({"message": self.stop_reason} if cancelled else {})}
            result = train_run(self.config, self.data, self.out_dir, callback=self._on_pipeline_event,
                               cancel=self.cancel, extra_metrics=extra)
            if result.path is None:
                self._set(status="stopped", message=self.stop_reason or "stopped before the first batch; nothing saved")
                return
            status = {"completed": "done", "cancelled": "stopped"}.get(result.status, "failed")
            self._set(status=status, message=result.metrics["message"], run_path=result.path)
        except Exception as e:  # shown to the session as one line; the thread ends cleanly
            line = " ".join(str(e).split()) or type(e).__name__
            self._set(status="failed", message=f"training failed: {line}")
            traceback.print_exc()


class Registry:
    """session id -> latest TrainJob, guarded by a lock. One process-wide instance."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, TrainJob] = {}

    def get(self, session_id: str) -> TrainJob | None:
        with self._lock:
            return self._jobs.get(session_id)

    def start(self, job: TrainJob) -> TrainJob:
        """Register and start ``job``; refused while the session's previous job still runs."""
        with self._lock:
            old = self._jobs.get(job.session_id)
            if old is not None and old.running:
                raise RuntimeError("this session is already training; stop it first")
            self._prune()
            self._jobs[job.session_id] = job
        return job.start()

    def running(self) -> list[TrainJob]:
        with self._lock:
            return [j for j in self._jobs.values() if j.running]

    def _prune(self, keep_s: float = 3600.0) -> None:
        """Forget finished jobs of sessions that stopped polling an hour ago."""
        now = time.monotonic()
        for sid in [s for s, j in self._jobs.items() if not j.running and now - j.last_heartbeat > keep_s]:
            del self._jobs[sid]
