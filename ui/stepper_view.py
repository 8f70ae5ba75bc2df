"""Glue for the Loss forces page: each session's own ``vae.stepper.Stepper`` and the map with its arrows.

The stepper (a copy of the model and its optimiser, about 6 MB for the 2-D demo) lives in the session's
state, so thirty students each step their own model; it is rebuilt when the run, the start, the
learning rate or the batch size changes, or on Reset.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from vae.config import ModelConfig
from vae.data import DataError, DataSplit, ImageData
from vae.models import build_model
from vae.runs import Run
from vae.stepper import Forces, Stepper

from . import charts
from . import state as S
from .datasets import DataKey, load

ACTIVE, SCRATCH = "The active run", "Scratch (untrained)"
MAX_TRAIN = 5000      # images the stepper draws its batches from
PROBE = 300           # test images drawn on the map
RECON_C, KL_C, SUM_C = "#e15759", "#4e79a7", "text"   # "text": the theme's text colour


@st.cache_resource(show_spinner="Loading the run's data…", max_entries=4)
def _data(key: DataKey) -> DataSplit:
    return load(key)


def data_for(run: Run) -> tuple[ImageData, ImageData] | None:
    """(training images to step on, test images to draw), or None when the run's data set is not here."""
    try:
        split = _data(DataKey.of(run.config.data))
    except DataError:
        return None
    train = ImageData(split.train.x[:MAX_TRAIN], None if split.train.y is None else split.train.y[:MAX_TRAIN])
    probe = ImageData(split.test.x[:PROBE], None if split.test.y is None else split.test.y[:PROBE])
    return train, probe


def scratch_config(run: Run) -> ModelConfig:
    """An untrained 2-D MLP for the run's images (the run's own config when it is a 2-D MLP)."""
    m = run.config.model
    if steppable(run) and m.arch == "mlp":
        return m
    return ModelConfig(channels=m.channels, image_size=m.image_size, latent_dim=2)


def steppable(run: Run) -> bool:
    """Whether the run's own model can be stepped here: a 2-D latent (for the arrows) and the N(0, I) prior
    (whose KL push is the closed form the page explains)."""
    m = run.config.model
    return m.latent_dim == 2 and m.prior == "normal"


def stepper_key(run_key: str, start: str, lr: float, batch: int) -> tuple:
    return (run_key, start, lr, batch, st.session_state.get(S.STEP_RESETS, 0))


def stepper(run: Run, run_key: str, start: str, lr: float, batch: int, train: ImageData) -> Stepper:
    key = stepper_key(run_key, start, lr, batch)
    held = st.session_state.get(S.STEP_STEPPER)
    if not held or held[0] != key:
        if start == ACTIVE and steppable(run):
            model = run.model
        else:
            import torch
            torch.manual_seed(0)
            model = build_model(scratch_config(run))
        held = (key, Stepper(model, train, lr=lr, batch_size=batch, seed=0))
        st.session_state[S.STEP_STEPPER] = held
    return held[1]


def reset() -> None:
    st.session_state[S.STEP_RESETS] = int(st.session_state.get(S.STEP_RESETS, 0)) + 1
    st.session_state[S.STEP_PLAY] = False


_JS = (Path(__file__).with_name("forces_map.js")).read_text(encoding="utf-8")
_CSS = """
.vae-forces { font-family: var(--st-font, sans-serif); color: var(--st-text-color, inherit); }
.vae-forces canvas[role=img] { display: block; }
.vae-forces-legend { display: flex; flex-wrap: wrap; gap: 0.2rem 1rem; font-size: 0.85rem; margin-bottom: 0.25rem; }
.vae-forces-item { display: inline-flex; align-items: center; gap: 0.3rem; }
"""
_MAP = st.components.v2.component("vae_lab_forces_map", js=_JS, css=_CSS)
# (term, legend name, colour, line width, opacity, dashed), drawn in this order: the reconstruction push, the KL
# push over it (at beta = 1 the shorter one; under the red it disappeared), then their sum, dashed with an open head,
# so the arrows it lies on show through it (at beta = 1 the sum is nearly the reconstruction push)
TERMS = (("reconstruction", "reconstruction push", RECON_C, 2.5, 0.8, False),
         ("KL", "KL push (× β)", KL_C, 2.5, 0.95, False), ("sum", "sum", SUM_C, 1.4, 0.9, True))
VIEW_MIN = 3.0        # a locked view spans at least the prior's 3 sigma either way


def _rounded(v: np.ndarray) -> list[float | None]:
    """Four decimals, and None (JSON null, skipped by the map) for a value that is not finite: a step with a
    learning rate too large can send codes to NaN, which JSON cannot carry."""
    v = np.round(np.asarray(v, np.float64), 4)
    return [float(a) if np.isfinite(a) else None for a in v]


def locked_view(key: tuple, points: np.ndarray) -> list[float]:
    """The view kept for this session's stepper ``key`` (a new stepper, Reset or another start gets a new one): a
    square around the prior's centre holding its 3 sigma and every code at the moment it was locked, with room to
    spare, so codes moving between steps move on fixed axes (collapsing onto the prior shows as shrinking)."""
    held = st.session_state.get(S.STEP_VIEW)
    if held and held[0] == key:
        return held[1]
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    pts = pts[np.isfinite(pts).all(1)]
    r = max(VIEW_MIN, float(np.abs(pts).max()) * 1.15 if len(pts) else VIEW_MIN)
    r = float(np.ceil(r * 2) / 2)
    view = [-r, r, -r, r]
    st.session_state[S.STEP_VIEW] = (key, view)
    return view


def forces_data(probe_mu: np.ndarray, probe_y: np.ndarray | None, f: Forces, shown: list[str], step: int,
                view: list[float] | None = None) -> tuple[dict, float]:
    """What the map draws (``forces_map.js``) and the arrows' scale: the longest sum is drawn 0.6 units long.

    ``view`` ([xmin, xmax, ymin, ymax], e.g. ``locked_view``) keeps the axes; without it the view holds every
    code, every arrow's tip and the prior's 2-sigma circle, refitted at every step."""
    longest = float(np.linalg.norm(f.total, axis=1).max()) if len(f.total) else 0.0
    scale = 0.6 / longest if longest > 0 else 1.0
    pushes = {"reconstruction": f.recon, "KL": f.kl, "sum": f.total}
    arrows = [{"name": name, "color": color, "width": width, "alpha": alpha, "dashed": dashed,
               "dx": _rounded(pushes[term][:, 0] * scale), "dy": _rounded(pushes[term][:, 1] * scale)}
              for term, name, color, width, alpha, dashed in TERMS if term in shown]
    if view is None:
        pts = [probe_mu, f.mu, np.array([[-2.2, -2.2], [2.2, 2.2]])]
        pts += [f.mu + pushes[term] * scale for term, *_ in TERMS if term in shown]
        allp = np.concatenate([np.asarray(p, np.float64).reshape(-1, 2) for p in pts])
        allp = allp[np.isfinite(allp).all(1)]
        lo, hi = allp.min(0), allp.max(0)
        pad = 0.05 * (hi - lo)
        view = [lo[0] - pad[0], hi[0] + pad[0], lo[1] - pad[1], hi[1] + pad[1]]
    classes = [-1] * len(probe_mu) if probe_y is None else [int(c) for c in probe_y]
    data = {"step": int(step), "view": _rounded(np.array(view)),
            "palette": charts.CLASS_COLORS, "circles": [1, 2],
            "probe": {"x": _rounded(probe_mu[:, 0]), "y": _rounded(probe_mu[:, 1]), "c": classes},
            "mu": {"x": _rounded(f.mu[:, 0]), "y": _rounded(f.mu[:, 1])}, "arrows": arrows}
    return data, scale


def forces_map(data: dict, *, key: str) -> None:
    """Mount (or redraw in place) the map of ``forces_data``."""
    _MAP(key=key, data=data)


def kl_html(kl: np.ndarray) -> str:
    """KL per dimension as plain HTML bars (cheaper to redraw every step than a chart)."""
    top = max(float(np.max(kl)) if len(kl) else 0.0, 1e-9)
    rows = "".join(
        f"<div style='display:grid;grid-template-columns:2.5rem 1fr 4rem;gap:.5rem;align-items:center'>"
        f"<code>z{j}</code><div style='height:.9rem;width:{100 * v / top:.1f}%;background:{KL_C};border-radius:2px'>"
        f"</div><code>{v:.2f}</code></div>" for j, v in enumerate(kl))
    return (f"<div data-testid='vae-step-kl'><b>KL per dimension</b> (nats per test image)"
            f"{rows}</div>")
