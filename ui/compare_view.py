"""Glue for the Compare page: two to four runs side by side, and one run's training replayed epoch by epoch.

Curves come from each run's ``metrics.json`` history (test −ELBO, reconstruction and KL per epoch); the
replay reads the per-epoch snapshots a run folder keeps (``snapshots/epoch-NNNN.npz``: the test means on
the map, the reconstruction strip and the KL per dimension of that epoch), which every run trained by the
pipeline writes (the app's jobs and ``python -m vae train``).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from vae import record
from vae.record import EpochRecord, Snapshot
from vae.runs import Run

from . import charts
from .catalogue import RunEntry, kind_name, summary

MAX_RUNS = 4
RUN_COLORS = ["#4e79a7", "#e15759", "#59a14f", "#b07aa1"]


def epochs_of(run: Run) -> list[EpochRecord]:
    return run.metrics.history.epochs


def curves(named: list[tuple[str, Run]]) -> go.Figure:
    """Test −ELBO, reconstruction and KL per epoch for each run, on shared axes (one colour per run)."""
    fig = make_subplots(rows=1, cols=3, subplot_titles=("−ELBO (test)", "reconstruction (test)", "KL (test)"),
                        horizontal_spacing=0.07)
    for i, (name, run) in enumerate(named):
        rows = run.metrics.history.tested()
        x = [e.epoch for e in rows]
        for col, key in enumerate(("neg_elbo", "recon", "kl"), start=1):
            fig.add_trace(go.Scatter(x=x, y=[e.test.get(key) for e in rows], mode="lines", name=name,
                                     legendgroup=name, showlegend=col == 1,
                                     line=dict(color=RUN_COLORS[i % len(RUN_COLORS)], width=2),
                                     hovertemplate=f"{name}<br>epoch %{{x}}: %{{y:.2f}} nats<extra></extra>"),
                          row=1, col=col)
    for col in (1, 2, 3):
        fig.update_xaxes(title_text="epoch", row=1, col=col)
    fig.update_yaxes(title_text="nats per image", row=1, col=1)
    fig.update_layout(height=330, margin=dict(l=10, r=10, t=40, b=10),
                      legend=dict(orientation="h", y=-0.25, x=0.5, xanchor="center"))
    return fig


def table(named: list[tuple[str, RunEntry, Run]]) -> list[dict]:
    """One row per run: what it is and its final held-out figures."""
    rows = []
    for name, entry, run in named:
        s, m, t = summary(entry), run.config.model, run.config.train
        final = run.metrics.final
        rows.append({
            "run": name, "data": s.data,
            "model": s.source or f"{m.arch} {m.latent_dim}-D" + (" CVAE" if m.conditional else ""),
            "objective": kind_name(s, weights=True) if run.config.kind != "tracked" else None,
            "β": t.beta if run.config.kind != "tracked" else None, "epochs": len(epochs_of(run)) or None,
            "−ELBO (test, nats)": _num(final.neg_elbo), "reconstruction": _num(final.recon),
            "KL": _num(final.kl), "bits/dim": _num(final.bits_per_dim, 4),
            "active units": final.active_units, "seconds": _num(run.metrics.seconds, 1)})
    return rows


def side_by_side(rows: list[dict]):
    """``table``'s rows turned a quarter: one column per run, one row per figure, so that two to four runs sit side by
    side on a laptop's screen (thirteen columns of runs' figures did not fit without scrolling). A run whose name
    another run already has is told apart by its place ("name (2)"); a missing figure is a dash."""
    import pandas as pd
    names: list[str] = []
    for row in rows:
        name, k = row["run"], 2
        while name in names:
            name, k = f"{row['run']} ({k})", k + 1
        names.append(name)
    fields = [k for k in rows[0] if k != "run"] if rows else []
    return pd.DataFrame({n: [_shown(r[f]) for f in fields] for n, r in zip(names, rows)}, index=fields)


def _shown(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:g}" if abs(v) < 1e5 else f"{v:,.1f}"
    return str(v)


def _num(v, digits: int = 2):
    return None if not isinstance(v, (int, float)) or not math.isfinite(v) else round(float(v), digits)


def same_shape(runs: list[Run]) -> bool:
    shapes = {(r.config.model.channels, r.config.model.image_size) for r in runs}
    return len(shapes) == 1


# ------------------------------------------------------------------------------------ the replay

def snapshot_epochs(run_dir: str | Path) -> list[int]:
    """The epochs whose snapshot the run folder keeps, in order."""
    return record.snapshot_epochs(run_dir)


@st.cache_data(show_spinner=False, max_entries=256)
def snapshot(run_dir: str, epoch: int, mtime: float) -> Snapshot | None:
    return record.read_snapshot(record.snapshot_path(run_dir, epoch))


def snapshot_map(snap: Snapshot, names: list[str] | None, height: int = 420) -> go.Figure | None:
    """That epoch's test means on the map (first two dimensions, or PCA beyond 2-D), with the prior's circles."""
    mu = snap.mu
    if mu is None or not len(mu):
        return None
    from vae.latent import project
    pts, proj = project(mu, "pca")
    axes = ("z0", "z1") if proj.method == "identity" else ("principal component 1", "principal component 2")
    # the prior's circles around where z = 0 lands, so a collapsed epoch shows as a dot at the centre rather than
    # as a cloud zoomed up to fill the chart
    centre = (0.0, 0.0) if proj.method == "identity" else tuple(
        float(c) for c in proj.transform(np.zeros((1, mu.shape[1]), np.float32))[0])
    y = snap.y
    return charts.latent_scatter(pts, y if y is not None and len(y) == len(mu) else None, names,
                                axis_names=axes, prior_center=centre, height=height)
