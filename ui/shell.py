"""The parts every page shares: the server's one-time start-up, the sidebar (run picker, run upload,
training status, who you are and the teacher's lock)."""
from __future__ import annotations

import functools
import gc
import importlib
import threading
import time
from pathlib import Path

import numpy as np
import streamlit as st
from PIL import Image

from . import catalogue, compute, identity, links, queue, quotas, settings, state, train_panel, uploads

PAGE_TITLE = "VAE Lab"


@functools.cache
def icon() -> Image.Image:
    """The browser tab's icon, drawn here and served by the app itself: three soft clusters, like codes on a
    latent map. (A ``:material/...`` page icon makes the browser fetch an SVG from fonts.gstatic.com, which
    fails offline and tells a third party who opened the app; the page links' Material icons come from the
    font Streamlit serves.) A 64x64 RGBA picture."""
    yy, xx = np.mgrid[0:64, 0:64].astype(np.float32)
    rgb = np.zeros((64, 64, 3), np.float32)
    alpha = np.zeros((64, 64), np.float32)
    for (cx, cy), colour in (((22, 24), (78, 121, 167)), ((42, 22), (242, 142, 43)), ((32, 42), (225, 87, 89))):
        a = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * 7.0 ** 2))
        rgb += a[..., None] * np.array(colour, np.float32)
        alpha += a
    out = np.concatenate([rgb / np.maximum(alpha, 1e-6)[..., None], 255 * np.clip(1.6 * alpha, 0, 1)[..., None]], -1)
    return Image.fromarray(out.round().astype(np.uint8), "RGBA")


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
        identity.sidebar()


def _run_picker() -> None:
    entries = catalogue.catalogue()
    if not entries:
        st.caption("No runs yet: train one on the Train page.")
        return
    paths = [e.path for e in entries]
    by_path = {e.path: e for e in entries}
    by_name = {Path(p).name: p for p in paths}
    links.restore("run", lambda name: st.session_state.__setitem__(state.APP_RUN, by_name[name]),
                  "the folder name of a run in the Active run list")
    if st.session_state.get(state.APP_RUN) not in by_path:
        st.session_state[state.APP_RUN] = paths[0]
    st.selectbox("Active run", paths, key=state.APP_RUN, format_func=lambda p: catalogue.label(by_path[p]),
                 help="The model every page uses: demo runs ship with the app; runs you train or upload are "
                      "saved in the app's runs folder on the server and listed here for everyone.")
    links.publish("run", Path(st.session_state[state.APP_RUN]).name)
    active = by_path[st.session_state[state.APP_RUN]]
    saved = [e for e in entries if e.kind != "demo"]
    if active.kind == "demo" and saved:     # a new tab starts on a demo: say where trained runs are
        st.caption(f"{len(saved)} run{'s' if len(saved) > 1 else ''} trained or uploaded here "
                   f"{'are' if len(saved) > 1 else 'is'} in this list after the demo runs, newest first: "
                   f"{saved[0].name}.")
    s = catalogue.summary(active)
    if s.ok:
        model = f"{s.source} (your code, vae.track)" if s.kind == "tracked" else s.arch.upper()
        bits = [f"{s.latent_dim}-D latent", model] + ([] if s.kind == "tracked" else [f"data {s.data}"])
        if s.prior == "vamp":
            bits.insert(1, "VampPrior")
        if s.objective in catalogue.OBJECTIVE_KINDS or s.beta != 1:      # IWAE, β-TCVAE, FactorVAE, β-VAE
            bits.insert(1, catalogue.kind_name(s, weights=True))
        if s.neg_elbo is not None:
            bits.append(f"test −ELBO {s.neg_elbo:.1f} nats")
        if s.status == "cancelled":
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
    job = queue.current_job()
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
    frac, _ = train_panel.progress_text(snap)           # the Train page's bar: on the clock under a time budget
    budget = snap["config"].train.time_budget
    st.progress(frac, text=f"Training: epoch {max(1, snap['epoch'])}" + (
        f", {snap['elapsed']:.0f} of {budget:g} s" if budget > 0 else f"/{snap['epochs'] or '?'}"))


def _training_status() -> None:
    job = queue.current_job()
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
                uploads.check_run_size(sum(f.size for f in files))
                quotas.before_upload(identity.person(), sum(f.size for f in files))
                path = uploads.install_run([(f.name, f.getvalue()) for f in files])
                quotas.keep_upload(path, identity.person())
            except (uploads.UploadError, quotas.QuotaError) as e:
                st.session_state[state.APP_RUN_UPLOAD_RESULT] = ("error", f"Upload refused: {e}")
            else:
                st.session_state[state.APP_RUN_UPLOAD_RESULT] = ("success", f"Added {path.name}; it is now active.")
                st.session_state[state.APP_RUN_PENDING] = str(path)
            # a fresh, empty uploader either way: Streamlit holds a widget's files in memory and copies them on
            # every rerun of the session, so refused files must not stay in it
            st.session_state[state.APP_RUN_UPLOAD_N] = n + 1
            st.rerun()
        result = st.session_state.get(state.APP_RUN_UPLOAD_RESULT)
        if result:
            (st.error if result[0] == "error" else st.success)(result[1])
