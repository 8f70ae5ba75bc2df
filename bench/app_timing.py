"""How quickly the app answers, in Chromium; prints one JSON object.

    python bench/app_timing.py [--repeats 5]

- open_to_interactive_ms: from ``page.goto`` to the home page ready to use (its title and the
  active run's manifold image shown, the run picker filled in, the script finished). Each
  repeat is a new browser session; the first one also pays for the server's imports and the
  model's first load (reported separately as cold_open_ms).
- start_to_first_chart_ms: from clicking Start on the Train page (quick demo settings, 1 epoch)
  to the first line of data on the live curves, drawn by the polling fragment after the first
  batch. Each repeat waits for its run to finish before the next.

Medians over ``--repeats`` runs. Runs are saved in a temporary folder.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time

import _root  # noqa: F401, I001  (the repository root on sys.path: labkit, ui)

from labkit.appserver import app_server, chromium

PICKER = "[data-testid='stSidebar'] [data-testid='stSelectbox'] input"
IDLE = "!document.querySelector('[data-testid=\"stStatusWidget\"]')"


def open_once(browser, url: str) -> float:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    t0 = time.perf_counter()
    page.goto(url)
    page.locator("[data-testid='stMain'] h1", has_text="VAE Lab").wait_for(timeout=120_000)
    page.wait_for_function("(() => { const i = document.querySelector(\"[data-testid='stMain'] "
                           "[data-testid='stImage'] img\"); return i && i.complete && i.naturalWidth > 0; })()",
                           timeout=120_000)
    page.wait_for_function(f"(() => {{ const i = document.querySelector(\"{PICKER}\"); return i && i.value; }})()")
    page.wait_for_function(IDLE, timeout=120_000)
    ms = (time.perf_counter() - t0) * 1000
    ctx.close()
    return ms


def train_once(browser, url: str) -> float:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    page.goto(f"{url}/train")
    page.get_by_role("button", name="Quick demo settings").wait_for(timeout=120_000)
    page.get_by_role("button", name="Quick demo settings").click()
    page.wait_for_timeout(300)
    page.wait_for_function(IDLE)
    epochs = page.get_by_role("textbox", name="Epochs", exact=True)
    epochs.fill("1")
    epochs.press("Enter")
    page.wait_for_timeout(300)
    page.wait_for_function(IDLE)
    start = page.get_by_role("button", name="Start")
    t0 = time.perf_counter()
    start.click()
    # the curves chart is drawn (empty) at once; wait for its first line of data
    page.locator("[data-testid='stMain'] .js-plotly-plot .scatterlayer path.js-line").first.wait_for(timeout=120_000)
    ms = (time.perf_counter() - t0) * 1000
    page.get_by_text("Training finished").first.wait_for(timeout=300_000)
    ctx.close()
    return ms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    with (tempfile.TemporaryDirectory() as runs, app_server(env={"VAE_LAB_RUNS_DIR": runs}) as url,
          chromium() as browser):
        opens = [open_once(browser, url) for _ in range(args.repeats)]
        starts = [train_once(browser, url) for _ in range(args.repeats)]
    out = {
        "open_to_interactive_ms": round(statistics.median(opens)),
        "cold_open_ms": round(opens[0]),
        "start_to_first_chart_ms": round(statistics.median(starts)),
        "open_all_ms": [round(v) for v in opens],
        "start_all_ms": [round(v) for v in starts],
        "repeats": args.repeats,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
