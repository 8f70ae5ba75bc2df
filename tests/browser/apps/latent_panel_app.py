"""Test app: one latent panel for a random-weight model.

Settings come from environment variables, overridden by query parameters of the same
name in lower case without the prefix (``?cfg=...&seed=1&mode=pad``):
VAE_TEST_CFG (ModelConfig fields as JSON), VAE_TEST_SEED, VAE_TEST_SCALE, VAE_TEST_MODE
("sliders" | "pad"), VAE_TEST_FALLBACK ("" | "server" | "browser"), VAE_TEST_STRIPS ("0": the server path sends
no slider strips), VAE_TEST_ORDER (JSON list),
VAE_TEST_BG (non-empty: a gradient image under the pad, extent [-2, 2, -1, 3]),
VAE_TEST_LOST (non-empty: the first run acts as if this session had sent the weights already, so the page gets a
header it cannot resolve, as one that never drew the run carrying them would).
The committed value is written to ``<pre data-testid="vae-committed">`` as JSON.
"""
import json
import os
import time

import streamlit as st
from model_factory import make_model  # this folder: Streamlit puts the script's folder on sys.path

from ui import state
from ui.live_decoder import latent_panel, spec_of  # the repo root: bench/appserver.py puts it on PYTHONPATH


def setting(name: str, default: str) -> str:
    return st.query_params.get(name, os.environ.get(f"VAE_TEST_{name.upper()}", default))


cfg = setting("cfg", '{"arch": "mlp", "image_size": 28, "latent_dim": 8, "hidden": [64]}')
seed = int(setting("seed", "0"))
scale = float(setting("scale", "3"))
mode = setting("mode", "sliders")
fallback = setting("fallback", "") or None
strips = setting("strips", "1") != "0"
order = json.loads(setting("order", "null"))
background = None
if setting("bg", ""):  # a 64x64 gradient PNG under the pad, over extent [-2, 2, -1, 3]
    import base64
    import io

    import numpy as np
    from PIL import Image

    ramp = np.linspace(0, 255, 64, dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(np.stack([np.tile(ramp, (64, 1)), np.tile(ramp[:, None], (1, 64)),
                              np.full((64, 64), 128, np.uint8)], axis=-1)).save(buf, format="PNG")
    background = {"png_b64": base64.b64encode(buf.getvalue()).decode(), "extent": [-2, 2, -1, 3]}


@st.cache_resource
def model_for(cfg: str, seed: int, scale: float):
    return make_model(cfg, seed, scale)


model = model_for(cfg, seed, scale)
st.session_state["runs"] = st.session_state.get("runs", 0) + 1
if setting("lost", "") and st.session_state["runs"] == 1:
    st.session_state[state.LIVE_SENT] = {"panel": spec_of(model, f"{cfg}|{seed}|{scale}")[0]["id"]}
names = [f"class {i}" for i in range(model.cfg.num_classes)] if model.cfg.conditional else None
t0 = time.perf_counter()
value = latent_panel(model, key="panel", mode=mode, order=order, class_names=names,
                     pad_background=background, run_key=f"{cfg}|{seed}|{scale}", force_fallback=fallback,
                     strips=strips)
panel_ms = (time.perf_counter() - t0) * 1000
st.html(f'<pre data-testid="vae-committed">{json.dumps(value)}</pre>'
        f'<pre data-testid="vae-runs">{st.session_state["runs"]}</pre>'
        f'<pre data-testid="vae-panel-ms">{panel_ms:.1f}</pre>')
st.button("rerun", key="rerun")
