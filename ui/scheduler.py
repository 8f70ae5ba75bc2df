"""The app's training queue: at most ``max_jobs`` runs train at once, each in its own process.

A session's Start queues a run folder (``vae.jobs.queue_run``); a background thread launches queued jobs
(``python -m vae train --resume RUN_DIR``, through the configured launcher) while fewer than ``max_jobs``
of this server's jobs are alive, oldest first, and watches them: a process that ends without writing its
final state was killed, and its job is marked ``interrupted`` (its last epoch is kept; Resume continues
it). A job whose session is gone (no heartbeat for ``heartbeat_timeout`` seconds and, when the runtime can
tell, no open websocket) is asked to stop, and saves what it learned.

Everything a job is lives in its folder, so a restarted server finds every job again: alive ones are
adopted and watched, dead ones marked interrupted. Several servers may share one runs folder: a queued
job is launched by whichever claims it first (``vae.jobs.claim``); the limit counts this server's jobs.
No Streamlit here: ``ui.queue`` owns the process-wide instance and the session ids.
"""
from __future__ import annotations

import secrets
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable

from vae import jobs
from vae.config import RunConfig


class Scheduler:
    def __init__(self, runs_dir: str | Path, *, max_jobs: int = 1, launch: jobs.Launch = jobs.Launch(),
                 heartbeat_timeout: float = 60.0, session_alive: Callable[[str], bool | None] = lambda sid: None,
                 interval: float = 0.5, env: dict[str, str] | None = None):
        self.runs_dir = Path(runs_dir)
        self.max_jobs, self.launch_with, self.heartbeat_timeout = max_jobs, launch, heartbeat_timeout
        self.session_alive, self.interval = session_alive, interval
        self.server_id = f"{jobs.HOST}:{secrets.token_hex(3)}"
        self.env = {"VAE_LAB_LAUNCHED_BY": f"app {self.server_id}", **(env or {})}
        self._lock = threading.RLock()
        self._procs: dict[Path, subprocess.Popen] = {}
        self._adopted: set[Path] = set()              # alive jobs found at start-up (a previous server's)
        self._owner: dict[str, Path] = {}             # session id -> its latest job
        self._beats: dict[str, float] = {}
        self._wake = threading.Event()
        self._closed = False
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self._reconcile()
        self._thread = threading.Thread(target=self._loop, name="vae-scheduler", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------------------ sessions
    def submit(self, session_id: str, config: RunConfig, data_name: str, **info) -> Path:
        """Queue ``config`` for this session; refused while the session's previous job is queued or running."""
        with self._lock:
            current = self._owner.get(session_id)
            if current is not None and jobs.effective_state(jobs.read_status(current)) in jobs.ACTIVE:
                raise RuntimeError("this session already has a run training or queued; stop it first")
            run_dir = jobs.queue_run(self.runs_dir, config, data_name, owner=session_id, **info)
            self._owner[session_id] = run_dir
            self._beats[session_id] = time.monotonic()
        self._wake.set()
        return run_dir

    def job_of(self, session_id: str) -> Path | None:
        with self._lock:
            return self._owner.get(session_id)

    def adopt(self, session_id: str, run_dir: str | Path) -> None:
        """Make ``run_dir`` this session's job (to watch it, or after a Resume)."""
        with self._lock:
            self._owner[session_id] = Path(run_dir)
            self._beats[session_id] = time.monotonic()

    def heartbeat(self, session_id: str) -> None:
        with self._lock:
            self._beats[session_id] = time.monotonic()

    def resume(self, session_id: str, run_dir: str | Path) -> None:
        """Queue an interrupted (or stopped) run again; it continues from its last completed epoch."""
        run_dir = Path(run_dir)
        state = jobs.effective_state(jobs.read_status(run_dir))
        if state in jobs.ACTIVE:
            raise RuntimeError(f"{run_dir.name} is already {state}")
        with self._lock:
            current = self._owner.get(session_id)
            if current is not None and current != run_dir and \
                    jobs.effective_state(jobs.read_status(current)) in jobs.ACTIVE:
                raise RuntimeError("this session already has a run training or queued; stop it first")
            jobs.release(run_dir)
            (run_dir / jobs.STOP).unlink(missing_ok=True)
            jobs.write_status(run_dir, state="queued", created=time.time(), owner=session_id,
                              message="queued to resume")
            self.adopt(session_id, run_dir)
        self._wake.set()

    def stop(self, run_dir: str | Path, reason: str = "stopped by request") -> None:
        """Take a queued job off the queue, or ask a running one to stop after its current batch."""
        run_dir = Path(run_dir)
        status = jobs.read_status(run_dir) or {}
        if status.get("state") == "queued" and jobs.claim(run_dir, self.server_id):
            jobs.write_status(run_dir, state="stopped", ended=time.time(),
                              message="taken off the queue before it started; nothing was trained")
        else:
            jobs.request_stop(run_dir, reason)
        self._wake.set()

    # ------------------------------------------------------------------------------ the queue
    def running(self) -> list[Path]:
        """This server's jobs whose processes are alive (launched here, or adopted at start-up)."""
        with self._lock:
            own = [p for p, proc in self._procs.items() if proc.poll() is None]
            return own + [p for p in self._adopted if jobs.is_alive(jobs.read_status(p))]

    def queue_position(self, run_dir: str | Path) -> int | None:
        return jobs.queue_position(self.runs_dir, run_dir)

    def close(self, *, stop_jobs: bool = False, timeout: float = 30.0) -> None:
        """Stop the scheduler's thread (tests); with ``stop_jobs``, stop this server's jobs and wait for them."""
        self._closed = True
        self._wake.set()
        self._thread.join(timeout)
        if stop_jobs:
            with self._lock:
                procs = dict(self._procs)
            for run_dir in procs:
                jobs.request_stop(run_dir, "stopped: the server is shutting down")
            for proc in procs.values():
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()

    def _loop(self) -> None:
        while not self._closed:
            try:
                self._tick()
            except Exception as e:  # the loop must outlive one bad folder; say so in the server log
                print(f"vae-scheduler: {type(e).__name__}: {e}", flush=True)
            self._wake.wait(self.interval)
            self._wake.clear()

    def _tick(self) -> None:
        with self._lock:
            self._reap()
            self._stop_abandoned()
            free = self.max_jobs - len(self.running())
            if free <= 0:
                return
            for run_dir, status in jobs.list_jobs(self.runs_dir):
                if free <= 0:
                    break
                if status.get("state") != "queued" or (run_dir / jobs.STOP).exists():
                    continue
                if not jobs.claim(run_dir, self.server_id):
                    continue
                jobs.write_status(run_dir, claimed_by=self.server_id, launched=time.time(),
                                  launcher=self.launch_with.prefix or "process", message="starting")
                self._procs[run_dir] = jobs.launch(run_dir, self.launch_with, env=self.env)
                free -= 1

    def _reap(self) -> None:
        for run_dir, proc in list(self._procs.items()):
            code = proc.poll()
            if code is None:
                continue
            del self._procs[run_dir]
            state = (jobs.read_status(run_dir) or {}).get("state")
            if state not in jobs.ACTIVE:
                continue                                   # it wrote its own ending
            why = (f"the training process was killed (signal {-code})" if code < 0 else
                   f"the training process exited with code {code}")
            if state == "queued":                          # it died before training: say why, from its log
                jobs.write_status(run_dir, state="failed", ended=time.time(),
                                  message=f"{why} before training started: {jobs.last_error(run_dir)}")
            else:
                jobs.mark_interrupted(run_dir, why)
        for run_dir in list(self._adopted):
            status = jobs.read_status(run_dir)
            if not jobs.is_alive(status):
                self._adopted.discard(run_dir)
                if (status or {}).get("state") == "running":
                    jobs.mark_interrupted(run_dir, "the training process stopped")

    def _stop_abandoned(self) -> None:
        now = time.monotonic()
        for sid, run_dir in self._owner.items():
            status = jobs.read_status(run_dir) or {}
            if status.get("state") not in jobs.ACTIVE or (run_dir / jobs.STOP).exists():
                continue
            if now - self._beats.get(sid, now) <= self.heartbeat_timeout:
                continue
            try:
                alive = self.session_alive(sid)
            except Exception:  # the runtime is shutting down
                alive = None
            if alive is not True:
                self.stop(run_dir, f"stopped: no heartbeat from the browser for {self.heartbeat_timeout:g} s "
                                   "(tab closed?)")

    def _reconcile(self) -> None:
        """At start-up: adopt the jobs still training on this host, mark the dead ones interrupted."""
        for run_dir, status in jobs.list_jobs(self.runs_dir):
            if status.get("state") == "queued" and status.get("launched") and \
                    time.time() - status["launched"] > 120:    # claimed by a server that died launching it
                jobs.release(run_dir)
            if status.get("state") != "running":
                continue
            if jobs.is_alive(status):
                if status.get("host") == jobs.HOST:
                    self._adopted.add(run_dir)
            else:
                jobs.mark_interrupted(run_dir, "the training process stopped (the server was restarted or the "
                                               "process was killed)")
