"""Stock st.slider vs the in-browser latent panel, dragged in Chromium; prints one JSON object.

    python bench/slider_bench.py                      # random-weight conv models, 2-D and 32-D
    python bench/slider_bench.py --run runs/a --run runs/b   # real run folders instead

For each model, two pages: (a) "stock": ``st.slider`` -> decode on the server -> ``st.image``;
(b) "panel": ``ui.live_decoder.latent_panel``. On each, the first slider's thumb is pressed
and the mouse moves right every 16 ms for 1 s, then is released. Reported per case:

- frames_during_drag: images painted between press and release (stock: new ``st.image``
  sources decoded, seen by a MutationObserver; panel: ``data-frames`` increments);
- fps_during_drag: those frames over the drag's duration;
- release_to_pixels_ms: from mouseup until the image for the final value is painted
  (0 when the panel had already painted it before the button came up);
- panel only: decode_ms (mean in-browser forward pass) and weights_bytes (the spec sent once).

A run folder is read with ``vae.runs.load_run`` (``config.json`` + ``model.safetensors``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import _root  # noqa: F401, I001  (the repository root on sys.path: labkit, ui)

from labkit.appserver import CHROMIUM, CHROMIUM_ARGS, app_server

DEFAULT_MODELS = [
    {"name": "conv-2d", "seed": 0,
     "cfg": {"arch": "conv", "image_size": 28, "latent_dim": 2, "hidden": [32, 64], "fc_dim": 256}},
    {"name": "conv-32d", "seed": 0,
     "cfg": {"arch": "conv", "image_size": 28, "latent_dim": 32, "hidden": [32, 64], "fc_dim": 256}},
]

# The Streamlit script both pages run (written to a temp file): ?kind=stock|panel&model=i.
# app_server puts the repo root on its PYTHONPATH, so `ui` imports from the checkout.
APP = r'''
import json, os
import streamlit as st
import torch
from vae.config import ModelConfig, from_dict
from vae.models import build_model
from ui.live_decoder import latent_panel, server_decode, _upscale

MODELS = json.loads(os.environ["BENCH_MODELS"])


@st.cache_resource
def load(i: int):
    m = MODELS[i]
    if "run" in m:
        from vae.runs import load_run
        return load_run(m["run"]).model
    torch.manual_seed(m["seed"])
    model = build_model(from_dict(ModelConfig, m["cfg"])).eval()
    with torch.no_grad():
        for p in model.decoder.parameters():
            p.mul_(3.0)  # random weights: spread the pixels over 0..1
    return model


i = int(st.query_params.get("model", 0))
model = load(i)
label = 0 if model.cfg.conditional else None
if st.query_params.get("kind") == "stock":
    z = [0.0] * model.cfg.latent_dim
    z[0] = st.slider("z0", -3.0, 3.0, 0.0, step=0.01, key="z0")
    st.image(_upscale(server_decode(model, z, label), 224), clamp=True)
else:
    latent_panel(model, key="bench", run_key=f"bench-{i}")
'''


# page-side instrumentation: press/release times and paint times (performance.now() ms)
INSTRUMENT_COMMON = """() => {
  window.__bench = {down: null, up: null, paints: []};
  addEventListener('pointerdown', () => { __bench.down = performance.now(); }, true);
  addEventListener('pointerup', () => { __bench.up = performance.now(); }, true);
}"""
INSTRUMENT_STOCK = """() => {
  const sel = "[data-testid='stImage'] img", seen = new Set([...document.querySelectorAll(sel)].map(i => i.src));
  new MutationObserver(() => {
    for (const img of document.querySelectorAll(sel)) {
      if (seen.has(img.src)) continue;
      seen.add(img.src);
      img.decode().then(() => __bench.paints.push(performance.now())).catch(() => {});
    }
  }).observe(document.body, {subtree: true, childList: true, attributes: true, attributeFilter: ['src']});
}"""
INSTRUMENT_PANEL = """(canvas) => {
  new MutationObserver(() => __bench.paints.push(performance.now()))
    .observe(canvas, {attributes: true, attributeFilter: ['data-frames']});
}"""


def drag(page, thumb_box, duration: float, interval: float) -> int:
    x, y = thumb_box["x"] + thumb_box["width"] / 2, thumb_box["y"] + thumb_box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    t0, moves = time.perf_counter(), 0
    while True:
        target = t0 + (moves + 1) * interval
        if target - t0 > duration:
            break
        time.sleep(max(0.0, target - time.perf_counter()))
        moves += 1
        page.mouse.move(x + 2.0 * moves, y)  # 2 px per move: about 62 slider steps over 1 s
    page.mouse.up()
    return moves


def run_case(browser, url: str, kind: str, i: int, duration: float, interval: float) -> dict:
    ctx = browser.new_context(viewport={"width": 1200, "height": 1000})
    page = ctx.new_page()
    page.set_default_timeout(60_000)
    page.goto(f"{url}/?{urllib.parse.urlencode({'kind': kind, 'model': i})}")
    out: dict = {}
    if kind == "stock":
        page.wait_for_selector("[data-testid='stImage'] img")
        page.wait_for_timeout(500)
        page.evaluate(INSTRUMENT_COMMON)
        page.evaluate(INSTRUMENT_STOCK)
        thumb = page.locator("[data-testid='stSlider'] input[type=range]").first.locator("xpath=../..")
    else:
        canvas = page.locator("[data-testid='vae-live-image']")
        canvas.wait_for()
        page.wait_for_timeout(500)
        page.evaluate(INSTRUMENT_COMMON)
        canvas.evaluate(INSTRUMENT_PANEL)
        thumb = page.locator("[data-testid='vae-latent-sliders'] input[type=range]").first
        out["decode_ms"] = round(page.evaluate("window.__vaeLab.panel('bench').timeDecode(50)"), 3)
    box = thumb.bounding_box()
    if kind == "panel":  # the range input's thumb sits at its centre for z0 = 0
        box = {"x": box["x"] + box["width"] / 2 - 5, "y": box["y"], "width": 10, "height": box["height"]}
    moves = drag(page, box, duration, interval)
    if kind == "stock":  # wait for the rerun's image, then a little more
        page.wait_for_function("__bench.up !== null && __bench.paints.some(t => t > __bench.up)", timeout=30_000)
    page.wait_for_timeout(600)
    b = page.evaluate("window.__bench")
    ctx.close()
    during = [t for t in b["paints"] if b["down"] <= t <= b["up"]]
    after = [t for t in b["paints"] if t > b["up"]]
    drag_s = (b["up"] - b["down"]) / 1000
    last = max(b["paints"]) if b["paints"] else None
    out.update({
        "mouse_moves": moves,
        "drag_s": round(drag_s, 3),
        "frames_during_drag": len(during),
        "fps_during_drag": round(len(during) / drag_s, 1),
        "frames_after_release": len(after),
        "release_to_pixels_ms": None if last is None else round(max(0.0, last - b["up"]), 1),
    })
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", action="append", default=[], metavar="DIR", help="run folder (repeatable)")
    ap.add_argument("--duration", type=float, default=1.0, help="seconds of dragging")
    ap.add_argument("--interval-ms", type=float, default=16.0, help="ms between mouse moves")
    args = ap.parse_args(argv)
    models = [{"name": Path(r).name, "run": str(Path(r).resolve())} for r in args.run] or DEFAULT_MODELS

    from playwright.sync_api import sync_playwright

    result: dict = {"bench": "slider_bench", "streamlit": None, "chromium": None, "cpus": os.cpu_count(),
                    "machine": platform.machine(), "duration_s": args.duration, "interval_ms": args.interval_ms,
                    "cases": {}}
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "slider_bench_app.py"
        script.write_text(APP)
        env = {"BENCH_MODELS": json.dumps(models)}
        with app_server(script, env=env) as url, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            result["chromium"] = browser.version
            import streamlit

            result["streamlit"] = streamlit.__version__
            for i, m in enumerate(models):
                for kind in ("stock", "panel"):
                    result["cases"][f"{m['name']}/{kind}"] = run_case(browser, url, kind, i, args.duration,
                                                                     args.interval_ms / 1000)
            browser.close()
    # the spec's size: what the panel sends once
    try:
        import torch

        from vae.config import ModelConfig, from_dict
        from vae.export import decoder_spec, spec_bytes
        from vae.models import build_model

        for m in models:
            if "run" in m:
                from vae.runs import load_run

                model = load_run(m["run"]).model
            else:
                torch.manual_seed(m["seed"])
                model = build_model(from_dict(ModelConfig, m["cfg"]))
            result["cases"][f"{m['name']}/panel"]["weights_bytes"] = len(spec_bytes(decoder_spec(model)))
    except Exception as e:  # the numbers above stand without it
        result["weights_bytes_error"] = str(e)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
