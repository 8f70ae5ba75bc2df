"""Loss forces page in Chromium: click "One step" to the new arrows drawn, in ms. Prints one JSON object.

    python bench/step_latency.py --clicks 60
    python bench/step_latency.py --clicks 60 --root /tmp/old      # another checkout, to compare side by side
    python bench/step_latency.py --clicks 60 --url http://localhost:8501   # a server started by ./run.sh app

The app is served as ``./run.sh app`` serves it (bench/appserver.py), on the 2-D demo run. Timed in the page
from the button's mousedown to the map's draw with the new step:

- since 2026-11-29 the map is a canvas component (ui/forces_map.js) that is redrawn in place and fires a
  ``vae-forces-drawn`` event with the step it drew: ``arrows`` is the first draw of the new step;
- before, it was an ``st.plotly_chart``, timed by plotly's ``plotly_afterplot`` events (so ``--root`` on an
  older checkout still works). Streamlit drew each new figure twice, first at the spec's own width (often while
  the chart was hidden), then again at the page's column: ``arrows`` is then the last draw before the next
  click, ``first_draw`` the first.

``caption`` is the map's caption showing the next step number, which React puts in the page before the map is
drawn (this bench reported only the caption before 2026-11-29, and so understated the wait). Clicks are 400 ms
apart.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile

import _root  # noqa: F401, I001  (the repository root on sys.path: labkit, ui)
import numpy as np

from labkit.appserver import app_server, chromium

OBSERVE = """() => { window.__t = []; window.__down = 0; window.__ap = [];
  const hook = () => document.querySelectorAll("[data-testid='stMain'] .js-plotly-plot").forEach(gd => {
    if (!gd.__timed && gd.on) {
      gd.__timed = true;
      gd.on('plotly_afterplot', () => window.__ap.push([performance.now() - window.__down, null]));
    } });
  hook();
  new MutationObserver(hook).observe(document.body, {subtree: true, childList: true});
  document.addEventListener('vae-forces-drawn', e => window.__ap.push([e.detail.t - window.__down, e.detail.step]));
  document.addEventListener('mousedown', () => { window.__down = performance.now(); window.__ap = []; }, true);
  new MutationObserver(() => {
    const c = [...document.querySelectorAll("[data-testid='stCaptionContainer']")].map(e => e.textContent)
      .find(t => t.startsWith('Step '));
    if (c && c !== window.__last) { window.__last = c; window.__t.push(performance.now() - window.__down); }
  }).observe(document.body, {subtree: true, childList: true, characterData: true}); }"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clicks", type=int, default=60)
    ap.add_argument("--root", help="serve another checkout of the app (default: this one)")
    ap.add_argument("--url", help="time a server that is already running, e.g. one started by ./run.sh app")
    args = ap.parse_args()
    first, arrows = [], []   # ms after the mousedown
    with contextlib.ExitStack() as stack:
        if args.url:
            url = args.url.rstrip("/")
        else:
            runs = stack.enter_context(tempfile.TemporaryDirectory())
            url = stack.enter_context(app_server(env={"VAE_LAB_RUNS_DIR": runs}, root=args.root))
        browser = stack.enter_context(chromium())
        page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
        page.goto(f"{url}/loss_forces")
        page.get_by_text("Step 0 ·").wait_for(timeout=60_000)
        page.wait_for_timeout(1500)
        box = page.get_by_role("button", name="One step").bounding_box()
        page.evaluate(OBSERVE)
        for i in range(1, args.clicks + 1):
            page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.get_by_text(f"Step {i} ·").wait_for(timeout=30_000)
            page.wait_for_function("() => window.__ap.length > 0", timeout=30_000)
            page.wait_for_timeout(400)
            drawn = page.evaluate("() => window.__ap")
            first.append(drawn[0][0])
            if drawn[0][1] is None:       # plotly: its last draw is the one at the page's width
                arrows.append(drawn[-1][0])
            else:                         # the canvas: its first draw of this step
                arrows.append(next(t for t, step in drawn if step == i))
        caption = np.array(page.evaluate("() => window.__t"))

    def stats(ms) -> dict:
        ms = np.asarray(ms)
        return {"p50_ms": round(float(np.percentile(ms, 50)), 1), "p95_ms": round(float(np.percentile(ms, 95)), 1),
                "max_ms": round(float(ms.max()), 1)}
    print(json.dumps({"root": args.url or args.root or "this checkout", "clicks": len(arrows), "arrows": stats(arrows),
                      "first_draw": stats(first), "caption": stats(caption), "target_ms": 250,
                      "cpu_count": os.cpu_count()}))


if __name__ == "__main__":
    main()
