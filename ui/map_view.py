"""Glue for the Latent map page: the projection, clicks on the map, interpolation ends,
and the latent pad's background."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st
from PIL import Image

from . import compute, images, plots, state

CLICKED, TEST, SLIDERS = "Clicked points", "Test images", "Saved on Sliders"
MAX_TSNE = 2000        # t-SNE is quadratic-ish and slow on a laptop: the map shows the first 2,000 test images


@dataclass
class MapProjection:
    points: np.ndarray                  # [M, 2] test means on the map
    index: np.ndarray                   # [M] the test images they belong to
    params: dict                        # for compute.transform
    axes: tuple[str, str]
    prior_center: tuple[float, float] | None

    def place(self, z: np.ndarray) -> np.ndarray | None:
        return compute.transform(self.params, z)


def projection(mu: np.ndarray, method: str, run_key: str, data_key: str) -> MapProjection:
    d = mu.shape[1]
    index = np.arange(min(len(mu), MAX_TSNE) if (method == "tsne" and d > 2) else len(mu))
    pts, params = compute.projection(mu[index], method, run_key, data_key)
    if d <= 2:
        return MapProjection(pts, index, params, ("z0", "z1") if d == 2 else ("z0", "(none)"), (0.0, 0.0))
    if params["method"] == "tsne":
        return MapProjection(pts, index, params, ("t-SNE 1", "t-SNE 2"), None)
    center = compute.transform(params, np.zeros((1, d), np.float32))[0]
    return MapProjection(pts, index, params, ("principal component 1", "principal component 2"),
                         (float(center[0]), float(center[1])))


@st.cache_data(show_spinner=False, max_entries=32)
def _map_spec(_proj: MapProjection, _labels: np.ndarray | None, names: list[str] | None, run_key: str,
              data_key: str, method: str, height: int) -> dict:
    return plots.latent_scatter(_proj.points, _labels, names, index=_proj.index, axis_names=_proj.axes,
                                prior_center=_proj.prior_center, height=height).to_dict()


def figure(proj: MapProjection, labels: np.ndarray | None, names: list[str] | None, run_key: str, data_key: str,
           *, paths=None, marked=None, height: int = 580):
    """The latent map: the test points (built once per run, data and projection, for every session) with this
    session's paths and marked points added."""
    spec = _map_spec(proj, labels, names, run_key, data_key, proj.params["method"], height)
    return plots.add_overlays(plots.from_spec(spec), paths, marked)


def clicks(run_key: str) -> list[int]:
    return state.per_run(state.MAP_CLICKS, run_key, [])


def set_clicks(run_key: str, indices: list[int], n: int) -> None:
    """Make ``indices`` (at most the last two, each a test image 0..n-1) the clicked points, as clicks would."""
    if not indices or any(not 0 <= i < n for i in indices):
        raise ValueError(f"points must be test images 0..{n - 1}")
    got = clicks(run_key)
    got[:] = indices[-2:]
    if len(got) == 2:
        st.session_state[state.MAP_ENDS_FROM] = CLICKED


def on_select(run_key: str) -> None:
    """Chart callback: remember the last two clicked test images; with two, use them as the ends."""
    sel = st.session_state.get(state.MAP_CHART)
    pts = (sel or {}).get("selection", {}).get("points", []) if isinstance(sel, dict) else \
        getattr(getattr(sel, "selection", None), "points", []) or []
    got = clicks(run_key)
    for p in pts[:1]:
        cd = p.get("customdata")
        if isinstance(cd, list):
            cd = cd[0] if cd else None
        if cd is None:
            continue
        i = int(cd)
        if i in got:
            got.remove(i)
        got.append(i)
        del got[:-2]
    if len(got) == 2:
        st.session_state[state.MAP_ENDS_FROM] = CLICKED


def default_test_ends(mu: np.ndarray, labels: np.ndarray | None) -> None:
    """First use: A = test image 0, B = the first image of the class whose mean lies farthest from A's class
    (or the farthest image when unlabelled), so the default interpolation shows a real change."""
    if state.MAP_A in st.session_state and state.MAP_B in st.session_state:
        return
    a = 0
    if labels is not None:
        classes = np.unique(labels)
        means = {c: mu[labels == c].mean(0) for c in classes}
        far = max(classes, key=lambda c: float(np.linalg.norm(means[c] - means[labels[a]])))
        b = int(np.flatnonzero(labels == far)[0])
    else:
        b = int(np.argmax(np.linalg.norm(mu - mu[a], axis=1)))
    st.session_state.setdefault(state.MAP_A, a)
    st.session_state.setdefault(state.MAP_B, b if b != a else min(1, len(mu) - 1))


@st.cache_data(show_spinner=False, max_entries=32)
def pad_background(_model, run_key: str, extent: float, label: int | None, n: int = 20) -> dict:
    """The decoded manifold tiled evenly over [-extent, extent]^2, as the pad's background image."""
    tiles = compute.uniform_tiles(_model, run_key, n, extent, (0, 1), label)
    # the pad is drawn at most 360 px wide: a 360 px background (not 20 tiles at full size, 560 px) keeps the
    # component's data, serialised on every rerun of the page, at a third of the bytes
    side = min(tiles.shape[0], 360)
    small = np.asarray(Image.fromarray(tiles).resize((side, side), Image.Resampling.LANCZOS))
    return {"png_b64": images.png_b64(small), "extent": [-extent, extent, -extent, extent]}
