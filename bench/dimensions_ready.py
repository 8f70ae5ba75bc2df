"""The Dimensions page on a 10-D run: server CPU and wall time from opening it to ready. Prints one JSON object.

    python bench/dimensions_ready.py [--repeats 3] [--run RUN_DIR]

``--run`` measures another run folder (copied into the server's runs folder) instead of the beta-TCVAE demo, e.g. a
10-D run trained with the Train page's default MLP, whose decoder spec is larger.

Served as ``./run.sh app`` serves it (labkit.appserver: the repository's .streamlit/config.toml, no file watcher), on
the shipped demo runs, driven over the websocket as a browser drives it (labkit.stclient). For each fresh server, a
first tab opens Home (the server's one-time start-up and the default run), then each measured tab opens the page by
its link, as a person following a link or reloading it does:

- ``cold``: ``/dimensions?run=shapes32-tcvae-10d``, the first time: the run's model loaded, its analysis computed
  (2,000 test images rendered and encoded, the mutual information measured), the decoder's spec built and sent;
- ``warm``: the same link in a new tab (everything cached for every session);
- ``pair_cold`` / ``pair_warm``: ``&vs=shapes32-vae-10d``, the plain VAE beside it (its model and analysis the first
  time), as the guided experiment ends.

Server CPU is the server process's utime + stime (/proc) from the tab's first message until its script run finished
(the whole page: sidebar, strips, heat maps); wall is the same span on the client. Medians over ``--repeats`` servers.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import time
from pathlib import Path

import _root  # noqa: F401, I001  (the repository root on sys.path: labkit, ui)
import loadkit

from labkit.stclient.session import Session

RUN, BESIDE = "shapes32-tcvae-10d", "shapes32-vae-10d"


async def measure(pid: int, act) -> dict:
    c0, t0 = loadkit.cpu_seconds(pid)["self"], time.perf_counter()
    r = await act()
    if not r.ok:
        raise RuntimeError(f"{r.action}: {r.status} {r.exceptions}")
    return {"server_cpu_ms": round(1000 * (loadkit.cpu_seconds(pid)["self"] - c0)),
            "wall_ms": round(1000 * (time.perf_counter() - t0))}


async def visit(url: str, pid: int, query: str) -> dict:
    s = Session(url, page="dimensions", query=query)
    try:
        out = {"page": await measure(pid, s.open)}
        shown = [k for k in ("dims.strips.0", "dims.strips.1") if _has(s, k)]
        if shown != (["dims.strips.0", "dims.strips.1"] if "vs=" in query else ["dims.strips.0"]):
            raise RuntimeError(f"{query}: the page showed the strips {shown}")
        return out
    finally:
        await s.close()


def _has(s: Session, key: str) -> bool:
    try:
        s.element(key, "bidi_component")
        return True
    except KeyError:
        return False


async def one_server(url: str, pid: int, run: str) -> dict:
    home = Session(url)
    await home.open()                     # the server's start-up, paid by whoever comes first
    await home.close()
    cold = await visit(url, pid, f"run={run}", )
    warm = await visit(url, pid, f"run={run}", )
    pair_cold = await visit(url, pid, f"run={run}&vs={BESIDE}", )
    pair_warm = await visit(url, pid, f"run={run}&vs={BESIDE}", )
    return {"cold": cold["page"], "warm": warm["page"], "pair_cold": pair_cold["page"],
            "pair_warm": pair_warm["page"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    loadkit.add_server_args(ap)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--run", default=None, help="a run folder to measure instead of the beta-TCVAE demo")
    args = ap.parse_args()
    rows = []
    name = Path(args.run).name if args.run else RUN
    for _ in range(args.repeats):
        with loadkit.server(args) as (url, runs):
            if args.run:
                shutil.copytree(args.run, runs / name, ignore=shutil.ignore_patterns("checkpoint", "snapshots"))
            rows.append(asyncio.run(one_server(url, url.pid, name)))
    median = {k: {m: statistics.median(r[k][m] for r in rows) for m in ("server_cpu_ms", "wall_ms")} for k in rows[0]}
    print(json.dumps({"bench": "dimensions_ready", "run": name, "beside": BESIDE, "runs": rows, "median": median}))


if __name__ == "__main__":
    main()
