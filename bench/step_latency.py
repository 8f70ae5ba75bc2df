"""Loss forces page in Chromium: click "One step" to the new arrows on screen, in ms. Prints one JSON object.

    python bench/step_latency.py --clicks 30

The app is served as ``./run.sh app`` serves it (bench/appserver.py), on the 2-D demo run. Timed in
the page: from the button's mousedown to the map's caption showing the next step number (a
MutationObserver; the figure with the new arrows comes before the caption in the same fragment run,
so the caption changing means the arrows are in the page). Clicks are 400 ms apart.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile

import numpy as np
from appserver import app_server, chromium

OBSERVE = """() => { window.__t = []; window.__down = 0;
  document.addEventListener('mousedown', () => { window.__down = performance.now(); }, true);
  new MutationObserver(() => {
    const c = [...document.querySelectorAll("[data-testid='stCaptionContainer']")].map(e => e.textContent)
      .find(t => t.startsWith('Step '));
    if (c && c !== window.__last) { window.__last = c; window.__t.push(performance.now() - window.__down); }
  }).observe(document.body, {subtree: true, childList: true, characterData: true}); }"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clicks", type=int, default=30)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as runs, app_server(env={"VAE_LAB_RUNS_DIR": runs}) as url, \
            chromium() as browser:
        page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
        page.goto(f"{url}/loss_forces")
        page.get_by_text("Step 0 ·").wait_for(timeout=60_000)
        page.wait_for_timeout(1500)
        box = page.get_by_role("button", name="One step").bounding_box()
        page.evaluate(OBSERVE)
        for i in range(1, args.clicks + 1):
            page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.get_by_text(f"Step {i} ·").wait_for(timeout=30_000)
            page.wait_for_timeout(400)
        ms = np.array(page.evaluate("() => window.__t"))
    pct = lambda q: round(float(np.percentile(ms, q)), 1)  # noqa: E731
    print(json.dumps({"clicks": len(ms), "p50_ms": pct(50), "p95_ms": pct(95), "max_ms": round(float(ms.max()), 1),
                      "target_ms": 250, "cpu_count": os.cpu_count()}))


if __name__ == "__main__":
    main()
