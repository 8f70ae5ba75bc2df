"""Traversal strips: rows of images decoded in the browser, one row per latent dimension.

``strips`` mounts an ``st.components.v2`` component (``nn.js`` + ``strips.js``) that receives the run's decoder
spec (the same cached spec the Sliders send, ``ui.live_decoder``) and, for each row, decodes ``z0`` with that row's
dimension set to each of ``values`` in turn. As for the latent panel, the weights travel once per session
(``ui.live_decoder.weights_once``); from then on only the spec's header does.

When the model cannot be exported for the browser (``UnsupportedForBrowser``), or the browser says it cannot
decode, the strips are decoded here (``ui.compute.decode_many``) and shown as images, with one line saying why.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import streamlit as st

from . import compute, images
from .live_decoder import spec_of, weights_once

_JS = "\n".join((Path(__file__).with_name(name)).read_text(encoding="utf-8") for name in ("nn.js", "strips.js"))
_CSS = """
.vae-strips { font-family: var(--st-font, sans-serif); color: var(--st-text-color, inherit); font-size: 0.9rem;
              display: flex; flex-direction: column; gap: 0.55rem; }
.vae-strip-row { display: flex; flex-direction: column; gap: 0.15rem; }
.vae-strip-head { display: flex; gap: 0.6rem; align-items: baseline; flex-wrap: wrap; }
.vae-strip-title { font-family: var(--st-code-font, monospace); font-weight: 600; min-width: 2.4rem; }
.vae-strip-detail { opacity: 0.85; }
.vae-muted .vae-strip-head { opacity: 0.55; }
.vae-strip { image-rendering: pixelated; max-width: 100%; height: auto; align-self: flex-start; }
.vae-notice { font-size: 0.85em; padding: 0.25rem 0.5rem; border-left: 3px solid var(--st-orange-color, orange); }
"""
_COMPONENT = st.components.v2.component("vae_lab_strips", js=_JS, css=_CSS)


def strip_latents(z0: list[float], dim: int, values: list[float]) -> np.ndarray:
    """The latents of one strip: ``z0`` with dimension ``dim`` set to each of ``values``: [T, D] float32."""
    z = np.repeat(np.asarray(z0, np.float32)[None], len(values), 0)
    z[:, dim] = values
    return z


def strips(model, *, key: str, run_key: str, rows: list[dict], z0: list[float], values: list[float],
           label: int | None = None, cell_px: int = 56, force_fallback: str | None = None) -> bool:
    """Draw one strip per row (``{dim, title, detail, muted}``); True when the browser decodes them.

    ``force_fallback``: testing aid, "server" acts as if the model could not be exported, "browser" as if the
    browser could not decode."""
    spec, reason = spec_of(model, run_key)
    if force_fallback == "server":
        spec, reason = None, "fallback forced for testing"
    if spec is None:
        server_strips(model, run_key, rows, z0, values, label, f"the decoder cannot run in the browser: {reason}")
        return False
    layout = {"key": key, "z0": [float(v) for v in z0], "values": [float(v) for v in values], "label": label,
              "cell_px": int(cell_px), "rows": rows, "force_fallback": force_fallback == "browser"}
    data_id = hashlib.blake2b(json.dumps([spec["id"], layout], sort_keys=True).encode(), digest_size=8).hexdigest()
    data = {"spec": weights_once(key, spec), "data_id": data_id, **layout}
    result = _COMPONENT(key=key, data=data, default={"value": None}, on_value_change=lambda: None)
    state = result.get("value") if result is not None else None
    if isinstance(state, dict) and state.get("data_id") == data_id and state.get("browser") is False:
        server_strips(model, run_key, rows, z0, values, label, None)
        return False
    return True


def server_strips(model, run_key: str, rows: list[dict], z0: list[float], values: list[float], label: int | None,
                  why: str | None) -> None:
    """The same rows decoded here, each as one image strip with its title and detail as the caption."""
    if why:
        st.caption(f"The strips are decoded on the server ({why}).")
    for row in rows:
        zs = tuple(map(tuple, strip_latents(z0, row["dim"], values).tolist()))
        pic = images.png(("strip", run_key, zs, label),
                         lambda: images.strip(compute.decode_many(model, run_key, zs, label), target=48))
        st.image(pic, caption=f"{row['title']} · {row['detail']}", output_format="PNG")
