"""The Streamlit side of training: this session's id, the process-wide scheduler, and this session's job.

Training never runs in the web server: ``start`` queues a run folder and ``ui.scheduler`` runs it as its
own process (``python -m vae train --resume RUN_DIR``); pages read its progress from the folder
(``ui.jobview``). Session state keeps only which finished job this session has already made active.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from vae import jobs
from vae.config import RunConfig
from vae.data import DataSplit

from . import jobview, settings, state
from .scheduler import Scheduler

SEEN = state.TRAIN_SEEN_JOB   # the run folder whose ending this session has already handled

_SCHEDULERS: dict[str, Scheduler] = {}


def session_id() -> str:
    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else "no-session"


def _session_alive(sid: str) -> bool | None:
    """A thread-safe check the scheduler may call: is this session's websocket still open?"""
    try:
        from streamlit.runtime import Runtime
        if not Runtime.exists():
            return None
        answer = Runtime.instance().is_active_session(sid)
    except Exception:
        return None
    return answer if isinstance(answer, bool) else None  # AppTest's mock runtime answers a mock


@st.cache_resource(show_spinner=False)
def _scheduler(runs_dir: str, max_jobs: int, launcher: str, threads: int) -> Scheduler:
    sched = Scheduler(runs_dir, max_jobs=max_jobs, heartbeat_timeout=settings.heartbeat_timeout(),
                      launch=jobs.Launch(prefix=launcher, threads=threads, nice=settings.job_nice()),
                      session_alive=_session_alive)
    _SCHEDULERS[runs_dir] = sched
    return sched


def scheduler() -> Scheduler:
    """One scheduler per server process and runs folder, shared by all sessions."""
    return _scheduler(str(settings.runs_dir()), settings.max_jobs(), settings.train_launcher(),
                      settings.job_threads())


def close_all(stop_jobs: bool = True) -> None:
    """Stop every scheduler of this process (tests, between runs folders)."""
    for sched in list(_SCHEDULERS.values()):
        sched.close(stop_jobs=stop_jobs)
    _SCHEDULERS.clear()
    _scheduler.clear()


class Job:
    """This session's view of one run folder's job."""

    def __init__(self, run_dir: Path, sched: Scheduler):
        self.run_dir, self.sched = run_dir, sched

    def snapshot(self) -> dict[str, Any]:
        pos = self.sched.queue_position(self.run_dir)
        return jobview.snapshot(self.run_dir, queue_position=pos)

    @property
    def state(self) -> str:
        return jobview.STATES.get(jobs.effective_state(jobs.read_status(self.run_dir)) or "queued", "queued")

    @property
    def running(self) -> bool:
        """Queued, starting, training or saving: anything before the job's ending."""
        return jobs.effective_state(jobs.read_status(self.run_dir)) in jobs.ACTIVE

    @property
    def stopping(self) -> bool:
        return (self.run_dir / jobs.STOP).exists()

    def stop(self, reason: str = "stopped by request") -> None:
        self.sched.stop(self.run_dir, reason)

    def heartbeat(self) -> None:
        self.sched.heartbeat(session_id())

    @property
    def seen_by_session(self) -> bool:
        return st.session_state.get(SEEN) == str(self.run_dir)

    def mark_seen(self) -> None:
        st.session_state[SEEN] = str(self.run_dir)


def current_job() -> Job | None:
    sched = scheduler()
    run_dir = sched.job_of(session_id())
    return None if run_dir is None else Job(run_dir, sched)


def start(config: RunConfig, data: DataSplit) -> Job:
    """Queue ``config`` for this session; it trains in its own process when a slot is free."""
    sched = scheduler()
    run_dir = sched.submit(session_id(), config, data.name, class_names=data.class_names)
    st.session_state.pop(SEEN, None)
    return Job(run_dir, sched)


def resume(run_dir: str | Path) -> Job:
    """Queue an interrupted run again for this session (it continues from its last completed epoch)."""
    sched = scheduler()
    sched.resume(session_id(), run_dir)
    st.session_state.pop(SEEN, None)
    return Job(Path(run_dir), sched)


def watch(run_dir: str | Path) -> Job:
    """Make a queued or training run (another session's, or one a restarted server found) this session's job."""
    sched = scheduler()
    sched.adopt(session_id(), run_dir)
    st.session_state.pop(SEEN, None)
    return Job(Path(run_dir), sched)


def active_runs() -> list[tuple[Path, dict]]:
    """Runs of the runs folder that are queued or training, oldest first."""
    return [(p, s) for p, s in jobs.list_jobs(settings.runs_dir()) if jobs.effective_state(s) in jobs.ACTIVE]


def interrupted_runs() -> list[tuple[Path, dict]]:
    """Runs of the runs folder whose training process is gone before they finished, newest first."""
    out = [(p, s) for p, s in jobs.list_jobs(settings.runs_dir()) if jobs.effective_state(s) == "interrupted"]
    return out[::-1]
