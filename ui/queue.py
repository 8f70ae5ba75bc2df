"""The Streamlit side of training: who is asking, the process-wide scheduler, and this person's job.

Training never runs in the web server: ``start`` queues a run folder and ``ui.scheduler`` runs it as its
own process (``python -m vae train --resume RUN_DIR``); pages read its progress from the folder
(``ui.jobview``). A job belongs to the person who started it (``ui.identity``): every tab of theirs shows it, with
its Stop button; anyone else may watch it here, read-only (``watch``), and only the teacher may stop, resume or delete
it too. Session state keeps which of the person's jobs this tab last showed (so the tab that followed a job handles its
ending) and which finished job this tab has already made active.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from vae import jobs
from vae.config import RunConfig
from vae.data import DataSplit

from . import identity, jobview, owners, quotas, settings, state
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
def _scheduler(runs_dir: str, max_jobs: int, launcher: str, threads: int, keep_snapshots: int) -> Scheduler:
    sched = Scheduler(runs_dir, max_jobs=max_jobs, heartbeat_timeout=settings.heartbeat_timeout(),
                      launch=jobs.Launch(prefix=launcher, threads=threads, nice=settings.job_nice(),
                                        data_roots=tuple(str(p) for p in settings.data_roots())),
                      session_alive=_session_alive, keep_snapshots=keep_snapshots)
    _SCHEDULERS[runs_dir] = sched
    return sched


def scheduler() -> Scheduler:
    """One scheduler per server process and runs folder, shared by all sessions."""
    return _scheduler(str(settings.runs_dir()), settings.max_jobs(), settings.train_launcher(),
                      settings.job_threads(), settings.snapshots_kept())


def close_all(stop_jobs: bool = True) -> None:
    """Stop every scheduler of this process (tests, between runs folders)."""
    for sched in list(_SCHEDULERS.values()):
        sched.close(stop_jobs=stop_jobs)
    _SCHEDULERS.clear()
    _scheduler.clear()


class Job:
    """A session's view of one run folder's job."""

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
        self.sched.stop(self.run_dir, reason, by=identity.actor())

    def heartbeat(self) -> None:
        """This tab shows the job (only its owner's heartbeats keep it from being stopped as abandoned)."""
        self.sched.heartbeat(identity.person(), session_id(), self.run_dir)

    @property
    def seen_by_session(self) -> bool:
        return st.session_state.get(SEEN) == str(self.run_dir)

    def mark_seen(self) -> None:
        st.session_state[SEEN] = str(self.run_dir)


def current_job() -> Job | None:
    """This person's job queued or training (from any of their tabs), else the one this tab last showed."""
    sched = scheduler()
    run_dir = sched.active_job_of(identity.person())
    if run_dir is not None:
        st.session_state[state.TRAIN_FOLLOWED] = str(run_dir)
        return Job(run_dir, sched)
    followed = st.session_state.get(state.TRAIN_FOLLOWED)
    if followed and (Path(followed) / jobs.JOB).is_file():
        return Job(Path(followed), sched)
    return None


def start(config: RunConfig, data: DataSplit) -> Job:
    """Queue ``config`` for this person; it trains in its own process when a slot is free. Refused with one line
    (``QuotaError``, ``RuntimeError``) over a quota: epochs, time budget, disk, free space, jobs per person."""
    config = quotas.bound(config)
    me = identity.person()
    quotas.before_job(me)
    sched = scheduler()
    run_dir = sched.submit(me, config, data.name, session_id=session_id(), per_person=settings.jobs_per_person(),
                           class_names=data.class_names)
    st.session_state[state.TRAIN_FOLLOWED] = str(run_dir)
    st.session_state.pop(SEEN, None)
    return Job(run_dir, sched)


def resume(run_dir: str | Path) -> Job:
    """Queue an interrupted run again (it continues from its last completed epoch): its owner's, or the teacher's.
    Refused with one line (``RuntimeError``, ``owners.NotYours``, ``QuotaError``: the free-space floor and the
    owner's disk quota, as for a start)."""
    sched = scheduler()
    who = identity.actor()
    owner = owners.owner_of(run_dir)
    quotas.before_job(owner or who.person)     # a resumed run writes to disk as a new one does
    sched.resume(who, run_dir, session_id=session_id(), per_person=settings.jobs_per_person())
    if owner == who.person:
        st.session_state[state.TRAIN_FOLLOWED] = str(run_dir)
        st.session_state.pop(SEEN, None)
    return Job(Path(run_dir), sched)


def stop(run_dir: str | Path) -> None:
    """Stop a run: its owner's or the teacher's (``owners.NotYours`` otherwise)."""
    scheduler().stop(run_dir, by=identity.actor())


def delete(run_dir: str | Path) -> None:
    """Delete a run folder: its owner's or the teacher's, never while it trains (ValueError / NotYours, one line)."""
    scheduler().delete(run_dir, by=identity.actor())
    for key in (state.TRAIN_FOLLOWED, state.TRAIN_WATCHING):
        if st.session_state.get(key) == str(run_dir):
            st.session_state.pop(key, None)


def watch(run_dir: str | Path | None) -> None:
    """Follow another person's run in this tab, read-only (None: stop following)."""
    if run_dir is None:
        st.session_state.pop(state.TRAIN_WATCHING, None)
    else:
        st.session_state[state.TRAIN_WATCHING] = str(run_dir)


def watched() -> Job | None:
    path = st.session_state.get(state.TRAIN_WATCHING)
    if not path or not (Path(path) / jobs.JOB).is_file():
        return None
    return Job(Path(path), scheduler())


def all_jobs() -> list[tuple[Path, dict]]:
    """Every job of the runs folder with its ``job.json`` (a damaged one reads as the state "damaged"), oldest
    first: read once per page run by the Train page's lists."""
    return jobs.list_jobs(settings.runs_dir())


def active_runs(listed: list[tuple[Path, dict]] | None = None) -> list[tuple[Path, dict]]:
    """Runs of the runs folder that are queued or training, oldest first."""
    listed = all_jobs() if listed is None else listed
    return [(p, s) for p, s in listed if jobs.effective_state(s) in jobs.ACTIVE]


def interrupted_runs(listed: list[tuple[Path, dict]] | None = None) -> list[tuple[Path, dict]]:
    """Runs of the runs folder whose training process is gone before they finished, newest first."""
    listed = all_jobs() if listed is None else listed
    return [(p, s) for p, s in listed if jobs.effective_state(s) == "interrupted"][::-1]


def damaged_runs(listed: list[tuple[Path, dict]] | None = None) -> list[tuple[Path, dict]]:
    """Runs whose ``job.json`` cannot be read (never launched; shown with what was kept), newest first."""
    listed = all_jobs() if listed is None else listed
    return [(p, s) for p, s in listed if s.get("state") == "damaged"][::-1]
