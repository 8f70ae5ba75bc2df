"""Glue for the Loss forces page: each session's own ``vae.stepper.Stepper`` and the map with its arrows.

The stepper (a copy of the model and its optimiser, about 6 MB for the 2-D demo) lives in the session's
state, so thirty students each step their own model; it is rebuilt when the run, the start, the
learning rate or the batch size changes, or on Reset.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from vae.config import ModelConfig
from vae.data import DataError, DataSplit, ImageData
from vae.models import build_model
from vae.runs import Run
from vae.stepper import Forces, Stepper

from . import plots
from . import state as S
from .data import DataKey, load

ACTIVE, SCRATCH = "The active run", "Scratch (untrained)"
MAX_TRAIN = 5000      # images the stepper draws its batches from
PROBE = 300           # test images drawn on the map
RECON_C, KL_C, SUM_C = "#e15759", "#4e79a7", "#222222"


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
    if m.latent_dim == 2 and m.arch == "mlp":
        return m
    return ModelConfig(channels=m.channels, image_size=m.image_size, latent_dim=2)


def stepper(run: Run, run_key: str, start: str, lr: float, batch: int, train: ImageData) -> Stepper:
    key = (run_key, start, lr, batch, st.session_state.get(S.STEP_RESETS, 0))
    held = st.session_state.get(S.STEP_STEPPER)
    if not held or held[0] != key:
        if start == ACTIVE and run.config.model.latent_dim == 2:
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


def _arrows(start: np.ndarray, vec: np.ndarray, name: str, color: str, width: float) -> list[dict]:
    """Arrows from ``start`` along ``vec`` ([B, 2] each) as two traces: the shafts as one line split by gaps (no
    markers, so no per-point styling in the browser) and the heads as markers turned along each arrow."""
    b = len(start)
    end = start + vec
    xs, ys = np.full(3 * b, None, object), np.full(3 * b, None, object)
    xs[0::3], xs[1::3] = start[:, 0].tolist(), end[:, 0].tolist()
    ys[0::3], ys[1::3] = start[:, 1].tolist(), end[:, 1].tolist()
    # plotly turns a marker clockwise from pointing up; the map's axes are drawn to one scale
    angle = np.degrees(np.arctan2(vec[:, 0], vec[:, 1]))
    return [{"type": "scatter", "x": xs.tolist(), "y": ys.tolist(), "mode": "lines", "name": name,
             "legendgroup": name, "hoverinfo": "skip", "line": {"color": color, "width": width}},
            {"type": "scatter", "x": end[:, 0].tolist(), "y": end[:, 1].tolist(), "mode": "markers",
             "name": name, "legendgroup": name, "showlegend": False, "hoverinfo": "skip",
             "marker": {"symbol": "arrow", "size": 9, "color": color, "angle": np.round(angle, 1).tolist()}}]


def forces_figure(probe_mu: np.ndarray, probe_y: np.ndarray | None, f: Forces, shown: list[str]
                  ) -> tuple[go.Figure, float]:
    """The test means (faint), this batch's means, and the chosen pushes as arrows, all on one scale.

    Built as a plain spec (``plots.from_spec``): plotly's validation would cost about 50 ms a step."""
    colors = "#888" if probe_y is None else [plots.CLASS_COLORS[int(c) % len(plots.CLASS_COLORS)] for c in probe_y]
    longest = float(np.linalg.norm(f.total, axis=1).max()) if len(f.total) else 0.0
    scale = 0.6 / longest if longest > 0 else 1.0
    data = [{"type": "scatter", "x": probe_mu[:, 0].tolist(), "y": probe_mu[:, 1].tolist(), "mode": "markers",
             "showlegend": False, "hoverinfo": "skip", "marker": {"size": 5, "opacity": 0.3, "color": colors}},
            {"type": "scatter", "x": f.mu[:, 0].tolist(), "y": f.mu[:, 1].tolist(), "mode": "markers",
             "name": "this batch's μ", "marker": {"size": 7, "color": "#f28e2b",
                                                  "line": {"width": 1, "color": "#222"}}}]
    for name, vec, color, width in (("reconstruction push", f.recon, RECON_C, 2), ("KL push (× β)", f.kl, KL_C, 2),
                                    ("sum", f.total, SUM_C, 3)):
        if name.split()[0] in shown:
            data.extend(_arrows(f.mu, vec * scale, name, color, width))
    circles = [{"type": "circle", "x0": -r, "x1": r, "y0": -r, "y1": r, "layer": "below",
                "line": {"color": plots.GUIDE, "width": 1, "dash": dash}} for r, dash in ((1, "dot"), (2, "dash"))]
    # fixed margins: growing them to fit the legend and the ticks (autoexpand) was a third of plotly's time per step
    layout = {"height": 520, "margin": {"l": 50, "r": 10, "t": 70, "b": 45, "autoexpand": False}, "shapes": circles,
              "xaxis": {"title": {"text": "z0"}, "zeroline": False},
              "yaxis": {"title": {"text": "z1"}, "zeroline": False, "scaleanchor": "x", "scaleratio": 1},
              "legend": {"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0}}
    return plots.from_spec({"data": data, "layout": layout}), scale


def kl_html(kl: np.ndarray) -> str:
    """KL per dimension as plain HTML bars (cheaper to redraw every step than a chart)."""
    top = max(float(np.max(kl)) if len(kl) else 0.0, 1e-9)
    rows = "".join(
        f"<div style='display:grid;grid-template-columns:2.5rem 1fr 4rem;gap:.5rem;align-items:center'>"
        f"<code>z{j}</code><div style='height:.9rem;width:{100 * v / top:.1f}%;background:{KL_C};border-radius:2px'>"
        f"</div><code>{v:.2f}</code></div>" for j, v in enumerate(kl))
    return (f"<div data-testid='vae-step-kl'><b>KL per dimension</b> (nats per test image)"
            f"{rows}</div>")
