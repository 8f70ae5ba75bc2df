"""Figures built once and handed out again: the copy is the same figure, made without validating it again."""
import copy
import json

import numpy as np
import plotly.graph_objects as go

from ui import charts
from vae.record import EpochRecord


def map_figure():
    pts = np.random.default_rng(0).normal(size=(500, 2)).astype(np.float32)
    return charts.latent_scatter(pts, np.arange(500) % 10, [str(i) for i in range(10)], height=500)


def test_from_spec_gives_the_same_figure_and_skips_validation():
    fig = map_figure()
    spec = fig.to_dict()
    again = charts.from_spec(spec)
    assert isinstance(again, go.Figure) and again.to_dict() == spec
    assert again._validate is False, "plotly's _validate switch is gone: from_spec now validates (slower)"
    # overlays go onto a copy of the spec, not onto the spec it came from
    more = charts.from_spec(charts.add_overlays(copy.deepcopy(spec), [("path", np.zeros((3, 2)), "solid")],
                                                [("A", 0.0, 0.0)]))
    assert len(more.data) == len(fig.data) + 2 and len(charts.from_spec(spec).data) == len(fig.data)


def test_overlays_are_the_figure_plotly_validates_with_each_path_and_point():
    """add_overlays fills templates validated once: the same figure as adding each path and point through plotly's
    validating constructors, for either side of a label, and a filled copy never reaches the next."""
    rng = np.random.default_rng(1)
    paths = [("linear path", rng.normal(size=(10, 2)), "solid"), ("spherical path", rng.normal(size=(10, 2)), "dot"),
             ("towards 7", rng.normal(size=(8, 2)), "dash")]
    marked = [("A #3", 0.5, -0.25), ("B #31", -1.0, 2.0), ("C", 0.0, 0.0)]
    spec = map_figure().to_dict()
    expected = charts.from_spec(copy.deepcopy(spec))
    for name, pts, dash in paths:
        color = charts.PATH_COLORS.get(name, charts.PATH_COLOR)
        expected.add_trace(go.Scatter(x=pts[:, 0], y=pts[:, 1], mode="lines+markers", name=name,
                                      line=dict(width=3, dash=dash, color=color), marker=dict(size=5, color=color),
                                      hoverinfo="skip"))
    for k, (text, x, y) in enumerate(marked):
        c = charts.MARK_COLOR
        expected.add_trace(go.Scatter(x=[x], y=[y], mode="markers", name=f"point {text}", showlegend=False,
                                      hovertemplate=f"{text}<extra></extra>", marker=dict(
                                          size=16, symbol="circle-open", color=c, line=dict(width=3, color=c))))
        expected.add_annotation(x=x, y=y, text=text, showarrow=True, arrowhead=0, arrowwidth=1.5, arrowcolor=c,
                                ax=36 if k % 2 == 0 else -36, ay=-30, standoff=9, font=dict(size=13, color=c),
                                bgcolor="rgba(255,255,255,0.85)", bordercolor=c, borderwidth=1, borderpad=2)
    fast = charts.from_spec(charts.add_overlays(copy.deepcopy(spec), paths, marked))
    assert json.loads(fast.to_json()) == json.loads(expected.to_json())
    assert json.loads(go.Figure(fast.to_dict()).to_json()) == json.loads(fast.to_json())   # valid as it stands
    again = charts.add_overlays(copy.deepcopy(spec), paths[:1], marked[:1])
    assert len(again["data"]) == len(spec["data"]) + 2 and again["layout"]["annotations"][-1]["text"] == "A #3"


def history(n_steps: int, n_epochs: int, test: bool = True) -> tuple[list[dict], list[EpochRecord]]:
    rng = np.random.default_rng(n_steps + n_epochs)
    terms = lambda: {k: float(v) for k, v in zip(charts.CURVE_TERMS, rng.normal(100, 5, 3))}  # noqa: E731
    steps = [{"step": i + 1, **terms()} for i in range(n_steps)]
    epochs = [EpochRecord(epoch=e + 1, train=terms(), test=terms() if test else {}) for e in range(n_epochs)]
    return steps, epochs


def test_live_curves_are_the_validated_figure_with_the_new_points():
    """curves() fills a template built once per kind of history: the same figure as building it in full, for
    every mix of traces, and a caller's changes to one copy do not reach the next."""
    for n_steps, n_epochs, test in ((0, 0, True), (5, 0, True), (40, 3, True), (40, 3, False), (0, 2, True),
                                    (7, 1, False)):
        steps, epochs = history(n_steps, n_epochs, test)
        kinds, series = charts._curve_series(steps, epochs, 12.5)
        full = charts._curves_build(kinds, series, preview=not steps and not epochs).to_dict()
        fast = charts.curves(steps, epochs, 12.5)
        assert fast.to_dict() == full, (n_steps, n_epochs, test)
        fast.add_annotation(text="mine", x=0, y=0)
        assert charts.curves(steps, epochs, 12.5).to_dict() == full
    steps, epochs = history(40, 3)
    assert len(charts.curves(steps, epochs, 12.5).data) == 9 and charts.curves(steps, epochs, 12.5).data[0].x[-1] \
        == 40 / 12.5


def test_latent_scatter_fills_a_validated_template_with_each_class_points():
    """latent_scatter puts the points into a figure validated once per kind of map: plotly validates the result as
    it is, each class's trace holds exactly that class's points and test indices, and copies stay apart."""
    rng = np.random.default_rng(3)
    for n, k, index in ((500, 10, None), (4000, 3, None), (300, 0, np.arange(300) * 3), (200, 12, None)):
        pts = rng.normal(size=(n, 2)).astype(np.float32)
        labels = np.arange(n) % k if k else None
        fig = charts.latent_scatter(pts, labels, None, index=index, marked=[("A", 0.1, 0.2)])
        assert json.loads(go.Figure(fig.to_dict()).to_json()) == json.loads(fig.to_json())   # valid as it stands
        idx = np.arange(n) if index is None else index
        for c, trace in zip(range(k) if k else [None], fig.data[:k or 1]):
            m = np.ones(n, bool) if c is None else labels == c
            assert np.array_equal(trace.x, pts[m, 0]) and np.array_equal(trace.y, pts[m, 1])
            assert np.array_equal(trace.customdata, idx[m])
            assert (trace.type == "scattergl") == (n > 3000)
        assert fig.data[-1].name == "point A" and len(charts.latent_scatter(pts, labels, None).data) == max(k, 1)
