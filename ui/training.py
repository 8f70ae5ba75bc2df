"""The Streamlit side of training: this session's id, the process-wide job registry, and
starting a job. The job itself (``ui.worker``) never touches Streamlit."""
from __future__ import annotations

import threading

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from vae.config import RunConfig
from vae.data import DataSplit
from vae.runs import new_run_dir

from . import settings
from .worker import Registry, TrainJob


@st.cache_resource(show_spinner=False)
def registry() -> Registry:
    """One registry per server process, shared by all sessions (each sees only its own job)."""
    return Registry()


def session_id() -> str:
    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else "no-session"


def _liveness(sid: str):
    """A thread-safe check the job may call: is this session's websocket still open?"""
    try:
        from streamlit.runtime import Runtime
        if not Runtime.exists():
            return lambda: None
        rt = Runtime.instance()
    except Exception:
        return lambda: None

    def alive() -> bool | None:
        try:
            answer = rt.is_active_session(sid)
        except Exception:
            return None
        return answer if isinstance(answer, bool) else None  # AppTest's mock runtime answers a mock
    return alive


def _warm_up() -> None:
    """Pay torch's one-time costs off the clock: the first ``torch.optim.Adam`` imports
    torch._dynamo (about 3 s on a laptop CPU), which would otherwise delay the first batch."""
    import torch
    p = torch.zeros(1, requires_grad=True)
    torch.optim.Adam([p], lr=1e-3)


@st.cache_resource(show_spinner=False)
def warm_up() -> threading.Thread:
    """Start the warm-up once per process, in the background."""
    t = threading.Thread(target=_warm_up, name="vae-warm-up", daemon=True)
    t.start()
    return t


def current_job() -> TrainJob | None:
    return registry().get(session_id())


def start(config: RunConfig, data: DataSplit) -> TrainJob:
    """Start training ``config`` on ``data`` for this session; the run is saved into the runs folder."""
    sid = session_id()
    out = new_run_dir(settings.runs_dir(), config, data.name)
    job = TrainJob(session_id=sid, config=config, data=data, out_dir=out,
                   heartbeat_timeout=settings.heartbeat_timeout(), alive=_liveness(sid))
    try:
        return registry().start(job)
    except RuntimeError:
        out.rmdir()                      # the folder was made for this job only, and is still empty
        raise
