"""Shared by bench/load.py and bench/soak.py: the server under test, started the way
``./run.sh app`` starts it, and what it costs, read from /proc.

Server options (``add_server_args``):

- ``--watcher none|auto``: ``--server.fileWatcherType``; default ``none``, as ``./run.sh app``
  (``./run.sh dev`` uses ``auto``).
- ``--post-gc default|true|false``: ``--runner.postScriptGC`` (a full ``gc.collect(2)`` after
  each script run); ``default`` passes nothing, as ``./run.sh app`` does, so .streamlit/config.toml's
  setting (off) applies.
- ``--server-arg ARG`` (repeatable): any other ``streamlit run`` argument, passed through,
  e.g. ``--server-arg=--server.runOnSave --server-arg=true``.

The server is bench/appserver.py's ``app_server``: the repo's app.py with the repository root as
its working folder (so ``.streamlit/config.toml`` is read, as with ``./run.sh app``), headless
on 127.0.0.1 and a free port, ``--server.runOnSave false --browser.gatherUsageStats false`` as
run.sh, and a fresh temporary ``VAE_LAB_RUNS_DIR``. ``VAE_STREAMLIT_LOG=1`` shows its output.

CPU is read from /proc/PID/stat (utime+stime, fields 14-15) for the server process itself (all
its threads), and separately for its children: live descendants (their own time and the time of
children they reaped) plus the children the server reaped (cutime+cstime, fields 16-17).
"""
from __future__ import annotations

import argparse
import contextlib
import math
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import _root  # noqa: F401, I001  (the repository root on sys.path: labkit, ui)

from labkit.appserver import app_server

TICK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") / 1024


def add_server_args(ap: argparse.ArgumentParser) -> None:
    g = ap.add_argument_group("server under test (default: as ./run.sh app)")
    g.add_argument("--watcher", choices=["none", "auto"], default="none", help="--server.fileWatcherType")
    g.add_argument("--post-gc", choices=["default", "true", "false"], default="default",
                   help="--runner.postScriptGC (default: not passed: .streamlit/config.toml's false)")
    g.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                   help="passed to `streamlit run` as is (repeat; e.g. --server-arg=--server.runOnSave "
                        "--server-arg=true)")
    g.add_argument("--startup-timeout", type=float, default=120.0, help="seconds for the server to get healthy")
    g.add_argument("--app-root", default=None, metavar="DIR",
                   help="serve another checkout of the app (e.g. `git worktree add /tmp/before f3367c2`), to "
                        "measure before and after side by side")


def server_flags(args: argparse.Namespace) -> list[str]:
    """The streamlit flags that differ from bench/appserver.py's own (which already match run.sh)."""
    flags = []
    if args.watcher != "none":
        flags += ["--server.fileWatcherType", args.watcher]
    if args.post_gc != "default":
        flags += ["--runner.postScriptGC", args.post_gc]
    return flags + list(args.server_arg)


@contextlib.contextmanager
def server(args: argparse.Namespace, env: dict | None = None) -> Iterator[tuple[str, Path]]:
    """(url with .pid, runs folder): a fresh server of the app with a fresh runs folder. A class's limits on a run's
    epochs and time budget are off (``env`` may set them): the training tab trains for the whole phase."""
    with tempfile.TemporaryDirectory(prefix="vae-lab-load-") as runs:
        base = {"VAE_LAB_RUNS_DIR": runs, "VAE_LAB_MAX_EPOCHS": "0", "VAE_LAB_MAX_TIME_BUDGET_S": "0"}
        with app_server(env={**base, **(env or {})}, extra_args=server_flags(args),
                        timeout=args.startup_timeout, root=args.app_root) as url:
            yield url, Path(runs)


# ---------------------------------------------------------------------- /proc
def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (index 0 = field 3, the state)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2:].split()


def _children_of() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            f = _stat(int(d))
            if f is not None:
                kids.setdefault(int(f[1]), []).append(int(d))
    return kids


def cpu_seconds(pid: int) -> dict:
    """{"self": server utime+stime, "children": live descendants + reaped children, "live_children": n}."""
    f = _stat(pid)
    if f is None:
        return {"self": math.nan, "children": math.nan, "live_children": 0}
    own = (int(f[11]) + int(f[12])) / TICK
    reaped = (int(f[13]) + int(f[14])) / TICK
    kids = _children_of()
    todo, live = list(kids.get(pid, [])), 0
    seen: set[int] = set()
    while todo:
        c = todo.pop()
        if c in seen:
            continue
        seen.add(c)
        cf = _stat(c)
        if cf is None:
            continue
        live += 1
        reaped += (int(cf[11]) + int(cf[12]) + int(cf[13]) + int(cf[14])) / TICK
        todo.extend(kids.get(c, []))
    return {"self": own, "children": reaped, "live_children": live}


def memory(pid: int) -> dict:
    """RSS (MB, VmRSS), thread count (/proc/PID/task) and open fds (/proc/PID/fd) of the server."""
    out = {"rss_mb": math.nan, "threads": -1, "fds": -1}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                out["rss_mb"] = round(int(line.split()[1]) / 1024, 1)
        out["threads"] = len(os.listdir(f"/proc/{pid}/task"))
        out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        pass
    return out


class Meter:
    """CPU of the server (self, children) and of this client process over a phase."""

    def __init__(self, pid: int):
        self.pid = pid
        self.t0 = time.perf_counter()
        self.server0 = cpu_seconds(pid)
        self.client0 = time.process_time()

    def read(self) -> dict:
        s1, c1 = cpu_seconds(self.pid), time.process_time()
        return {"wall_s": time.perf_counter() - self.t0,
                "server_self_s": s1["self"] - self.server0["self"],
                "server_children_s": s1["children"] - self.server0["children"],
                "client_s": c1 - self.client0, "live_children": s1["live_children"]}


# ---------------------------------------------------------------------- numbers
def pct(xs: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of the values, None when there are none."""
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    return xs[min(len(xs) - 1, max(0, math.ceil(q / 100 * len(xs)) - 1))]


def ms(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(x * 1000, 1)


def latency_ms(seconds: list[float]) -> dict:
    return {"n": len(seconds), "p50": ms(pct(seconds, 50)), "p95": ms(pct(seconds, 95)),
            "max": ms(max(seconds) if seconds else None)}


def error_kind(r) -> str | None:
    """None for a good result, else what went wrong: exception (shown by the script), timeout,
    disconnect, media (an image GET failed) or the status."""
    if r.status == "ok" and not r.exceptions:
        return None
    if r.status == "exception":
        return "exception"
    if r.status == "closed":
        return "disconnect"
    if r.status in ("timeout", "compile_error"):
        return r.status
    if any(e.startswith("client: GET") for e in r.exceptions):
        return "media"
    return r.status if r.status != "ok" else "client"
