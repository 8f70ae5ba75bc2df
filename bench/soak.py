"""Soak test: many short browser sessions one after another; does the server give back what they
took? Prints one JSON object.

    python bench/soak.py                       # 300 sessions, as ./run.sh app serves
    python bench/soak.py --sessions 30 --settle 0
    python bench/soak.py --watcher auto --post-gc false   # other server settings (bench/loadkit.py)

A fresh server (as ``./run.sh app`` starts it, with a fresh temporary runs folder) is warmed
up (each page once), then sessions run strictly in sequence, each: connect, open a page by its
URL (round robin over ``--page``), one interaction of that page (bench/stclient/vaelab.py),
close. The server's RSS (/proc/PID/status VmRSS), thread count (/proc/PID/task) and open fds
(/proc/PID/fd) are read 1 s after session ``--baseline`` (20) and 1 s after the last, and
compared: the goal is RSS within ``--rss-mb`` (50 MB), threads and fds back to their level.

Streamlit keeps a closed tab's session for a reconnect: up to 128 of them, for 2 minutes
(``MemorySessionStorage``), expired only when another session is stored. So right after the
last session the server still holds up to 128 recent ones (20 at the baseline). With
``--settle S`` (default 130) the soak then waits S seconds, opens and closes two more sessions
(the first one's disconnect evicts the expired ones; the second one's script run is followed by
the post-script gc, when on) and reads again: ``after_settle`` and ``diff_settle``. Each
session, stored or not, holds its own asyncio event loop (an epoll fd and a socket pair: 3 fds)
until it is shut down or collected.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import sys
import time

import _root  # noqa: F401, I001  (the repository root on sys.path: labkit, ui)
import loadkit
import streamlit

import labkit.stclient as stclient
from labkit.stclient import vaelab


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=300)
    ap.add_argument("--baseline", type=int, default=20, help="read the server after this many sessions")
    ap.add_argument("--page", default="generate,sliders,map,recon",
                    help=f"pages to cycle through, a comma list of {','.join(vaelab.INTERACTIONS)}")
    ap.add_argument("--settle", type=float, default=130.0,
                    help="then wait this long and read again (0: do not); see above")
    ap.add_argument("--rss-mb", type=float, default=50.0, help="the RSS growth goal, MB")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=60.0, help="per action, seconds")
    loadkit.add_server_args(ap)
    args = ap.parse_args(argv)
    args.pages = [p.strip() for p in args.page.split(",") if p.strip()]
    if not args.pages or any(p not in vaelab.INTERACTIONS for p in args.pages):
        ap.error(f"--page takes {','.join(vaelab.INTERACTIONS)}")
    if not 0 < args.baseline < args.sessions:
        ap.error("--baseline must be between 0 and --sessions")
    return args


async def one_session(url: str, page: str, rng: random.Random, timeout: float) -> tuple[float, list[str]]:
    """Connect, open ``page`` by its URL, one interaction, close: (seconds, problems)."""
    t0 = time.perf_counter()
    s = stclient.Session(url, page=vaelab.PAGES[page], timeout=timeout)
    problems = []
    try:
        r = await s.open()
        if r.ok:
            r = await vaelab.INTERACTIONS[page](s, rng)
        if not r.ok:
            problems.append(f"{page} {r.action}: {loadkit.error_kind(r)} {'; '.join(r.exceptions)[:200]}")
    except (OSError, KeyError, ValueError, IndexError) as e:
        problems.append(f"{page}: {type(e).__name__}: {e}"[:300])
    finally:
        await s.close()
    return time.perf_counter() - t0, problems


def diff(a: dict, b: dict) -> dict:
    return {k: round(b[k] - a[k], 1) for k in ("rss_mb", "threads", "fds")}


def verdict(d: dict, rss_mb: float) -> dict:
    return {"rss_within_goal": d["rss_mb"] <= rss_mb, "threads_back": d["threads"] <= 0, "fds_back": d["fds"] <= 0}


async def soak(url, args) -> dict:
    pid = url.pid
    notes = await vaelab.warm_up(url, args.pages, args.timeout)
    rng = random.Random(args.seed)
    start = loadkit.memory(pid)
    times, problems, marks = [], [], {}
    meter = loadkit.Meter(pid)
    for i in range(args.sessions):
        secs, bad = await one_session(url, args.pages[i % len(args.pages)], rng, args.timeout)
        times.append(secs)
        problems += [f"#{i + 1} {p}" for p in bad]
        if i + 1 in (args.baseline, args.sessions):
            await asyncio.sleep(1.0)
            marks[i + 1] = loadkit.memory(pid)
            print(f"after {i + 1} sessions: {marks[i + 1]}", file=sys.stderr)
        elif (i + 1) % 50 == 0:
            print(f"{i + 1} sessions ...", file=sys.stderr)
    cpu = meter.read()
    base, end = marks[args.baseline], marks[args.sessions]
    out = {"sessions": args.sessions, "before_sessions": start,
           f"after_{args.baseline}": base, f"after_{args.sessions}": end, "diff": diff(base, end),
           "goal": verdict(diff(base, end), args.rss_mb)}
    if args.settle > 0:
        print(f"settling {args.settle:g} s ...", file=sys.stderr)
        await asyncio.sleep(args.settle)
        for _ in range(2):  # the first one's disconnect evicts the expired sessions; the second one's
            s = stclient.Session(url, timeout=args.timeout)  # script run is followed by Streamlit's gc
            try:
                await s.open()
            finally:
                await s.close()
            await asyncio.sleep(1.0)
        out["after_settle"] = loadkit.memory(pid)
        out["diff_settle"] = diff(base, out["after_settle"])
        out["goal_settle"] = verdict(out["diff_settle"], args.rss_mb)
    out.update({
        "errors": len(problems), "error_samples": problems[:5],
        "session_ms": loadkit.latency_ms(times),
        "server_cpu_ms_per_session": round(cpu["server_self_s"] * 1000 / args.sessions, 1),
        "client_cpu_ms_per_session": round(cpu["client_s"] * 1000 / args.sessions, 1),
        "sessions_wall_s": round(cpu["wall_s"], 1),
    })
    if notes:
        out["notes"] = notes
    return out


def main() -> None:
    args = parse_args()
    with loadkit.server(args) as (url, _runs):
        out = asyncio.run(soak(url, args))
    out["settings"] = {"pages": args.pages, "baseline": args.baseline, "settle_s": args.settle, "seed": args.seed,
                       "watcher": args.watcher, "post_gc": args.post_gc, "server_flags": loadkit.server_flags(args)}
    out.update({"streamlit": streamlit.__version__, "cpus": os.cpu_count(), "platform": platform.platform()})
    d = out["diff"]
    print(f"{args.baseline} -> {args.sessions} sessions: RSS {d['rss_mb']:+} MB, threads {d['threads']:+}, "
          f"fds {d['fds']:+}; errors {out['errors']}", file=sys.stderr)
    if "diff_settle" in out:
        d = out["diff_settle"]
        print(f"after settling: RSS {d['rss_mb']:+} MB, threads {d['threads']:+}, fds {d['fds']:+}",
              file=sys.stderr)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
