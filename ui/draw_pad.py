"""The drawing pad: draw an input and watch the encoder's posterior follow every stroke, in the browser.

``draw_pad`` mounts an ``st.components.v2`` component (``nn.js`` + ``draw_pad.js``) that receives the
run's encoder and decoder as JSON specs (``vae.export.encoder_spec`` / ``decoder_spec``) and, on every
stroke (at most once per animation frame), turns the pad into the model's input (like MNIST: the ink
scaled into a 20/28 box and centred by its mass), encodes it, decodes the mean and redraws the point,
its 1σ/2σ ellipse on the map, the reconstruction and the KL, with no server round trip. When the pen
lifts, the pixels come back to Python (the component's value), so the page can follow the drawing
through the whole forward pass. As for the latent panel, the weights travel only until a committed
value says the page holds them.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import streamlit as st

from vae.export import UnsupportedForBrowser, decoder_spec, encoder_spec

_JS = "\n".join((Path(__file__).with_name(name)).read_text(encoding="utf-8") for name in ("nn.js", "draw_pad.js"))
_CSS = """
.vae-draw { font-family: var(--st-font, sans-serif); color: var(--st-text-color, inherit); font-size: 0.9rem; }
.vae-draw-row { display: flex; flex-wrap: wrap; gap: 1.25rem; align-items: flex-start; }
.vae-draw-col { display: flex; flex-direction: column; gap: 0.4rem; }
.vae-draw-title { font-weight: 600; font-size: 0.85rem; }
.vae-draw-pad { width: 220px; height: 220px; touch-action: none; cursor: crosshair; border-radius: 4px;
                border: 1px solid var(--st-border-color, #8886); }
.vae-draw-map { width: 220px; height: 220px; border: 1px solid var(--st-border-color, #8886); border-radius: 4px;
                background: var(--st-secondary-background-color, #8881); }
.vae-draw-pair { display: flex; gap: 0.4rem; }
.vae-draw-img { width: 104px; height: 104px; image-rendering: pixelated;
                border: 1px solid var(--st-border-color, #8886); }
.vae-draw-btn { font: inherit; color: inherit; background: var(--st-secondary-background-color, transparent);
                border: 1px solid var(--st-border-color, #8886); border-radius: 0.5rem; padding: 0.2rem 0.8rem;
                cursor: pointer; align-self: flex-start; }
.vae-draw-readout { max-width: 13.5rem; font-size: 0.8rem; }
.vae-draw-bar { display: grid; grid-template-columns: 2.2rem 1fr 2.6rem; gap: 0.4rem; align-items: center; }
.vae-draw-fill { height: 0.6rem; background: var(--st-primary-color, #4e79a7); border-radius: 2px; }
.vae-draw-dim { font-family: var(--st-code-font, monospace); opacity: 0.8; }
.vae-notice { font-size: 0.85em; padding: 0.25rem 0.5rem; border-left: 3px solid orange; }
"""
_COMPONENT = st.components.v2.component("vae_lab_draw_pad", js=_JS, css=_CSS)
MAX_MAP_POINTS = 1500


@st.cache_resource(show_spinner=False, max_entries=8)
def _specs(run_key: str, _model) -> tuple[dict, dict] | None:
    try:
        return encoder_spec(_model), decoder_spec(_model)
    except UnsupportedForBrowser:
        return None


def supported(model, run_key: str) -> bool:
    """Whether this run's encoder and decoder can run in the browser (the pad needs both)."""
    return _specs(run_key, model) is not None


def _header(spec: dict) -> dict:
    return {k: v for k, v in spec.items() if k != "layers"}


def draw_pad(model, *, key: str, run_key: str, map_points: np.ndarray | None, map_labels: np.ndarray | None,
             map_params: dict | None, typical_sigma: float, width_dims: list[int], label: int | None = None,
             class_names: list[str] | None = None, center: bool = True, image_px: int = 140
             ) -> np.ndarray | None:
    """Mount the pad; returns the last drawing committed (float32 [C, S, S] in 0..1), or None before the first,
    or when this model cannot run in the browser (the caller says so)."""
    specs = _specs(run_key, model)
    if specs is None:
        return None
    enc, dec = specs
    m = model.cfg
    pts = np.zeros((0, 2), np.float32) if map_points is None else np.asarray(map_points, np.float32)[:MAX_MAP_POINTS]
    lo, hi = (pts.min(0), pts.max(0)) if len(pts) else (np.full(2, -3.0), np.full(2, 3.0))
    half = float(max(3.0, np.abs(np.concatenate([lo, hi])).max() * 1.05))
    comps = None if not map_params or map_params.get("method") != "pca" else map_params
    layout = {
        "key": key, "image_size": m.image_size, "channels": m.channels, "label0": label,
        "class_names": class_names, "image_px": int(image_px), "center": bool(center),
        "typical_sigma": float(typical_sigma), "width_dims": [int(j) for j in width_dims],
        "map": {"points": [round(float(v), 3) for v in pts.reshape(-1)],
                "labels": None if map_labels is None else [int(v) for v in np.asarray(map_labels)[:len(pts)]],
                "mean": None if comps is None else [float(v) for v in comps["mean"]],
                "components": None if comps is None else [[float(v) for v in row] for row in comps["components"]],
                "extent": [-half, half, -half, half]}}
    data_id = hashlib.blake2b(json.dumps([enc["id"], dec["id"], layout], sort_keys=True).encode(),
                              digest_size=8).hexdigest()
    prev = st.session_state.get(key)
    prev = prev.get("value") if hasattr(prev, "get") else None
    have = prev.get("have") if isinstance(prev, dict) else None
    held = isinstance(have, list) and have == [enc["id"], dec["id"]]
    data = {"enc": _header(enc) if held else enc, "dec": _header(dec) if held else dec, "data_id": data_id, **layout}
    result = _COMPONENT(key=key, data=data, default={"value": None}, on_value_change=lambda: None)
    state = result.get("value") if result is not None else None
    if not isinstance(state, dict) or state.get("data_id") != data_id:
        return None
    px = state.get("pixels")
    n = m.channels * m.image_size ** 2
    if not isinstance(px, list) or len(px) != n:
        return None
    x = np.clip(np.asarray(px, np.float32), 0, 1)
    return x.reshape(m.channels, m.image_size, m.image_size) if np.isfinite(x).all() else None
