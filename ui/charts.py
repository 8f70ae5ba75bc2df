"""Plotly figures. No template is set, so ``st.plotly_chart(theme="streamlit")`` themes them
for light and dark; fixed colours are only used for neutral guides (grey).

Building a plotly figure validates every property (tens of ms for a chart): ``cached(key, build)`` builds a
figure once per key for all sessions and hands out copies without validating them again."""
from __future__ import annotations

import copy
import functools
import math
from typing import Callable

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from vae.evaluate import UNUSED_KL_NATS
from vae.record import EpochRecord

GUIDE = "rgba(128,128,128,0.9)"
# Tableau 10: ten hues that stay distinct from each other on light and dark backgrounds
CLASS_COLORS = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
                "#9c755f", "#bab0ac"]
TRAIN_COLOR, TEST_COLOR = "#4e79a7", "#f28e2b"
NO_MODEBAR = {"displayModeBar": False}


def _layout(fig: go.Figure, height: int, **kw) -> go.Figure:
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), **kw)
    return fig


CURVE_TERMS = ("recon", "kl", "neg_elbo")


def curves(steps: list[dict], epochs: list[EpochRecord], steps_per_epoch: float | None) -> go.Figure:
    """Reconstruction, KL and -ELBO (nats per image) on train (every step) and test (every epoch).

    A live run redraws this every poll with new points: the figure of its kinds of traces is built and validated
    once (``_curves_template``), and each call only puts the points into a copy of it, without validating again."""
    kinds, series = _curve_series(steps, epochs, steps_per_epoch)
    if not any(kinds):                  # nothing to draw yet (the preview before a run): built as it is
        return _curves_build(kinds, series, preview=not steps and not epochs)
    spec = copy.deepcopy(_curves_template(kinds))
    for trace, (x, y) in zip(spec["data"], series, strict=True):
        trace["x"], trace["y"] = x, y
    return from_spec(spec)


def _curve_series(steps: list[dict], epochs: list[EpochRecord], steps_per_epoch: float | None):
    """Which kinds of traces there are (each step, train epoch means, test epochs) and each trace's (x, y), in the
    order ``_curves_build`` adds them."""
    spe = steps_per_epoch or 1.0
    xs = [s["step"] / spe for s in steps]
    tr = [e for e in epochs if e.train]
    te = [e for e in epochs if e.test]
    kinds = (bool(steps), bool(tr), bool(te))
    series = []
    for key in CURVE_TERMS:
        if steps:
            series.append((xs, [s[key] for s in steps]))
        if tr:
            series.append(([e.epoch for e in tr], [e.train.get(key) for e in tr]))
        if te:
            series.append(([e.epoch for e in te], [e.test.get(key) for e in te]))
    return kinds, series


@functools.lru_cache(maxsize=8)
def _curves_template(kinds: tuple[bool, bool, bool]) -> dict:
    return _curves_build(kinds, [([0.0], [0.0])] * (3 * sum(kinds))).to_dict()


def _curves_build(kinds: tuple[bool, bool, bool], series: list[tuple[list, list]], preview: bool = False) -> go.Figure:
    fig = make_subplots(rows=1, cols=3, subplot_titles=("Reconstruction −log p(x|z)", "KL(q(z|x) ‖ p(z))",
                                                        "−ELBO = reconstruction + KL"), horizontal_spacing=0.07)
    data = iter(series)
    for col in range(1, 4):
        first = col == 1
        if kinds[0]:
            x, y = next(data)
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name="train (each step)",
                                     legendgroup="train", showlegend=first, line=dict(width=1.2, color=TRAIN_COLOR),
                                     opacity=0.55, hovertemplate="epoch %{x:.2f}<br>%{y:.1f} nats<extra>train</extra>"),
                          row=1, col=col)
        if kinds[1]:
            x, y = next(data)
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers",
                                     name="train (epoch mean)", legendgroup="train-epoch", showlegend=first,
                                     line=dict(width=2.5, color=TRAIN_COLOR), marker=dict(size=7),
                                     hovertemplate="epoch %{x}<br>%{y:.2f} nats<extra>train</extra>"), row=1, col=col)
        if kinds[2]:
            x, y = next(data)
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers",
                                     name="test (end of epoch)", legendgroup="test", showlegend=first,
                                     line=dict(width=2.5, color=TEST_COLOR), marker=dict(size=8, symbol="diamond"),
                                     hovertemplate="epoch %{x}<br>%{y:.2f} nats<extra>test</extra>"), row=1, col=col)
        if preview:  # the preview before a run: empty axes in all three panels
            fig.add_trace(go.Scatter(x=[0, 10], y=[0, 1], mode="markers", marker=dict(opacity=0), showlegend=False,
                                     hoverinfo="skip"), row=1, col=col)
            fig.update_yaxes(showticklabels=False, row=1, col=col)
        fig.update_xaxes(title_text="epoch", row=1, col=col)
    fig.update_yaxes(title_text="nats per image", row=1, col=1)
    return _layout(fig, 330, legend=dict(orientation="h", y=-0.25, x=0.5, xanchor="center"))


def kl_bars(kl: list[float], order: list[int] | None = None, *, threshold: float = UNUSED_KL_NATS,
            prefix: str = "z") -> go.Figure:
    """KL per latent dimension (nats): dimensions under ``threshold`` (unused: collapsed to the prior) are greyed.
    ``prefix`` names the dimensions ("z1," for a two-layer model's lower layer)."""
    d = len(kl)
    idx = order if order is not None else list(range(d))
    vals = [kl[i] for i in idx]
    colors = [TRAIN_COLOR if v >= threshold else "rgba(128,128,128,0.6)" for v in vals]
    fig = go.Figure(go.Bar(x=[f"{prefix}{i}" for i in idx], y=vals, marker_color=colors,
                           hovertemplate="%{x}: %{y:.3f} nats<extra></extra>"))
    fig.update_xaxes(title_text="latent dimension", type="category")
    # from zero to at least twice the "unused" line, so a collapsed run's bars (micro-nats) look as small as they are
    top = max([2 * threshold, *[v for v in vals if math.isfinite(v)]])
    fig.update_yaxes(title_text="KL, nats per image", range=[0, 1.08 * top])
    return _layout(fig, 300)


# Fixed colours for what a person adds to a map, none of them a class colour: without them plotly took the next
# colour of its cycle, so turning a layer on (more traces before them) recoloured the paths and the markers.
PATH_COLORS = {"linear path": "#d81b60", "spherical path": "#8e24aa"}
PATH_COLOR = "#6d4c41"          # any other path (the class direction)
MARK_COLOR = "#d81b60"
HOLE_COLOR = "#d62728"
DENSITY_GREY = "rgba(110,110,110,0.6)"


def add_overlays(spec: dict, paths: list[tuple[str, np.ndarray, str]] | None = None,
                 marked: list[tuple[str, float, float]] | None = None) -> dict:
    """Paths (name, [T, 2] points, dash) as lines and marked points (text, x, y) added to a latent map's spec (a
    ``fig.to_dict()``, changed in place and returned). A marked point's label sits in a box beside it, joined by a
    short line, so it covers neither the point nor its neighbours. Each kind of trace is built and validated once
    (``_path_template``, ``_mark_template``) and filled here: validating a map's four overlays on every click cost
    more than drawing them."""
    data, notes = spec.setdefault("data", []), spec.setdefault("layout", {}).setdefault("annotations", [])
    for name, pts, dash in paths or []:
        trace = copy.deepcopy(_path_template(name, dash))
        trace["x"], trace["y"] = np.asarray(pts)[:, 0], np.asarray(pts)[:, 1]
        data.append(trace)
    for k, (text, x, y) in enumerate(marked or []):
        trace, note = copy.deepcopy(_mark_template(k % 2))
        trace.update(x=[x], y=[y], name=f"point {text}", hovertemplate=f"{text}<extra></extra>")
        note.update(x=x, y=y, text=text)
        data.append(trace)
        notes.append(note)
    return spec


@functools.lru_cache(maxsize=32)
def _path_template(name: str, dash: str) -> dict:
    color = PATH_COLORS.get(name, PATH_COLOR)
    return go.Scatter(x=[], y=[], mode="lines+markers", name=name, line=dict(width=3, dash=dash, color=color),
                      marker=dict(size=5, color=color), hoverinfo="skip").to_plotly_json()


@functools.lru_cache(maxsize=2)
def _mark_template(side: int) -> tuple[dict, dict]:
    """A marked point's trace and its label's annotation (to the right for side 0, the left for 1)."""
    trace = go.Scatter(x=[0.0], y=[0.0], mode="markers", name="point", showlegend=False, hovertemplate="",
                       marker=dict(size=16, symbol="circle-open", color=MARK_COLOR,
                                   line=dict(width=3, color=MARK_COLOR))).to_plotly_json()
    note = go.layout.Annotation(x=0.0, y=0.0, text="", showarrow=True, arrowhead=0, arrowwidth=1.5,
                                arrowcolor=MARK_COLOR, ax=36 if side == 0 else -36, ay=-30, standoff=9,
                                font=dict(size=13, color=MARK_COLOR), bgcolor="rgba(255,255,255,0.85)",
                                bordercolor=MARK_COLOR, borderwidth=1, borderpad=2).to_plotly_json()
    return trace, note


def _legend_only(name: str, **marker) -> go.Scatter:
    """A legend entry for a layer that has no marker of its own to show there (a heatmap, outlines)."""
    return go.Scatter(x=[None], y=[None], mode="markers", name=name, marker=marker, hoverinfo="skip")


def add_map_layers(fig: go.Figure, *, ellipses: list[tuple[str, np.ndarray]] | None = None,
                   density=None, holes: list | None = None) -> go.Figure:
    """Layers over a latent map: posterior outlines (name, [N, V, 2]) per class as one line trace each, the encoded
    points' density (a ``vae.map_layers.Density``) as a shaded heatmap under everything, and the prior's holes as
    clickable crosses (customdata -1 - k for hole k, so a click tells them from test images; their numbers are in
    the hover and the legend, not written on the map, where close holes' labels ran into each other). Each layer
    has one legend entry."""
    for i, (name, outlines) in enumerate(ellipses or []):
        xy = np.concatenate([np.concatenate([o, np.full((1, 2), np.nan)]) for o in outlines]) if len(outlines) else \
            np.zeros((0, 2))
        color = CLASS_COLORS[i % len(CLASS_COLORS)] if name != "posteriors" else GUIDE
        fig.add_trace(go.Scatter(x=xy[:, 0], y=xy[:, 1], mode="lines", name=f"1σ posteriors ({name})",
                                 line=dict(width=1, color=color), opacity=0.45, hoverinfo="skip", showlegend=False,
                                 legendgroup="ellipses", connectgaps=False))
    if ellipses:
        fig.add_trace(_legend_only("1σ posterior of each image", symbol="circle-open", size=11, color=GUIDE,
                                   line=dict(width=1.5, color=GUIDE)).update(legendgroup="ellipses"))
    if density is not None:
        fig.add_trace(go.Heatmap(x=density.xs, y=density.ys, z=density.encoded, name="density of encoded points",
                                 colorscale=[[0, "rgba(128,128,128,0)"], [1, DENSITY_GREY]],
                                 zsmooth="best", showscale=False, hoverinfo="skip"))
        fig.data = fig.data[-1:] + fig.data[:-1]              # under the points
        fig.add_trace(_legend_only("density of the encoded points", symbol="square", size=12, color=DENSITY_GREY))
    if holes:
        fig.add_trace(go.Scatter(
            x=[h.x for h in holes], y=[h.y for h in holes], mode="markers", name="holes of the prior (click one)",
            text=[f"hole {k + 1}" for k in range(len(holes))], customdata=[-1 - k for k in range(len(holes))],
            marker=dict(symbol="x-thin-open", size=18, color=HOLE_COLOR, line=dict(width=3, color=HOLE_COLOR)),
            hovertemplate="%{text}: the prior samples here, no image was encoded here; click to decode"
                          "<extra></extra>"))
    return fig


@st.cache_data(show_spinner=False, max_entries=256)
def _spec(key: tuple, _build: Callable[[], go.Figure]) -> dict:
    return _build().to_dict()


def cached(key: tuple, build: Callable[[], go.Figure]) -> go.Figure:
    """``build()``'s figure, built and validated once per ``key`` for every session, then handed out as a fresh
    figure each call (``from_spec``), so a page may add to it."""
    return from_spec(_spec(key, build))


def from_spec(spec: dict) -> go.Figure:
    """A figure again from ``fig.to_dict()`` of a figure built (and validated) earlier, without validating it a
    second time: plotly's validation is most of the cost of a chart (about 20 ms for a 10-class map against 2 ms).
    The fast path is plotly's ``_validate`` switch; tests/test_plots.py notices if an upgrade removes it."""
    try:
        return go.Figure(spec, _validate=False)
    except TypeError:       # a plotly without the switch: correct, only slower
        return go.Figure(spec)


def latent_scatter(points: np.ndarray, labels: np.ndarray | None, class_names: list[str] | None, *,
                   axis_names: tuple[str, str] = ("z0", "z1"), prior_center: tuple[float, float] | None = (0.0, 0.0),
                   paths: list[tuple[str, np.ndarray, str]] | None = None,
                   marked: list[tuple[str, float, float]] | None = None,
                   index: np.ndarray | None = None, height: int = 520) -> go.Figure:
    """Test means on the map, coloured by label, with customdata = test index (for clicks;
    ``index`` gives the test index of each point, default 0..N-1).

    ``prior_center``: draw the prior's 1σ and 2σ circles there (None: no circles).
    ``paths``: (name, [T, 2] points, dash) drawn as lines; ``marked``: (text, x, y) markers.
    """
    n = len(points)
    idx = np.arange(n) if index is None else np.asarray(index)
    classes = None if labels is None else tuple(int(c) for c in np.unique(labels))
    masks = [slice(None)] if labels is None else [labels == c for c in classes]
    spec = copy.deepcopy(_scatter_template(n > 3000, 6 if n <= 1000 else 4, classes, tuple(class_names or ()),
                                           tuple(axis_names), None if prior_center is None else
                                           (float(prior_center[0]), float(prior_center[1])), height))
    for trace, m in zip(spec["data"], masks, strict=True):
        trace["x"], trace["y"], trace["customdata"] = points[m, 0], points[m, 1], idx[m]
    return from_spec(add_overlays(spec, paths, marked))


@functools.lru_cache(maxsize=64)
def _scatter_template(gl: bool, size: int, classes: tuple[int, ...] | None, class_names: tuple[str, ...],
                      axis_names: tuple[str, str], prior_center: tuple[float, float] | None, height: int) -> dict:
    """latent_scatter's figure without its points (one empty trace per class), built and validated once: a live run
    redraws its map every epoch, and validating a figure costs tens of ms."""
    fig = go.Figure()
    scatter = go.Scattergl if gl else go.Scatter
    if classes is None:
        fig.add_trace(scatter(x=[], y=[], mode="markers", name="test images", customdata=[],
                              marker=dict(size=size, opacity=0.8),
                              hovertemplate="#%{customdata}<extra></extra>"))
    for c in classes or ():
        name = class_names[c] if class_names and c < len(class_names) else str(c)
        color = CLASS_COLORS[c % len(CLASS_COLORS)] if len(classes) <= len(CLASS_COLORS) else None
        fig.add_trace(scatter(x=[], y=[], mode="markers", name=name, customdata=[],
                              marker=dict(size=size, opacity=0.85, color=color),
                              hovertemplate=f"#%{{customdata}} · label {name}<extra></extra>"))
    if prior_center is not None:
        cx, cy = prior_center
        for r, dash in ((1, "dot"), (2, "dash")):
            fig.add_shape(type="circle", x0=cx - r, x1=cx + r, y0=cy - r, y1=cy + r, line=dict(color=GUIDE, width=1.5,
                          dash=dash), layer="below")
            fig.add_annotation(x=cx + r * math.cos(math.pi / 4), y=cy + r * math.sin(math.pi / 4), text=f"{r}σ",
                               showarrow=False, font=dict(color=GUIDE, size=12), xshift=10, yshift=8)
    fig.update_xaxes(title_text=axis_names[0], zeroline=False)
    fig.update_yaxes(title_text=axis_names[1], zeroline=False, scaleanchor="x", scaleratio=1, constrain="domain")
    return _layout(fig, height, legend=dict(title=dict(text="label " if classes is not None else ""),
                                            orientation="h", y=1.02, yanchor="bottom", x=0, itemsizing="constant"),
                   dragmode="pan", clickmode="event+select").to_dict()


# The extra figures each objective reports per step (vae.objectives: ``Objective.reports`` beyond loss, recon, kl)
# and what each is, for the Train page's second row of curves.
TERM_TITLES = {
    "mi": "Index-code MI I(x; z)",
    "tc": "Total correlation TC(z)",
    "dwkl": "Dimension-wise KL",
    "disc_loss": "Discriminator loss (log 2 = guessing)",
    "kl_top": "KL of the top layer z",
    "kl_lower": "KL of the lower layer z₁ (against p(z₁ | z))",
}


def objective_terms(steps: list[dict], epochs: list[EpochRecord]) -> list[str]:
    """The extra terms (``TERM_TITLES``) present in this run's step points or epoch records, in a fixed order."""
    have = set().union(*(s.keys() for s in steps)) if steps else set()
    for e in epochs:
        have |= set(e.train)
    return [t for t in TERM_TITLES if t in have]


def terms(steps: list[dict], epochs: list[EpochRecord], steps_per_epoch: float | None, names: list[str]) -> go.Figure:
    """One panel per objective term ``names`` (nats per image; the discriminator's loss in nats per code): train
    every step, and the epoch means, on the same epoch axis as ``curves``."""
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=[TERM_TITLES[n] for n in names],
                        horizontal_spacing=0.07)
    spe = steps_per_epoch or 1.0
    for col, key in enumerate(names, start=1):
        pts = [(s["step"] / spe, s[key]) for s in steps if key in s]
        fig.add_trace(go.Scatter(x=[a for a, _ in pts], y=[b for _, b in pts], mode="lines", name=f"{key} (each step)",
                                 showlegend=col == 1, legendgroup="train", line=dict(width=1.2, color=TRAIN_COLOR),
                                 opacity=0.55, hovertemplate="epoch %{x:.2f}<br>%{y:.3f}<extra>" + key + "</extra>"),
                      row=1, col=col)
        ep = [(e.epoch, e.train[key]) for e in epochs if key in e.train]
        if ep:
            fig.add_trace(go.Scatter(x=[a for a, _ in ep], y=[b for _, b in ep], mode="lines+markers",
                                     name="epoch mean", legendgroup="train-epoch", showlegend=col == 1,
                                     line=dict(width=2.5, color=TRAIN_COLOR), marker=dict(size=7),
                                     hovertemplate="epoch %{x}<br>%{y:.3f}<extra>" + key + "</extra>"), row=1, col=col)
        if key == "disc_loss":
            fig.add_hline(y=math.log(2), line=dict(color=GUIDE, width=1, dash="dot"), row=1, col=col)
        fig.update_xaxes(title_text="epoch", row=1, col=col)
    fig.update_yaxes(title_text="nats", row=1, col=1)
    return _layout(fig, 300, legend=dict(orientation="h", y=-0.3, x=0.5, xanchor="center"))


def mi_heatmap(share: list[list[float]], nats: list[list[float]], dims: list[str], columns: list[str],
               active: list[bool] | None = None, *, height: int | None = None) -> go.Figure:
    """Mutual information of each latent dimension (rows, in the given order) with each factor (columns), as a share
    of the factor's entropy (0..1, written in each cell); the hover adds the nats. Inactive dimensions' labels are
    bracketed."""
    labels = [d if active is None or active[i] else f"({d})" for i, d in enumerate(dims)]
    fig = go.Figure(go.Heatmap(
        z=share, x=columns, y=labels, zmin=0, zmax=1, colorscale="Blues", customdata=nats,
        text=[[f"{v:.2f}" for v in row] for row in share], texttemplate="%{text}",
        colorbar=dict(title=dict(text="MI / H(factor)", side="right"), thickness=12),
        hovertemplate="%{y} · %{x}<br>MI %{customdata:.3f} nats = %{z:.2f} of its entropy<extra></extra>"))
    fig.update_yaxes(autorange="reversed", type="category", title_text="latent dimension (largest KL first)")
    fig.update_xaxes(type="category", side="top")
    _layout(fig, height or 90 + 26 * len(dims))
    return fig.update_layout(margin=dict(l=10, r=10, t=60, b=10))
