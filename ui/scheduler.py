"""The app's training queue: at most ``max_jobs`` runs train at once, each in its own process.

A person's Start queues a run folder (``vae.jobs.queue_run``, with the person as its ``owner``); a background thread
launches queued jobs (``python -m vae train --resume RUN_DIR``, through the configured launcher) while fewer than
``max_jobs`` of this server's jobs are alive, oldest first, and watches them: a process that ends without writing its
final state was killed, and its job is marked ``interrupted`` (its last epoch is kept; Resume continues it). When a job
ends its snapshots are thinned to ``keep_snapshots`` (evenly spaced).

Owners: only a job's owner, or the teacher, may stop or resume it (``ui.owners.Actor``); a person has at most
``per_person`` jobs queued or training, counted from the runs folder's ``job.json`` owners, so more tabs or another
replica give no more. A job its owner started here is stopped when that owner is gone: none of the owner's sessions
has sent a heartbeat for ``heartbeat_timeout`` seconds and (when the runtime can tell) none has an open websocket.
Anyone else's heartbeats (someone watching it, the teacher) do not count.

Everything a job is lives in its folder, so a restarted server finds every job again: alive ones are adopted and
watched, dead ones marked interrupted. Several servers may share one runs folder: a queued job is launched by whichever
claims it first (``vae.jobs.claim``); the limit counts this server's jobs; a submit's per-person count and a resume's
state check and claim happen under a lock on the runs folder (``flock``), so two replicas, like two threads, never
start one run twice. No Streamlit here: ``ui.queue`` owns the process-wide instance and who is asking.
"""
from __future__ import annotations

import contextlib
import secrets
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable

from vae import jobs, upkeep
from vae.config import RunConfig

from .owners import Actor, owner_of

try:
    import fcntl
except ImportError:          # Windows: one server per runs folder, the thread lock is enough
    fcntl = None

LOCK_FILE = ".jobs.lock"


class Scheduler:
    def __init__(self, runs_dir: str | Path, *, max_jobs: int = 1, launch: jobs.Launch = jobs.Launch(),
                 heartbeat_timeout: float = 60.0, session_alive: Callable[[str], bool | None] = lambda sid: None,
                 interval: float = 0.5, env: dict[str, str] | None = None, keep_snapshots: int = 0):
        self.runs_dir = Path(runs_dir)
        self.max_jobs, self.launch_with, self.heartbeat_timeout = max_jobs, launch, heartbeat_timeout
        self.session_alive, self.interval, self.keep_snapshots = session_alive, interval, keep_snapshots
        self.server_id = f"{jobs.HOST}:{secrets.token_hex(3)}"
        self.env = {"VAE_LAB_LAUNCHED_BY": f"app {self.server_id}", **(env or {})}
        self._lock = threading.RLock()
        self._procs: dict[Path, subprocess.Popen] = {}
        self._adopted: set[Path] = set()              # alive jobs found at start-up (a previous server's)
        self._latest: dict[str, Path] = {}            # person -> the job they last started or resumed here
        self._active: dict[str, Path] = {}            # person -> an active job of theirs (the last scan of the folder)
        self._guarded: dict[Path, str] = {}           # job -> its owner, whose leaving stops it (started here by them)
        self._beats: dict[str, dict[str, float]] = {}  # person -> {session id: last heartbeat}
        self._stops: dict[Path, str] = {}             # stops asked here, until the job ends (see ``stop``)
        self._wake = threading.Event()
        self._closed = False
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self._reconcile()
        self._thread = threading.Thread(target=self._loop, name="vae-scheduler", daemon=True)
        self._thread.start()

    @contextlib.contextmanager
    def _folder_lock(self):
        """This process's lock, then an exclusive lock on the runs folder shared with every other server."""
        with self._lock:
            if fcntl is None:
                yield
                return
            with open(self.runs_dir / LOCK_FILE, "a") as f:
                fcntl.flock(f, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(f, fcntl.LOCK_UN)

    # ------------------------------------------------------------------------------ people
    def submit(self, person: str, config: RunConfig, data_name: str, *, session_id: str = "", per_person: int = 1,
               **info) -> Path:
        """Queue ``config`` for ``person`` (from their session ``session_id``, by default one named as the person);
        refused (one line) while they have ``per_person`` jobs queued or training."""
        with self._folder_lock():
            self._check_quota(person, per_person)
            run_dir = jobs.queue_run(self.runs_dir, config, data_name, owner=person, **info)
            self._own(person, session_id or person, run_dir)
        self._wake.set()
        return run_dir

    def _check_quota(self, person: str, per_person: int) -> None:
        mine = [p for p, s in jobs.list_jobs(self.runs_dir)
                if s.get("owner") == person and jobs.effective_state(s) in jobs.ACTIVE]
        if len(mine) >= per_person:
            what = f"a run training or queued ({mine[-1].name})" if per_person == 1 else \
                f"{len(mine)} runs training or queued"
            raise RuntimeError(f"you already have {what}; this server allows {per_person} per person "
                               "(VAE_LAB_JOBS_PER_PERSON): stop it or wait for it to end")

    def _own(self, person: str, session_id: str, run_dir: Path) -> None:
        self._latest[person] = self._active[person] = run_dir
        self._guarded[run_dir] = person
        self._beats.setdefault(person, {})[session_id] = time.monotonic()

    def active_job_of(self, person: str) -> Path | None:
        """``person``'s job that is queued or training (started in any tab or on any replica), else None."""
        with self._lock:
            for run_dir in (self._latest.get(person), self._active.get(person)):
                if run_dir is not None and jobs.effective_state(jobs.read_status(run_dir)) in jobs.ACTIVE:
                    return run_dir
        return None

    def job_of(self, person: str) -> Path | None:
        """The job ``person`` last started or resumed on this server (whatever its state), else their active one."""
        with self._lock:
            return self._latest.get(person) or self.active_job_of(person)

    def heartbeat(self, person: str, session_id: str = "", run_dir: str | Path | None = None) -> None:
        """A session of ``person`` is showing their job. The job becomes guarded by the rule for abandoned jobs
        when its owner is this person (a job started before a server restart, say, once its owner is back)."""
        with self._lock:
            self._beats.setdefault(person, {})[session_id or person] = time.monotonic()
            if run_dir is not None and Path(run_dir) not in self._guarded and owner_of(run_dir) == person:
                self._guarded[Path(run_dir)] = person

    def resume(self, actor: Actor | str, run_dir: str | Path, *, session_id: str = "", per_person: int = 1) -> None:
        """Queue an interrupted (or stopped) run again; it continues from its last completed epoch. ``actor``: who
        asks (a person id alone: no teacher's rights). The state check, the owner check, the quota and the claim's
        release all happen under the folder lock: of two Resumes at once (two tabs, two replicas) one queues the run
        and the other is refused."""
        run_dir = Path(run_dir)
        actor = actor if isinstance(actor, Actor) else Actor(actor)
        with self._folder_lock():
            status = jobs.read_status(run_dir)
            state = jobs.effective_state(status)
            if status is None:
                raise RuntimeError(f"{run_dir.name} is not a job of this server")
            if state == "damaged":
                raise RuntimeError(f"{run_dir.name} cannot be resumed: {status.get('message')}")
            if state in jobs.ACTIVE:
                raise RuntimeError(f"{run_dir.name} is already {state}")
            owner = owner_of(run_dir, status)
            actor.require(owner, "resume", run_dir.name)
            if owner == actor.person:
                self._check_quota(actor.person, per_person)
            jobs.release(run_dir)                           # the previous launch's claim: its process is gone
            (run_dir / jobs.STOP).unlink(missing_ok=True)
            self._stops.pop(run_dir, None)
            jobs.write_status(run_dir, state="queued", created=time.time(), launched=None, message="queued to resume")
            if owner == actor.person:
                self._own(actor.person, session_id or actor.person, run_dir)
        self._wake.set()

    def stop(self, run_dir: str | Path, reason: str = "stopped by request", *, by: Actor | None = None) -> None:
        """Take a queued job off the queue, or ask a running one to stop after its current batch. ``by``: the person
        asking (refused unless they own it or are the teacher); None for the server's own stops."""
        run_dir = Path(run_dir)
        status = jobs.read_status(run_dir) or {}
        if by is not None:
            by.require(owner_of(run_dir, status), "stop", run_dir.name)
        if status.get("state") == "queued" and jobs.claim(run_dir, self.server_id):
            jobs.write_status(run_dir, state="stopped", ended=time.time(),
                              message="taken off the queue before it started; nothing was trained")
        else:
            jobs.request_stop(run_dir, reason)
            with self._lock:
                self._stops[run_dir] = reason
        self._wake.set()

    def _keep_stops(self, listed: list[tuple[Path, dict]]) -> None:
        """A job's process clears the stop file when it starts (a stop request belongs to the previous process), so
        a stop asked between its launch and its start would be lost: ask again while it runs, until it ends."""
        states = {p: s.get("state") for p, s in listed}
        for run_dir, reason in list(self._stops.items()):
            if states.get(run_dir) not in jobs.ACTIVE:
                del self._stops[run_dir]
            elif states[run_dir] == "running" and not (run_dir / jobs.STOP).exists():
                jobs.request_stop(run_dir, reason)

    def delete(self, run_dir: str | Path, *, by: Actor) -> None:
        """Delete a run folder of the runs folder: its owner's or the teacher's, and never while it trains."""
        run_dir = Path(run_dir)
        with self._folder_lock():
            by.require(owner_of(run_dir), "delete", run_dir.name)
            upkeep.remove_run(self.runs_dir, run_dir.name)
            self._procs.pop(run_dir, None)                  # its process has written its ending and is exiting
            self._adopted.discard(run_dir)
            for table in (self._latest, self._active):
                for person in [k for k, v in table.items() if v == run_dir]:
                    del table[person]
            self._guarded.pop(run_dir, None)

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
                if run_dir.is_dir():
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
        listed = jobs.list_jobs(self.runs_dir)
        with self._lock:
            self._active = {str(s.get("owner")): p for p, s in listed
                            if s.get("owner") and jobs.effective_state(s) in jobs.ACTIVE}
            self._reap()
            self._keep_stops(listed)
            self._stop_abandoned()
            free = self.max_jobs - len(self.running())
            for run_dir, status in listed:
                if free <= 0:
                    break
                if status.get("state") != "queued" or (run_dir / jobs.STOP).exists():
                    continue                               # a damaged job.json reads as "damaged": never launched
                if not jobs.claim(run_dir, self.server_id):
                    continue
                jobs.write_status(run_dir, claimed_by=self.server_id, launched=time.time(),
                                  launcher=self.launch_with.prefix or "process", message="starting")
                self._procs[run_dir] = jobs.launch(run_dir, self.launch_with, env=self.env)
                free -= 1

    def _ended(self, run_dir: Path) -> None:
        """A job of this server ended: keep its snapshots within bounds."""
        self._guarded.pop(run_dir, None)
        if self.keep_snapshots > 0:
            upkeep.thin_snapshots(run_dir, self.keep_snapshots)

    def _reap(self) -> None:
        for run_dir, proc in list(self._procs.items()):
            code = proc.poll()
            if code is None:
                continue
            del self._procs[run_dir]
            state = (jobs.read_status(run_dir) or {}).get("state")
            if state in jobs.ACTIVE:                       # it did not write its own ending
                why = (f"the training process was killed (signal {-code})" if code < 0 else
                       f"the training process exited with code {code}")
                if state == "queued":                      # it died before training: say why, from its log
                    jobs.write_status(run_dir, state="failed", ended=time.time(),
                                      message=f"{why} before training started: {jobs.last_error(run_dir)}")
                else:
                    jobs.mark_interrupted(run_dir, why)
            self._ended(run_dir)
        for run_dir in list(self._adopted):
            status = jobs.read_status(run_dir)
            if not jobs.is_alive(status):
                self._adopted.discard(run_dir)
                if (status or {}).get("state") == "running":
                    jobs.mark_interrupted(run_dir, "the training process stopped")
                self._ended(run_dir)

    def _stop_abandoned(self) -> None:
        now = time.monotonic()
        for person, beats in list(self._beats.items()):     # forget tabs gone for long (an hour, or ten timeouts)
            for sid in [sid for sid, t in beats.items() if now - t > max(3600.0, 10 * self.heartbeat_timeout)]:
                del beats[sid]
            if not beats:
                del self._beats[person]
        for run_dir, person in list(self._guarded.items()):
            status = jobs.read_status(run_dir) or {}
            if status.get("state") not in jobs.ACTIVE:      # ended (or its job.json is damaged)
                self._guarded.pop(run_dir, None)
                continue
            if (run_dir / jobs.STOP).exists():
                continue
            beats = self._beats.get(person, {})
            if any(now - t <= self.heartbeat_timeout for t in beats.values()):
                continue
            if any(self._alive(sid) for sid in beats):
                continue
            self.stop(run_dir, f"stopped: no heartbeat from its owner's browser for {self.heartbeat_timeout:g} s "
                               "(tab closed?)")
            self._guarded.pop(run_dir, None)

    def _alive(self, sid: str) -> bool:
        try:
            return self.session_alive(sid) is True
        except Exception:  # the runtime is shutting down
            return False

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
