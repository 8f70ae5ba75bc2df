"""First views in Chromium: what a fresh tab costs the server on the pages that send a decoder to the browser.
Prints one JSON object.

    python bench/first_views.py                      # this checkout
    python bench/first_views.py --root /tmp/old      # another checkout of the app, to compare side by side

The app is served as ``./run.sh app`` serves it (labkit.appserver: the checkout's .streamlit/config.toml), on its
default run. A first tab pays the server's start-up and is not counted; then each of ``--n`` fresh tabs (a new
browser context: no cache, no cookie) opens ``/latent_map`` (the 2-D run's pad), follows the sidebar links to
Sliders and then Dimensions, and waits 1.5 s on each page after it settled, long enough for anything the page sends
on its own. Per tab: the server process's CPU (user + system, /proc) over the three views, and the websocket
messages the tab sent (each a rerun request: the first load and two page links are three; anything more is a rerun
the page asked for by itself).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import tempfile

import _root  # noqa: F401, I001  (the repository root on sys.path: labkit, ui)

from labkit.appserver import app_server, chromium

IDLE = "!document.querySelector('[data-testid=\"stStatusWidget\"]') && !document.querySelector('[data-stale=\"true\"]')"
HEADING = ("h => { const e = document.querySelector(\"[data-testid='stMain'] h1\");"
           " return !!e && e.textContent.trim() === h && " + IDLE + "; }")
VIEWS = [("Sliders", "Sliders"), ("Dimensions", "Dimensions")]


def server_cpu(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settle(page, heading: str) -> None:
    page.wait_for_function(HEADING, arg=heading, timeout=60_000)
    page.wait_for_timeout(1500)
    page.wait_for_function(IDLE, timeout=60_000)


def one_tab(browser, url: str) -> dict:
    ctx = browser.new_context(viewport={"width": 1100, "height": 900})
    page = ctx.new_page()
    sent: list[int] = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda payload: sent.append(len(payload))))
    page.goto(f"{url}/latent_map")
    settle(page, "Latent map")
    for link, heading in VIEWS:
        page.locator("[data-testid='stSidebarNav']").get_by_role("link", name=link, exact=True).click()
        settle(page, heading)
    ctx.close()
    return {"messages_sent": len(sent)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5, help="fresh tabs measured")
    ap.add_argument("--root", help="serve another checkout of the app (default: this one)")
    args = ap.parse_args()
    rows = []
    with contextlib.ExitStack() as stack:
        runs = stack.enter_context(tempfile.TemporaryDirectory())
        server = stack.enter_context(app_server(env={"VAE_LAB_RUNS_DIR": runs}, root=args.root))
        browser = stack.enter_context(chromium())
        one_tab(browser, str(server))                       # the server's start-up
        for _ in range(args.n):
            c0 = server_cpu(server.pid)
            row = one_tab(browser, str(server))
            row["server_cpu_ms"] = round(1000 * (server_cpu(server.pid) - c0))
            rows.append(row)
    median = {k: statistics.median(r[k] for r in rows) for k in ("server_cpu_ms", "messages_sent")}
    print(json.dumps({"bench": "first_views", "root": args.root or "this checkout", "n": args.n,
                      "cpu_count": os.cpu_count(), "load": round(os.getloadavg()[0], 2), "tabs": rows,
                      "median": median}))


if __name__ == "__main__":
    main()
