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
- So the weights are sent once per session and component (``weights_once``): later runs
  send the spec without its layers, and the panel call then costs about 2-12 ms. The JS
  keeps compiled decoders per spec id for the life of the page, and asks for the weights
  again (a commit whose ``want`` is that spec id) if it gets a header it cannot resolve;
  once it has compiled them it commits again, so that the header follows.
- Changing ``z0``/``order``/... changes ``data``: the panel restarts from ``z0``.

A tracked run's decoder (``vae.foreign.ForeignVAE``, a stored ONNX program) goes to the
browser the same way when ``vae.onnx_spec`` translates it into the spec.

When the decoder cannot run in the browser (``UnsupportedForBrowser``: a conv decoder with
normalisation or upsampling, say), the same panel decodes on the server WHILE dragging, said
in one line with the reason. A stock widget would wait for the release; instead the panel
runs inside ``st.fragment`` and, on every move, sends the latest z as a trigger value
(``setTriggerValue("frame", ...)``): a trigger reruns only the fragment, whose callback
decodes that z and hands the pixels back as raw bytes (base64; no media file to fetch) in the
data of a second, tiny component, and the browser paints them. The browser keeps one request in flight and at most
``SERVER_MAX_FPS`` a second, sending only the newest z when an answer arrives, so a slow
round trip drops stale positions instead of queueing them; a request unanswered after
``SERVER_TIMEOUT_MS`` is given up. Releasing commits the value; the fragment notices it and
reruns the whole page (``st.rerun(scope="app")``) so that the page reads the committed point (the in-browser panel's
commit reruns what contains the panel: on Sliders, the page's own fragment). Measured in Chromium against
the app as ``./run.sh app`` serves it: README, "Debug your own VAE" (bench/server_slider.py).

Dragging one slider, the other dimensions stay put, and a range input only takes the values of its grid (range / 300
apart). So the first request of a drag also asks for that slider's strip: every position it can take, decoded in
one batch and sent once with the answer; the browser then paints each position from the strip with no round trip
until another dimension (or the class) changes. A strip is sent only when it pays: its pictures within
``STRIP_MAX_BYTES`` and its decode, timed once per run, within ``STRIP_MAX_MS`` (the 28x28 MLPs: 471 KB, 33-72 ms
on a loaded 2-core machine); otherwise, and on the pad, every picture is a round trip.

If the browser itself lacks something (Canvas, Float32Array) or refuses the spec, the
panel keeps its sliders and the image is decoded here after each release.

``VAE_LAB_SERVER_DECODE=1`` in the server's environment sends every panel down the server
path, ``=frames`` also without slider strips (testing and benchmarking aids: the paths side by
side on one model).
"""
from __future__ import annotations

import base64
import functools
import hashlib
import json
import math
import os
from pathlib import Path
from typing import Literal

import numpy as np
import streamlit as st

from vae.export import decoder_spec, numpy_decode

from . import state

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
# The server path's answers travel in a second, tiny component: an element's message carries the component's JS
# (30 KB here), so a frame inside the panel's own data would resend all of it with every picture; the panel's
# message then stays identical from frame to frame and Streamlit's message cache sends a reference to it.
_FRAME_JS = """export default function ({ data }) {
  const lab = window.__vaeLab;
  if (data && (data.frame || data.strip) && lab && lab.deliver) lab.deliver(data.key, data.frame, data.strip);
}"""
_FRAMES = st.components.v2.component("vae_lab_server_frame", js=_FRAME_JS)


SERVER_MAX_FPS = 30        # the browser asks for at most this many pictures a second: a drag then costs the server
                           # at most 30 fragment runs a second (README, "Debug your own VAE": the measured cost)
SERVER_TIMEOUT_MS = 2000   # a frame request unanswered this long is given up and the newest z asked for again
SERVER_IN_FLIGHT = 1       # requests out at once: with two, each new trigger preempted the fragment run in progress
                           # (Streamlit coalesces reruns) and fewer pictures arrived (bench/server_slider.py)
SLIDER_STEPS = 300         # a slider's step is range / 300 (live_decoder.js): 601 positions from -range to range
STRIP_MAX_MS = 100.0       # a slider's strip (all its positions, decoded at once) is sent when it decodes within this:
                           # less than the round trips of a one-second drag cost the server (README: measured)
STRIP_MAX_BYTES = 1 << 20  # ... and its pictures take at most this many bytes (601 x 28 x 28 grey: 471 KB)


def browser_spec(model) -> dict:
    """The in-browser spec of a model's decoder: VAE Lab's own (``vae.export``) or a tracked run's stored ONNX
    decoder translated (``vae.onnx_spec``); ``UnsupportedForBrowser`` (one line) when the browser cannot run it."""
    if getattr(getattr(model, "cfg", None), "arch", None) == "foreign":
        from vae.onnx_spec import foreign_decoder_spec
        return foreign_decoder_spec(model)
    return decoder_spec(model)


def _try_spec(model) -> tuple[dict | None, str | None]:
    try:
        return browser_spec(model), None
    except ValueError as e:             # UnsupportedForBrowser, or a stored program that does not translate
        return None, str(e)


@st.cache_resource(show_spinner=False, max_entries=16)
def _cached_spec(run_key: str, _model) -> tuple[dict | None, str | None]:
    """Build the spec once per run; the spec is shared, never mutated."""
    return _try_spec(_model)


def cached_spec(run_key: str, model) -> tuple[dict | None, str | None]:
    """(the run's browser spec, None) or (None, why it has none), built once per run."""
    return _cached_spec(run_key, model)


def spec_of(spec_or_model, run_key: str | None) -> tuple[dict | None, str | None]:
    """(the in-browser decoder's spec, None) for a spec or a model (cached per run key), or (None, why the browser
    cannot decode it): the Sliders panel and the Dimensions page's strips share it."""
    if isinstance(spec_or_model, dict):
        if spec_or_model.get("version") != 1:
            return None, f"spec version {spec_or_model.get('version')!r} is not 1"
        return spec_or_model, None
    if run_key is not None:
        return _cached_spec(run_key, spec_or_model)
    return _try_spec(spec_or_model)


def _forced_server() -> str | None:
    """``VAE_LAB_SERVER_DECODE``: "1" sends every panel down the server path, "frames" too without slider strips."""
    v = os.environ.get("VAE_LAB_SERVER_DECODE", "").strip().lower()
    return "frames" if v == "frames" else ("strips" if v in ("1", "true", "yes") else None)


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
                 run_key: str | None = None, force_fallback: Literal["server", "browser"] | None = None,
                 strips: bool = True):
    """Latent controls whose decoded image follows every slider / pad move.

    spec_or_model: a ``vae.models.VAE`` or a tracked run's ``vae.foreign.ForeignVAE`` (its decoder is
        exported once per ``run_key``, or decoded on the server when it cannot be), or a spec from
        ``vae.export.decoder_spec``.
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
    strips: on the server path, send a moving slider's strip when it is cheap (module docstring); False: one
        picture per round trip (testing aid).

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

    spec, reason = spec_of(spec_or_model, run_key)
    forced = _forced_server() if spec is not None else None
    if force_fallback == "server" or forced:
        spec, reason = None, "the server path forced for testing"
        strips = strips and forced != "frames"
    if spec is None:
        layout = {"key": key, "mode": mode, "order": order, "z0": z0, "label0": label0, "class_names": class_names,
                  "range": float(slider_range), "image_px": int(image_px), "pad_background": pad_background,
                  "server": True, "max_fps": SERVER_MAX_FPS, "timeout_ms": SERVER_TIMEOUT_MS,
                  "in_flight": SERVER_IN_FLIGHT, "strips": bool(strips),
                  "notice": server_notice(reason or "unsupported"), "spec": _shape_header(spec_or_model, d, k)}
        return _server_live(spec_or_model, layout, run_key or "", height)

    layout = {"key": key, "mode": mode, "order": order, "z0": z0, "label0": label0, "class_names": class_names,
              "range": float(slider_range), "image_px": int(image_px), "pad_background": pad_background,
              "force_fallback": force_fallback == "browser"}
    data_id = hashlib.blake2b(json.dumps([spec["id"], layout], sort_keys=True).encode(), digest_size=8).hexdigest()
    data = {"spec": weights_once(key, spec), "data_id": data_id, **layout}
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


def weights_once(key: str, spec: dict) -> dict:
    """What component ``key`` gets of ``spec`` on this run: the whole spec the first time this session draws it
    with that spec, or when the browser asks for the weights again (its committed value ``want``s that spec id:
    a header it could not resolve); otherwise only the header, so a rerun does not re-serialise and re-hash
    megabytes. The browser does not confirm that it holds them, because a confirmation is a rerun of the page
    the component is on, one more on every first view, and one sent as the user leaves for another page can take
    them back (a bounce to the Latent map, seen in CI)."""
    prev = st.session_state.get(key)
    prev = prev.get("value") if hasattr(prev, "get") else None
    want = prev.get("want") if isinstance(prev, dict) else None
    sent = st.session_state.setdefault(state.LIVE_SENT, {})
    if sent.get(key) == spec["id"] and want != spec["id"]:
        return _header(spec)
    sent[key] = spec["id"]
    return spec


def _noop() -> None:
    """State changes rerun the script; nothing else to do."""


def server_notice(reason: str) -> str:
    """The one line a panel decoded on the server shows: that it is, and why the browser cannot."""
    return f"Decoded on the server while you drag: this decoder does not run in the browser ({reason})."


def _shape_header(spec_or_model, d: int, k: int) -> dict:
    """What the browser needs to lay out the panel and paint server frames: no weights."""
    if isinstance(spec_or_model, dict):
        c, s = spec_or_model["channels"], spec_or_model["image_size"]
    else:
        c, s = spec_or_model.cfg.channels, spec_or_model.cfg.image_size
    return {"id": None, "latent_dim": d, "channels": int(c), "image_size": int(s), "conditional": k > 0,
            "num_classes": k}


def frame(spec_or_model, z: list[float], label: int | None) -> dict:
    """One z decoded here for the browser to paint: {"z", "label", "px": base64 of uint8 [S, S(, 3)]}."""
    x = np.clip(np.round(server_decode(spec_or_model, z, label) * 255), 0, 255).astype(np.uint8)
    return {"z": [float(v) for v in z], "label": label, "px": base64.b64encode(x.tobytes()).decode("ascii")}


def pictures(spec_or_model, zs: np.ndarray, label: int | None) -> np.ndarray:
    """Latents [N, D] decoded here: uint8 [N, S, S] (grey) or [N, S, S, 3]."""
    if isinstance(spec_or_model, dict):
        x = numpy_decode(spec_or_model, np.asarray(zs, np.float64), None if label is None else
                         np.full(len(zs), label))
    else:
        from vae.latent import decode
        x = decode(spec_or_model, np.asarray(zs, np.float32), None if label is None else np.full(len(zs), label))
    x = np.clip(np.round(np.asarray(x) * 255), 0, 255).astype(np.uint8)
    return x[:, 0] if x.shape[1] == 1 else np.transpose(x, (0, 2, 3, 1))


def strip_grid(slider_range: float) -> tuple[float, float, int]:
    """(lowest value, step, positions) of a slider of ``slider_range`` (live_decoder.js's range input)."""
    return -slider_range, slider_range / SLIDER_STEPS, 2 * SLIDER_STEPS + 1


@st.cache_resource(show_spinner=False, max_entries=32)
def _strips_pay(run_key: str, _spec_or_model, slider_range: float) -> bool:
    """Whether a whole slider's strip is cheap enough to send (bytes, and a timed decode of 64 latents scaled to
    the strip's positions), decided once per run and range."""
    import time
    d, n = _latent_dim(_spec_or_model), strip_grid(slider_range)[2]
    header = _shape_header(_spec_or_model, d, _num_classes(_spec_or_model))
    if n * header["channels"] * header["image_size"] ** 2 > STRIP_MAX_BYTES:
        return False
    zs = np.random.default_rng(0).normal(size=(64, d)).astype(np.float32)
    label = 0 if _num_classes(_spec_or_model) else None
    best = float("inf")
    for _ in range(2):
        t0 = time.perf_counter()
        pictures(_spec_or_model, zs, label)
        best = min(best, time.perf_counter() - t0)
    return best * 1000 * n / 64 <= STRIP_MAX_MS


def _strip(spec_or_model, z: list[float], dim: int, label: int | None, slider_range: float) -> dict:
    """Every position slider ``dim`` can take, the other dimensions at ``z``: {"dim", "label", "base", "lo", "step",
    "n", "px": base64 of uint8 [n, S, S(, 3)]}."""
    lo, step, n = strip_grid(slider_range)
    zs = np.repeat(np.asarray([z], np.float64), n, axis=0)
    zs[:, dim] = lo + step * np.arange(n)
    return {"dim": dim, "label": label, "base": [float(v) for v in z], "lo": lo, "step": step, "n": n,
            "px": base64.b64encode(pictures(spec_or_model, zs, label).tobytes()).decode("ascii")}


def _answer(key: str, spec_or_model, data_id: str, run_key: str = "", slider_range: float | None = None) -> None:
    """Trigger callback (before the fragment reruns): decode the z the browser asked for, and the moving slider's
    strip when the browser asks for it and strips pay for this decoder."""
    asked = st.session_state.get(key)
    req = asked.get("frame") if hasattr(asked, "get") else None
    if not (isinstance(req, dict) and req.get("data_id") == data_id and isinstance(req.get("seq"), int)):
        return
    z, lab = req.get("z"), req.get("label")
    d, k = _latent_dim(spec_or_model), _num_classes(spec_or_model)
    if not (isinstance(z, list) and len(z) == d and all(isinstance(v, (int, float)) and math.isfinite(v)
                                                        for v in z)):
        return
    lab = lab if (k and isinstance(lab, int) and 0 <= lab < k) else (0 if k else None)
    z = [float(v) for v in z]
    answered = frame(spec_or_model, z, lab)
    nonce = str(req.get("nonce", ""))[:40]
    answered.update(seq=req["seq"], nonce=nonce)
    slot = _slot(key)
    slot["frame"] = (data_id, answered)
    dim = req.get("strip_dim")
    if slider_range is None or not (isinstance(dim, int) and 0 <= dim < d):
        return
    import time
    asked = (nonce, dim, lab, tuple(v for i, v in enumerate(z) if i != dim))
    last = slot.get("strip_sent")
    if last and last[0] == asked and time.monotonic() - last[1] < 1.0:     # on its way already
        return
    if _strips_pay(run_key or f"id:{id(spec_or_model)}", spec_or_model, float(slider_range)):
        slot["strip"] = (data_id, {**_strip(spec_or_model, z, dim, lab, float(slider_range)), "nonce": nonce})
        slot["strip_sent"] = (asked, time.monotonic())


def _slot(key: str) -> dict:
    return st.session_state.setdefault(state.LIVE_SERVER, {}).setdefault(key, {})


@st.fragment
def _server_live(spec_or_model, layout: dict, run_key: str, height):
    """The panel on the server path (module docstring): the component alone in a fragment, so a frame request
    reruns this function only."""
    key, d = layout["key"], layout["spec"]["latent_dim"]
    conditional = layout["label0"] is not None
    data_id = hashlib.blake2b(json.dumps([run_key, layout], sort_keys=True).encode(), digest_size=8).hexdigest()
    prev = st.session_state.get(key)
    prev = prev.get("value") if hasattr(prev, "get") else None
    slot = _slot(key)
    if prev != slot.get("seen"):
        # a release reruns the page's fragment alone: the page must see the new value too (the value callback does
        # not fire for a dict value in Streamlit 1.67, so the change is noticed here). A value gone (the widget's
        # state is dropped while another page shows) is no release.
        slot["seen"] = prev
        if prev is not None:
            st.rerun(scope="app")
    z, lab = list(layout["z0"]), layout["label0"]
    if isinstance(prev, dict) and prev.get("data_id") == data_id:
        zs = prev.get("z")
        if isinstance(zs, list) and len(zs) == d and all(isinstance(v, (int, float)) and math.isfinite(v)
                                                         for v in zs):
            z = [float(v) for v in zs]
        if conditional and isinstance(prev.get("label"), int) and 0 <= prev["label"] < layout["spec"]["num_classes"]:
            lab = prev["label"]
    base = {**_base_frame(spec_or_model, run_key, tuple(z), lab), "seq": -1}     # the committed z's picture
    _COMPONENT(key=key, data={**layout, "data_id": data_id, "frame": base}, default={"value": None}, height=height,
               on_value_change=_noop, on_frame_change=functools.partial(
                   _answer, key, spec_or_model, data_id, run_key, layout["range"] if layout["mode"] == "sliders"
                   and layout["strips"] else None))
    held, strip = slot.pop("frame", None), slot.pop("strip", None)     # this run's answer, sent once
    _FRAMES(key=f"{key}.frame", data={"key": key, "frame": held[1] if held and held[0] == data_id else None,
                                      "strip": strip[1] if strip and strip[0] == data_id else None}, height=0)
    return _result(z, lab, conditional)


def _base_frame(spec_or_model, run_key: str, z: tuple[float, ...], label: int | None) -> dict:
    """The frame of the committed z (shown on a full run), cached so that identical reruns send identical data."""
    if not run_key:
        return frame(spec_or_model, list(z), label)
    return _cached_frame(run_key, spec_or_model, z, label)


@st.cache_data(show_spinner=False, max_entries=256)
def _cached_frame(run_key: str, _spec_or_model, z: tuple[float, ...], label: int | None) -> dict:
    return frame(_spec_or_model, list(z), label)
