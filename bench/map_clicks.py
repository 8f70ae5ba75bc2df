"""Latent map in Chromium: server CPU and wall time per interaction. Prints one JSON object.

    python bench/map_clicks.py                       # this checkout
    python bench/map_clicks.py --root /tmp/old       # another checkout of the app, to compare side by side
    ./run.sh app --server.port 8611 &                # or the app exactly as the README starts it:
    python bench/map_clicks.py --url http://localhost:8611 --pid "$(pgrep -f 'streamlit run app.py')"

The app is served as ``./run.sh app`` serves it (bench/appserver.py, the checkout's .streamlit/config.toml),
on its default run. Three interactions, ``--n`` times each: a click on a test point with no layers shown, the
same with the posterior ellipses, density and holes shown, and one step of the "More like a …" strength slider.
Server CPU is read from /proc for the server process (user + system); the wall time runs from the interaction
to the page settled (no running indicator, then 200 ms), so it includes the browser's redraw.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
import time

import _root  # noqa: F401, I001  (the repository root on sys.path: labkit, ui)

from labkit.appserver import app_server, chromium

IDLE = "!document.querySelector('[data-testid=\"stStatusWidget\"]')"
POINTS = "[data-testid='stMain'] .js-plotly-plot .scatterlayer .trace"


def server_cpu(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settle(page) -> None:
    page.wait_for_timeout(300)
    page.wait_for_function(IDLE, timeout=60_000)
    page.wait_for_timeout(200)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10, help="interactions of each kind")
    ap.add_argument("--root", help="serve another checkout of the app (default: this one)")
    ap.add_argument("--url", help="a server already running (e.g. ./run.sh app) instead of starting one")
    ap.add_argument("--pid", type=int, help="with --url: that server's process id, for its CPU")
    args = ap.parse_args()
    if bool(args.url) != bool(args.pid):
        ap.error("--url and --pid go together")
    out: dict = {"root": args.url or args.root or "this checkout", "n": args.n, "cpu_count": os.cpu_count()}
    with contextlib.ExitStack() as stack:
        if args.url:
            url, pid = args.url.rstrip("/"), args.pid
        else:
            runs = stack.enter_context(tempfile.TemporaryDirectory())
            server = stack.enter_context(app_server(env={"VAE_LAB_RUNS_DIR": runs}, root=args.root))
            url, pid = str(server), server.pid
        browser = stack.enter_context(chromium())
        page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        page.goto(f"{url}/latent_map")
        page.locator(f"{POINTS} .points path").first.wait_for(timeout=120_000)
        settle(page)
        pts = page.locator(POINTS)

        def measure(name: str, act) -> None:
            c0, t0 = server_cpu(pid), time.perf_counter()
            for i in range(args.n):
                act(i)
                settle(page)
            out[name] = {"server_cpu_ms": round(1000 * (server_cpu(pid) - c0) / args.n, 1),
                         "wall_ms_incl_settle": round(1000 * (time.perf_counter() - t0) / args.n)}

        measure("click a point, layers off", lambda i: pts.nth(i % 9).locator(".points path").nth(i).click(force=True))
        for layer in ("Posterior ellipses", "Density", "Holes"):
            page.locator("[data-testid='stMain'] [data-testid='stButtonGroup'] button", has_text=layer).click()
            settle(page)
        measure("click a point, three layers on",
                lambda i: pts.nth(i % 9).locator(".points path").nth(i + 1).click(force=True))
        slider = page.locator("[data-testid='stSlider']", has_text="Strength").get_by_role("slider")

        def nudge(i: int) -> None:
            slider.focus()
            slider.press("ArrowRight" if i % 2 == 0 else "ArrowLeft")
        measure("strength slider, one step", nudge)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
