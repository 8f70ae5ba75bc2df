"""Figures built once and handed out again: the copy is the same figure, made without validating it again."""
import numpy as np
import plotly.graph_objects as go

from ui import charts


def map_figure():
    pts = np.random.default_rng(0).normal(size=(500, 2)).astype(np.float32)
    return charts.latent_scatter(pts, np.arange(500) % 10, [str(i) for i in range(10)], height=500)


def test_from_spec_gives_the_same_figure_and_skips_validation():
    fig = map_figure()
    spec = fig.to_dict()
    again = charts.from_spec(spec)
    assert isinstance(again, go.Figure) and again.to_dict() == spec
    assert again._validate is False, "plotly's _validate switch is gone: from_spec now validates (slower)"
    # a copy can take overlays without touching the spec it came from
    charts.add_overlays(again, [("path", np.zeros((3, 2)), "solid")], [("A", 0.0, 0.0)])
    assert len(again.data) == len(fig.data) + 2 and len(charts.from_spec(spec).data) == len(fig.data)
