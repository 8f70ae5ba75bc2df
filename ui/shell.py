"""The parts every page shares: the server's one-time start-up, the sidebar (run picker, run upload,
training status)."""
from __future__ import annotations

import gc
import importlib
import threading
import time
from pathlib import Path

import streamlit as st

from . import compute, links, runs, settings, state, training, uploads

PAGE_TITLE = "VAE Lab"
_STARTUP_LOCK = threading.Lock()
_STARTUP: dict[str, float] = {}


def startup() -> dict[str, float]:
    """Once per server process, before its first page: import every module a page uses, then freeze the heap.

    - Importing up front means two first visitors never import the same module at once (plotly once met a
      half-imported pandas that way and a page failed).
    - ``gc.freeze()`` moves everything alive now (torch, Streamlit, plotly, pandas, the core: a few hundred
      thousand objects that live as long as the server) out of the collector's sight. Streamlit runs a full
      ``gc.collect(2)`` after every script run (``runner.postScriptGC``); without the freeze each of those
      walked this whole heap (README, "Serving a class": the measured cost per click with and without).
    """
    with _STARTUP_LOCK:
        if not _STARTUP:
            t0 = time.perf_counter()
            for name in ("pandas", "plotly.graph_objects", "plotly.subplots", "PIL.Image"):
                importlib.import_module(name)
            for path in sorted(Path(__file__).parent.glob("*.py")):
                importlib.import_module(f"{__package__}.{path.stem}")
            t1 = time.perf_counter()
            gc.collect()
            gc.freeze()
            _STARTUP.update(imports_s=t1 - t0, freeze_s=time.perf_counter() - t1,
                            frozen_objects=gc.get_freeze_count())
    return _STARTUP


def setup() -> None:
    """Called by app.py before any page: start-up once, torch threads, kept widget values, pending changes."""
    startup()
    compute.configure_torch()
    state.keep_widget_values()
    pending = st.session_state.pop(state.APP_RUN_PENDING, None)
    if pending:
        st.session_state[state.APP_RUN] = pending
    toast = st.session_state.pop(state.APP_TOAST, None)
    if toast:
        st.toast(toast)


def sidebar() -> None:
    with st.sidebar:
        _run_picker()
        _training_status()
        _run_upload()


def _run_picker() -> None:
    entries = runs.catalogue()
    if not entries:
        st.caption("No runs yet: train one on the Train page.")
        return
    paths = [e.path for e in entries]
    by_path = {e.path: e for e in entries}
    by_name = {Path(p).name: p for p in paths}
    links.restore("run", lambda name: st.session_state.__setitem__(state.APP_RUN, by_name[name]))
    if st.session_state.get(state.APP_RUN) not in by_path:
        st.session_state[state.APP_RUN] = paths[0]
    st.selectbox("Active run", paths, key=state.APP_RUN, format_func=lambda p: runs.label(by_path[p]),
                 help="The model every page uses: demo runs ship with the app; runs you train or upload are "
                      f"saved in {settings.runs_dir()} and listed for everyone.")
    links.publish("run", Path(st.session_state[state.APP_RUN]).name)
    s = runs.summary(by_path[st.session_state[state.APP_RUN]])
    if s.get("ok"):
        bits = [f"{s['latent_dim']}-D latent", s["arch"].upper(), f"data {s['data']}"]
        if s.get("prior") == "vamp":
            bits.insert(1, "VampPrior")
        if s.get("neg_elbo") is not None:
            bits.append(f"test −ELBO {s['neg_elbo']:.1f} nats")
        if s.get("status") == "cancelled":
            bits.append("stopped early")
        st.caption(" · ".join(bits))


def _finish(job) -> None:
    """Make a finished job's run active once, then rerun the whole app so every widget sees it."""
    if job.seen_by_session:
        return
    job.mark_seen()
    snap = job.snapshot()
    if snap["run_path"] is not None and snap["status"] in ("done", "stopped"):
        st.session_state[state.APP_RUN_PENDING] = str(snap["run_path"])
        what = "finished" if snap["status"] == "done" else "stopped"
        st.session_state[state.APP_TOAST] = f"Training {what}: {snap['run_path'].name} is saved and now active."
    st.rerun(scope="app")


@st.fragment(run_every=settings.poll_seconds())
def _live_status() -> None:
    job = training.current_job()
    if job is None:
        return
    job.heartbeat()
    if not job.running:
        _finish(job)
        return
    snap = job.snapshot()
    if snap["status"] in ("queued", "starting"):
        where = f"place {snap['queue_position']} in the queue" if snap["queue_position"] else "starting"
        st.progress(0.0, text=f"Training: {where}")
        return
    frac = snap["step"] / snap["total_steps"] if snap["total_steps"] else 0.0
    st.progress(min(1.0, frac), text=f"Training: epoch {max(1, snap['epoch'])}/{snap['epochs'] or '?'}")


def _training_status() -> None:
    job = training.current_job()
    if job is None:
        return
    if job.running:
        _live_status()
    elif not job.seen_by_session:
        _finish(job)


def _run_upload() -> None:
    n = st.session_state.setdefault(state.APP_RUN_UPLOAD_N, 0)
    with st.expander("Upload a run", icon=":material/upload:"):
        files = st.file_uploader(
            "A .zip of a run folder, or model.safetensors + config.json (+ metrics.json)",
            accept_multiple_files=True, key=f"{state.APP_RUN_UPLOAD}.{n}")
        if files and st.button("Add this run", key=f"{state.APP_RUN_UPLOAD}.add.{n}", type="primary"):
            try:
                path = uploads.install_run([(f.name, f.getvalue()) for f in files])
            except uploads.UploadError as e:
                st.session_state[state.APP_RUN_UPLOAD_RESULT] = ("error", f"Upload refused: {e}")
            else:
                st.session_state[state.APP_RUN_UPLOAD_RESULT] = ("success", f"Added {path.name}; it is now active.")
                st.session_state[state.APP_RUN_PENDING] = str(path)
                st.session_state[state.APP_RUN_UPLOAD_N] = n + 1   # a fresh, empty uploader
                st.rerun()
        result = st.session_state.get(state.APP_RUN_UPLOAD_RESULT)
        if result:
            (st.error if result[0] == "error" else st.success)(result[1])
