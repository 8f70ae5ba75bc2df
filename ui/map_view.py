"""Glue for the Latent map page: the projection, clicks on the map, interpolation ends,
and the latent pad's background."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st
from PIL import Image

from vae import map_layers
from vae.latent import Projection

from . import charts, compute, images, state

CLICKED, TEST, SLIDERS = "Clicked points", "Test images", "Saved on Sliders"
MAX_TSNE = 2000        # t-SNE is quadratic-ish and slow on a laptop: the map shows the first 2,000 test images
ELLIPSES, DENSITY, HOLES, DIRECTION = "Posterior ellipses", "Density", "Holes", "Class direction"
# The direction's path moves with every click (it starts at the clicked point), so it is a layer a person turns
# on: drawn by default, it made each click redraw the whole map in the browser (2.5 s a click, 0.8 s without;
# bench/map_clicks.py).
LAYERS = (ELLIPSES, DENSITY, HOLES, DIRECTION)
MAX_ELLIPSES = 300     # outlines drawn (a fixed sample of the test images, every class in proportion)


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
    return charts.latent_scatter(_proj.points, _labels, names, index=_proj.index, axis_names=_proj.axes,
                                prior_center=_proj.prior_center, height=height).to_dict()


def figure(proj: MapProjection, labels: np.ndarray | None, names: list[str] | None, run_key: str, data_key: str,
           *, paths=None, marked=None, height: int = 580):
    """The latent map: the test points (built once per run, data and projection, for every session) with this
    session's paths and marked points added."""
    spec = _map_spec(proj, labels, names, run_key, data_key, proj.params["method"], height)
    return charts.from_spec(charts.add_overlays(spec, paths, marked))   # the cache hands out a copy to add to


@st.cache_data(show_spinner="Computing the map's layers…", max_entries=16)
def _layer_data(_mu: np.ndarray, _logvar: np.ndarray, _labels: np.ndarray | None, _proj: MapProjection,
                names: list[str] | None, run_key: str, data_key: str, method: str) -> dict:
    """Everything the layers draw, once per run, data and projection for every session."""
    p = _proj.params
    plane = Projection(p["method"], p.get("mean"), p.get("components"))
    centre = _proj.prior_center or (0.0, 0.0)
    rows = _proj.index
    pick = np.random.default_rng(0).permutation(len(rows))[:MAX_ELLIPSES]
    outlines = map_layers.posterior_ellipses(_mu[rows[pick]], _logvar[rows[pick]], plane)
    if _labels is None:
        ellipses = [("posteriors", outlines)]
    else:
        lab = _labels[pick]
        ellipses = [(names[int(c)] if names and int(c) < len(names) else str(int(c)), outlines[lab == c])
                    for c in np.unique(_labels)]
    dens = map_layers.density(_proj.points, centre)
    return {"ellipses": ellipses, "density": dens, "holes": map_layers.holes(_proj.points, centre, dens=dens)}


def layers(proj: MapProjection, mu: np.ndarray, logvar: np.ndarray, labels: np.ndarray | None,
           names: list[str] | None, run_key: str, data_key: str) -> dict | None:
    """The layers' data for this map (None under t-SNE, whose plane has no prior and no posteriors, and for a
    1-D latent, whose map is a line)."""
    if proj.prior_center is None or mu.shape[1] < 2:
        return None
    lab = None if labels is None else labels[proj.index]
    return _layer_data(mu, logvar, lab, proj, names, run_key, data_key, proj.params["method"])


def add_layers(fig, data: dict | None, shown: list[str]) -> None:
    if data is None or not shown:
        return
    charts.add_map_layers(fig, ellipses=data["ellipses"] if ELLIPSES in shown else None,
                         density=data["density"] if DENSITY in shown else None,
                         holes=data["holes"] if HOLES in shown else None)


def hole_latents(proj: MapProjection, hole: map_layers.Hole) -> tuple[np.ndarray, np.ndarray]:
    """Latents to decode for a hole and for the encoded point nearest to it: on a 2-D latent the points
    themselves; on the PCA plane both lifted from the plane (the other directions at the data's mean), so the
    two differ only in where they sit on the map."""
    p = proj.params
    plane = Projection(p["method"], p.get("mean"), p.get("components"))
    here = np.array([[hole.x, hole.y]], np.float32)
    near = proj.points[hole.nearest][None].astype(np.float32)
    return plane.inverse(here)[0], plane.inverse(near)[0]


def clicked_hole(run_key: str) -> int | None:
    return st.session_state.get(state.MAP_HOLE, {}).get(run_key)


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


def on_select(run_key: str, n_points: int, n_holes: int = 0) -> None:
    """Chart callback: remember the last two clicked test images (0..n_points-1) or the clicked hole (-1 - k,
    k < n_holes); with two images, use them as the ends. A point id that is none of these (a forged message) is
    ignored."""
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
        try:
            i = int(cd)
        except (TypeError, ValueError, OverflowError):
            continue
        if not -n_holes <= i < n_points:
            continue
        if i < 0:                                             # a hole (charts.add_map_layers): -1 - k
            st.session_state.setdefault(state.MAP_HOLE, {})[run_key] = -1 - i
            continue
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


def hole_sentence(hole: map_layers.Hole) -> str:
    """What a hole is, with its numbers, and no promise about what it decodes to (that is for the pictures to say)."""
    return (f"The prior is {hole.ratio:,.0f}× likelier to sample here than the encoded test images are to lie here "
            f"(prior density {hole.prior:.3f}, encoded {hole.encoded:.4f} per unit area). No training image was "
            "encoded near this point, so nothing checked what the decoder draws here: compare the left picture with "
            "the right one. Such holes are the gap between the prior and the aggregate posterior, and a sample from "
            "the prior can land in them.")


@dataclass
class Direction:
    start: int                          # the test image the direction starts from
    source: int                         # its class
    target: int                         # the class to move towards
    strength: float
    path: np.ndarray                    # [S, D] from z0 to z0 + strength * (mean[target] - mean[source])
    name: str
    classes: list[int]                  # every class with a mean (the choices of target)


@st.cache_data(show_spinner=False, max_entries=16)
def _class_means(_mu: np.ndarray, _labels: np.ndarray, run_key: str, data_key: str) -> dict[int, np.ndarray]:
    return map_layers.class_means(_mu, _labels)


def direction_state(run_key: str, data_key: str, mu: np.ndarray, labels: np.ndarray, clicked: list[int],
                    names: list[str] | None) -> Direction | None:
    """The "more like a ..." move this session has set up: from the last clicked point (else test image A)
    towards the chosen class's mean, as far as the strength slider says."""
    means = _class_means(mu, labels, run_key, data_key)
    if len(means) < 2:
        return None
    start = clicked[-1] if clicked else int(min(st.session_state.get(state.MAP_A, 0), len(mu) - 1))
    source = int(labels[start])
    target = st.session_state.get(state.MAP_DIR_TARGET)
    if target not in means or target == source:
        others = [c for c in means if c != source]
        target = min(others, key=lambda c: float(np.linalg.norm(means[c] - means[source])))
        st.session_state[state.MAP_DIR_TARGET] = target
    strength = float(st.session_state.get(state.MAP_DIR_STRENGTH, 1.0))
    path = map_layers.along_class_direction(mu[start], means, source, target, np.linspace(0, strength, 8))
    name = names[target] if names and target < len(names) else str(target)
    return Direction(start, source, target, strength, path, f"towards {name}", sorted(means))


def direction_panel(model, run_key: str, d: Direction, label: int | None, names: list[str] | None) -> None:
    """The target class, the strength slider and what the decoder draws along the way."""
    def name(c: int) -> str:
        return names[c] if names and c < len(names) else str(c)

    source = name(d.source)
    article = "an" if source[:1].lower() in "aeiou" else "a"
    st.caption(f"Start from test image #{d.start} ({article} {source}; click a point on the map to change it) and "
               f"move its code along mean({name(d.target)}) − mean({name(d.source)}): the difference between the "
               "two classes' average codes. Strength 1 moves it by the whole difference; the map's "
               f"{DIRECTION} layer draws the path as a dashed line.")
    c1, c2 = st.columns([1, 3])
    c1.selectbox("More like a", [c for c in d.classes if c != d.source], key=state.MAP_DIR_TARGET, format_func=name)
    c2.slider("Strength", -0.5, 2.0, 1.0, 0.05, key=state.MAP_DIR_STRENGTH,
              help="0 is the start; 1 adds the whole class-mean difference; beyond 1 overshoots, below 0 moves away.")
    frames = compute.decode_many(model, run_key, tuple(tuple(map(float, z)) for z in d.path), label)
    st.image(images.png(("direction", run_key, d.start, d.target, round(d.strength, 3), label),
                        lambda: images.strip(frames, target=56)), width="stretch", output_format="PNG",
             caption=f"Test image #{d.start} decoded from strength 0 (left) to {d.strength:g} (right), towards "
                     f"{name(d.target)}.")

