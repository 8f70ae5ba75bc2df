"""The latent control panel: the active run's decoder runs in the browser.

A stock ``st.slider`` sends its value only when the mouse is released, so a drag shows
no images while it happens. ``latent_panel`` mounts an ``st.components.v2`` component
(``live_decoder.js``) that receives the decoder once as a JSON spec with base64 float32
weights (``vae.export.decoder_spec``) and decodes on every ``input`` event, painting at
most once per animation frame, with no server round trip. The value returns to Python
when a drag ends (component state ``value``), which reruns the script like any widget.

How the weights travel (Streamlit 1.67, measured in tests/browser/test_live_decoder.py
with the 32-D conv decoder: 4.5 MB of spec):
- ``data=`` is JSON-serialised and hashed twice on every rerun (element identity, then the
  forward-message hash): about 80 ms per rerun for 4.5 MB on this 2-core box.
- Streamlit's forward-message cache then sends only a hash reference for an element
  message the browser already holds (messages >= 10 kB, ``global.minCachedMessageSize``),
  so an identical rerun moves no weights over the websocket, and the frontend does not
  call the JS again (it compares the JSON text).
- So the weights are sent only until the browser says it holds them: every committed
  value carries ``have`` (the spec id the page compiled), and from then on ``data``
  carries the spec without its layers. The panel call then costs about 2-12 ms. The JS
  keeps compiled decoders per spec id for the life of the page, and asks for the weights
  again (a commit with ``have: null``) if it gets a header it cannot resolve.
- Changing ``z0``/``order``/... changes ``data``: the panel restarts from ``z0``.

When the decoder cannot run in the browser, there are two fallbacks, each announced in
one line: Python refuses the model before sending it (``UnsupportedForBrowser``) and
renders a stock ``st.slider`` per dimension and a server-decoded ``st.image``; or the
browser lacks something (Canvas, Float32Array) or refuses the spec, and the panel keeps
its sliders but the image is decoded here after each release.
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Literal

import numpy as np
import streamlit as st

from vae.export import UnsupportedForBrowser, decoder_spec, numpy_decode

_JS = "\n".join((Path(__file__).with_name(name)).read_text(encoding="utf-8") for name in ("nn.js", "live_decoder.js"))

_CSS = """
.vae-panel { font-family: var(--st-font, sans-serif); color: var(--st-text-color, inherit);
             font-size: var(--st-base-font-size, 1rem); }
.vae-notice { font-size: 0.85em; padding: 0.25rem 0.5rem; margin-bottom: 0.5rem;
              border-left: 3px solid var(--st-orange-color, orange);
              background: var(--st-orange-background-color, transparent); }
.vae-row { display: flex; flex-wrap: wrap; gap: 1.25rem; align-items: flex-start; }
.vae-controls { flex: 1 1 16rem; min-width: 14rem; display: flex; flex-direction: column; gap: 0.4rem; }
.vae-sliders { display: flex; flex-direction: column; gap: 0.1rem; max-height: 32rem; overflow-y: auto; }
.vae-slider { display: grid; grid-template-columns: 2.6rem 1fr 3.4rem; align-items: center; gap: 0.5rem; }
.vae-slider input[type=range] { width: 100%; accent-color: var(--st-primary-color, #ff4b4b); margin: 0.2rem 0; }
.vae-dim { font-family: var(--st-code-font, monospace); font-size: 0.85em; opacity: 0.8; }
.vae-val { font-family: var(--st-code-font, monospace); font-size: 0.85em; text-align: right;
           font-variant-numeric: tabular-nums; }
.vae-class { display: flex; gap: 0.5rem; align-items: center; }
.vae-class select, .vae-reset { font: inherit; color: inherit;
           background: var(--st-secondary-background-color, transparent);
           border: 1px solid var(--st-border-color, #8886); border-radius: var(--st-base-radius, 0.5rem);
           padding: 0.2rem 0.6rem; }
.vae-reset { align-self: flex-start; cursor: pointer; }
.vae-reset:hover { border-color: var(--st-primary-color, #ff4b4b); color: var(--st-primary-color, #ff4b4b); }
.vae-pad { width: min(100%, 22rem); aspect-ratio: 1; touch-action: none; cursor: crosshair;
           background: var(--st-secondary-background-color, #8882);
           border: 1px solid var(--st-border-color, #8886); border-radius: 4px; }
.vae-readout { font-family: var(--st-code-font, monospace); font-size: 0.85em; opacity: 0.8; }
.vae-image { image-rendering: pixelated; display: block; max-width: 100%;
             border: 1px solid var(--st-border-color, #8886); }
"""

_COMPONENT = st.components.v2.component("vae_lab_latent_panel", js=_JS, css=_CSS)


@st.cache_resource(show_spinner=False, max_entries=16)
def _cached_spec(run_key: str, _model) -> tuple[dict | None, str | None]:
    """Build the spec once per run; the spec is shared, never mutated."""
    try:
        return decoder_spec(_model), None
    except UnsupportedForBrowser as e:
        return None, str(e)


def _spec_of(spec_or_model, run_key: str | None) -> tuple[dict | None, str | None]:
    if isinstance(spec_or_model, dict):
        if spec_or_model.get("version") != 1:
            return None, f"spec version {spec_or_model.get('version')!r} is not 1"
        return spec_or_model, None
    if run_key is not None:
        return _cached_spec(run_key, spec_or_model)
    try:
        return decoder_spec(spec_or_model), None
    except UnsupportedForBrowser as e:
        return None, str(e)


def _latent_dim(spec_or_model) -> int:
    return spec_or_model["latent_dim"] if isinstance(spec_or_model, dict) else spec_or_model.cfg.latent_dim


def _num_classes(spec_or_model) -> int:
    if isinstance(spec_or_model, dict):
        return spec_or_model["num_classes"] if spec_or_model["conditional"] else 0
    cfg = spec_or_model.cfg
    return cfg.num_classes if cfg.conditional else 0


def server_decode(spec_or_model, z: list[float], label: int | None) -> np.ndarray:
    """Pixels [S, S] (grey) or [S, S, 3] in 0..1 for one z, decoded here (the fallback path)."""
    if isinstance(spec_or_model, dict):
        x = numpy_decode(spec_or_model, np.asarray(z, dtype=np.float64), label)
    else:
        import torch  # only the fallback needs torch here

        model = spec_or_model
        with torch.inference_mode():
            zt = torch.tensor([z], dtype=torch.float32)
            yt = torch.tensor([label]) if model.cfg.conditional else None
            x = torch.sigmoid(model.decode(zt, yt))[0].float().cpu().numpy()
    return x[0] if x.shape[0] == 1 else np.transpose(x, (1, 2, 0))


def _upscale(img: np.ndarray, target: int) -> np.ndarray:
    k = max(1, round(target / img.shape[0]))
    return np.repeat(np.repeat(img, k, axis=0), k, axis=1)


def _clean_z(z0, d: int) -> list[float]:
    if z0 is None:
        return [0.0] * d
    z = [float(v) for v in z0]
    if len(z) != d or not all(math.isfinite(v) for v in z):
        raise ValueError(f"z0 must be {d} finite numbers, got {len(z)}")
    return z


def _clean_order(order, d: int) -> list[int]:
    if order is None:
        return list(range(d))
    order = [int(i) for i in order]
    if not order or len(set(order)) != len(order) or not all(0 <= i < d for i in order):
        raise ValueError(f"order must list distinct dims in 0..{d - 1}, got {order}")
    return order


def _result(z: list[float], label: int | None, conditional: bool):
    return {"z": z, "label": label} if conditional else z


def latent_panel(spec_or_model, *, key: str, mode: Literal["sliders", "pad"] = "sliders",
                 order: list[int] | None = None, z0: list[float] | None = None, label: int | None = None,
                 class_names: list[str] | None = None, pad_background: dict | None = None,
                 slider_range: float = 3.0, image_px: int = 224, height: int | Literal["content"] = "content",
                 run_key: str | None = None, force_fallback: Literal["server", "browser"] | None = None):
    """Latent controls whose decoded image follows every slider / pad move.

    spec_or_model: a ``vae.models.VAE`` (its decoder is exported once per ``run_key``) or a
        spec from ``vae.export.decoder_spec``.
    key: widget key (also names the panel for the test hook ``window.__vaeLab.panel(key)``).
    mode: "sliders" (one slider per dim, in ``order``) or "pad" (drag a point over a 2-D
        area controlling dims ``order[0]`` (across) and ``order[1]`` (up)).
    order: dims, most informative first (default 0..D-1); sliders may list a subset.
    z0: the starting z (default zeros); Reset returns to it. label: starting class.
    pad_background: {"png_b64": str, "extent": [xmin, xmax, ymin, ymax]} drawn under the pad
        with its top row at ymax (as matplotlib's imshow with that extent); default extent
        is +-slider_range without an image.
    run_key: caches the spec per run (must change when the weights change); without it the
        spec is rebuilt on every rerun (about 100 ms for the 4.5 MB 32-D conv decoder).
    force_fallback: testing aid: "server" acts as if the model were unsupported, "browser"
        as if the browser could not decode.

    Returns the latest committed z: ``list[float]`` (D values), or for a conditional model
    ``{"z": [...], "label": int}``. Before the first release it is ``z0`` (and ``label``).
    """
    d = _latent_dim(spec_or_model)
    k = _num_classes(spec_or_model)
    conditional = k > 0
    z0 = _clean_z(z0, d)
    order = _clean_order(order, d)
    if mode not in ("sliders", "pad"):
        raise ValueError(f"mode must be 'sliders' or 'pad', got {mode!r}")
    if mode == "pad" and len(order) < 2 and d >= 2:
        raise ValueError("the pad needs two dims in order")
    label0 = (0 if label is None else int(label)) if conditional else None
    if conditional and not 0 <= label0 < k:
        raise ValueError(f"label must be in 0..{k - 1}, got {label}")
    if class_names is not None and conditional:
        class_names = [str(c) for c in class_names][:k]

    spec, reason = _spec_of(spec_or_model, run_key)
    if force_fallback == "server":
        spec, reason = None, "fallback forced for testing"
    if spec is None:
        return _server_panel(spec_or_model, reason or "unsupported", key=key, mode=mode, order=order, z0=z0,
                             label0=label0, class_names=class_names, slider_range=slider_range, image_px=image_px)

    layout = {"key": key, "mode": mode, "order": order, "z0": z0, "label0": label0, "class_names": class_names,
              "range": float(slider_range), "image_px": int(image_px), "pad_background": pad_background,
              "force_fallback": force_fallback == "browser"}
    data_id = hashlib.blake2b(json.dumps([spec["id"], layout], sort_keys=True).encode(), digest_size=8).hexdigest()
    # Weights travel until a committed value says the page holds this spec ("have"); then
    # only the header does, so a rerun does not re-serialise and re-hash megabytes.
    prev = st.session_state.get(key)
    prev = prev.get("value") if hasattr(prev, "get") else None
    have = prev.get("have") if isinstance(prev, dict) else None
    sent = spec if have != spec["id"] else _header(spec)
    data = {"spec": sent, "data_id": data_id, **layout}
    result = _COMPONENT(key=key, data=data, default={"value": None}, on_value_change=_noop, height=height)

    state = result.get("value") if result is not None else None
    z, lab, browser = z0, label0, True
    if isinstance(state, dict) and state.get("data_id") == data_id:
        zs = state.get("z")
        if isinstance(zs, list) and len(zs) == d and all(isinstance(v, (int, float)) and math.isfinite(v) for v in zs):
            z = [float(v) for v in zs]
        if conditional and isinstance(state.get("label"), int) and 0 <= state["label"] < k:
            lab = state["label"]
        browser = state.get("browser") is not False
    if not browser:  # the browser said it cannot decode: show this z decoded here
        st.image(_upscale(server_decode(spec, z, lab), image_px), clamp=True)
    return _result(z, lab, conditional)


def _header(spec: dict) -> dict:
    """The spec without its layers (weights): enough for a page that already compiled it."""
    return {k: v for k, v in spec.items() if k != "layers"}


def _noop() -> None:
    """State changes rerun the script; nothing else to do."""


def _server_panel(spec_or_model, reason: str, *, key: str, mode: str, order: list[int], z0: list[float],
                  label0: int | None, class_names, slider_range: float, image_px: int):
    """Stock widgets + server decoding, for decoders the browser cannot run."""
    st.caption(f"Live decoding is off ({reason}): the image is decoded on the server when you release a slider.")
    dims = order[:2] if mode == "pad" else order
    conditional = label0 is not None
    z0_id = f"{key}:start"
    fingerprint = json.dumps([z0, label0])
    slider_keys = {dim: f"{key}:z{dim}" for dim in dims}
    if st.session_state.get(z0_id) != fingerprint:  # new start point: forget the old slider values
        for sk in slider_keys.values():
            st.session_state.pop(sk, None)
        st.session_state.pop(f"{key}:label", None)
        st.session_state[z0_id] = fingerprint

    def reset() -> None:
        for dim, sk in slider_keys.items():
            st.session_state[sk] = z0[dim]
        if conditional:
            st.session_state[f"{key}:label"] = label0

    left, right = st.columns([3, 2])
    with left:
        lab = label0
        if conditional:
            k = _num_classes(spec_or_model)
            names = class_names or [str(i) for i in range(k)]
            lab = st.selectbox("class", list(range(k)), index=label0, format_func=lambda i: names[i],
                               key=f"{key}:label")
        z = list(z0)
        r = float(slider_range)
        for dim, sk in slider_keys.items():
            z[dim] = st.slider(f"z{dim}", -r, r, float(min(max(z0[dim], -r), r)), step=r / 300, key=sk)
        st.button("Reset", key=f"{key}:reset", on_click=reset)
    with right:
        st.image(_upscale(server_decode(spec_or_model, z, lab), image_px), clamp=True)
    return _result(z, lab, conditional)
