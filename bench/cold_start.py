"""The first visitor after the server starts: how long until their page is interactive. Prints one JSON object.

    python bench/cold_start.py                         # the app as ./run.sh app serves it
    python bench/cold_start.py --app-root /tmp/before --watcher auto   # another checkout, e.g. before a change

For each of ``--repeats`` fresh servers: seconds from launch to healthy, then the first tab's Home (to its
script_finished) and its first page after Home (``--page``), and the server CPU spent from launch to then,
over the websocket like a browser (bench/stclient). The first Home pays the imports and model loads.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import _root  # noqa: F401, I001  (the repository root on sys.path: labkit, ui)
import loadkit

from labkit.stclient import vaelab


async def first_visit(url: str, page: str) -> dict:
    t0 = time.perf_counter()
    s, runs = await vaelab.open_app(url, page, timeout=120)
    try:
        return {"home_s": round(runs[0].seconds, 2), "page_s": round(sum(r.seconds for r in runs[1:]), 2),
                "interactive_s": round(time.perf_counter() - t0, 2), "ok": all(r.ok for r in runs)}
    finally:
        await s.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    loadkit.add_server_args(ap)
    ap.add_argument("--page", default="generate", choices=sorted(vaelab.PAGES))
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    rows = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        with loadkit.server(args) as (url, _runs):
            healthy = time.perf_counter() - t0
            visit = asyncio.run(first_visit(url, args.page))
            cpu = loadkit.cpu_seconds(url.pid)["self"]
        rows.append({"healthy_s": round(healthy, 2), **visit, "server_cpu_s": round(cpu, 2),
                     "launch_to_interactive_s": round(healthy + visit["interactive_s"], 2)})
    median = {k: statistics.median(r[k] for r in rows) for k in ("healthy_s", "home_s", "interactive_s",
                                                                  "launch_to_interactive_s", "server_cpu_s")}
    print(json.dumps({"bench": "cold_start", "page": args.page, "runs": rows, "median": median,
                      "settings": {"app_root": args.app_root, "watcher": args.watcher, "post_gc": args.post_gc}}))


if __name__ == "__main__":
    main()
