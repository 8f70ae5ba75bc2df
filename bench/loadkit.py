"""Shared by bench/load.py and bench/soak.py: the server under test, started the way
``./run.sh app`` starts it (or, for bench/load.py, replicas as ``deploy/replicas.sh N`` starts them, with the
shipped nginx in front or not), and what it costs, read from /proc.

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

Front options (``add_front_args``, bench/load.py): ``--front direct|nginx`` and ``--replicas N``
(``serving``). ``direct`` with one replica is the server above. Otherwise N app servers get what
``deploy/replicas.sh N`` gives them: deploy/serve.env's settings, one shared runs folder, and
``VAE_LAB_MAX_JOBS`` = the cores divided among the replicas (at least 1; this process's own value if set).
``nginx``: deploy/nginx.conf unchanged but for its ports and upstream list (labkit/nginxfront.py: a throwaway
self-signed certificate, a login) in front of them on 127.0.0.1; a tab then connects over https trusting that
certificate, sends the login with every request and keeps nginx's sticky cookie (``Target.session_kw``).
``direct`` with N > 1: tab i talks to replica i mod N itself (what the replicas do without nginx's cost).

CPU is read from /proc/PID/stat (utime+stime, fields 14-15) for the server process itself (all
its threads), and separately for its children: live descendants (their own time and the time of
children they reaped) plus the children the server reaped (cutime+cstime, fields 16-17).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import os
import ssl
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import _root  # noqa: F401, I001  (the repository root on sys.path: labkit, ui)

from labkit import nginxfront as nf
from labkit.appserver import AppURL, app_server

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


def add_front_args(ap: argparse.ArgumentParser) -> None:
    g = ap.add_argument_group("what the tabs connect to (default: one server, directly)")
    g.add_argument("--front", choices=["direct", "nginx"], default="direct",
                   help="nginx: the shipped deploy/nginx.conf (TLS, login, limits, sticky cookie) in front of the "
                        "replicas, on 127.0.0.1")
    g.add_argument("--replicas", type=int, default=0,
                   help="app servers, as deploy/replicas.sh N starts them (default: 1 direct, 2 behind nginx)")


def replica_count(args: argparse.Namespace) -> int:
    return getattr(args, "replicas", 0) or (2 if getattr(args, "front", "direct") == "nginx" else 1)


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


NO_CLASS_CAPS = {"VAE_LAB_MAX_EPOCHS": "0", "VAE_LAB_MAX_TIME_BUDGET_S": "0"}   # the training tab trains all phase


def replicas_env(n: int, runs: Path) -> dict[str, str]:
    """What ``deploy/replicas.sh N`` gives each replica on top of the caller's environment."""
    per = max(1, len(os.sched_getaffinity(0)) // n)
    return {**nf.serve_env(), "VAE_LAB_MAX_JOBS": os.environ.get("VAE_LAB_MAX_JOBS", str(per)),
            "VAE_LAB_RUNS_DIR": str(runs)}


@dataclasses.dataclass
class Target:
    """What the tabs talk to: the replicas (each an ``AppURL``: .pid, .port), and nginx in front of them or not."""
    replicas: list[AppURL]
    runs: Path
    env: dict[str, str]                       # what each replica got on top of this process's environment
    front: nf.Front | None = None
    nginx: subprocess.Popen | None = None
    tls: ssl.SSLContext | None = None         # trusts exactly the throwaway certificate (and checks its name)

    @property
    def pids(self) -> list[int]:
        return [r.pid for r in self.replicas]

    @property
    def url(self) -> str:
        """The address a class opens: nginx's https port, or the (first) replica."""
        return f"https://127.0.0.1:{self.front.https}" if self.front else self.replicas[0]

    def tab_url(self, i: int) -> str:
        return self.url if self.front else self.replicas[i % len(self.replicas)]

    def replica_of(self, i: int) -> str:
        """Direct: which replica tab i talks to (behind nginx, its log tells: ``front_report``)."""
        return f"127.0.0.1:{self.replicas[i % len(self.replicas)].port}"

    def session_kw(self, agent: str | None = None) -> dict:
        """``stclient.Session`` arguments for a tab: through nginx, its TLS settings and the login (``agent``, a
        User-Agent that names the tab in nginx's access log)."""
        if self.front is None:
            return {}
        headers = {"Authorization": nf.basic_auth(), **({"User-Agent": agent} if agent else {})}
        return {"ssl_context": self.tls, "headers": headers}


@contextlib.contextmanager
def serving(args: argparse.Namespace, env: dict | None = None) -> Iterator[Target]:
    """The ``Target`` ``--front`` and ``--replicas`` ask for, with a fresh runs folder; all stopped on exit."""
    n = replica_count(args)
    if args.front == "direct" and n == 1:
        with server(args, env) as (url, runs):
            yield Target([url], runs, {**NO_CLASS_CAPS, **(env or {})})
        return
    if args.front == "nginx" and nf.missing():
        raise SystemExit(f"--front nginx: {nf.missing()}")
    with tempfile.TemporaryDirectory(prefix="vae-lab-load-") as tmp, contextlib.ExitStack() as stack:
        runs = Path(tmp) / "runs"
        runs.mkdir()
        full = {**replicas_env(n, runs), **NO_CLASS_CAPS, **(env or {})}
        apps = [stack.enter_context(app_server(env=full, extra_args=server_flags(args), timeout=args.startup_timeout,
                                               root=args.app_root)) for _ in range(n)]
        target = Target(apps, runs, full)
        if args.front == "nginx":
            target.front = nf.render(Path(tmp) / "deploy", [a.port for a in apps])
            target.nginx = stack.enter_context(nf.serve(target.front))
            target.tls = target.front.tls_context()
        yield target


def front_report(target: Target, agents: dict[str, int], wait_for: int = 0, timeout: float = 10.0) -> dict:
    """What nginx's logs say: its answers by status, the requests it refused over a limit (429, and its "limiting"
    error lines), and, per tab (``agents``: User-Agent -> tab), the replicas the tab's requests reached. Waits up to
    ``timeout`` s for ``wait_for`` websocket lines of those tabs (nginx logs a websocket when it closes)."""
    deadline = time.monotonic() + timeout
    while True:
        reqs = target.front.requests()
        streams = sum(1 for r in reqs if r["agent"] in agents and "/_stcore/stream" in r["request"])
        if streams >= wait_for or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    reached: dict[int, set[str]] = {}
    for r in reqs:
        if r["agent"] in agents and r["upstream"] != "-":
            reached.setdefault(agents[r["agent"]], set()).update(u.strip() for u in r["upstream"].split(","))
    limiting = [ln for ln in target.front.error_log().splitlines() if "limiting" in ln]
    status = Counter(r["status"] for r in reqs)
    return {"requests": len(reqs), "status_counts": dict(sorted(status.items())),
            "refused_429": status.get("429", 0), "limiting_log_lines": len(limiting),
            "limiting_samples": [ln[:240] for ln in limiting[:3]],
            "sessions_by_replica": dict(sorted(Counter(next(iter(v)) for v in reached.values()
                                                       if len(v) == 1).items())),
            "sessions_on_several_replicas": sum(1 for v in reached.values() if len(v) > 1),
            "sessions_not_in_log": len(set(agents.values()) - set(reached)),
            "websockets_logged": streams}


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


def memory_total(pids: list[int]) -> dict:
    """``memory`` summed over several servers."""
    each = [memory(p) for p in pids]
    return {k: round(sum(m[k] for m in each), 1) if k == "rss_mb" else sum(m[k] for m in each) for k in each[0]}


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
    """CPU of the server (self, children; several servers: summed, and each one's own in ``server_self_by_pid``)
    and of this client process over a phase."""

    def __init__(self, pid: int | list[int]):
        self.pids = [pid] if isinstance(pid, int) else list(pid)
        self.t0 = time.perf_counter()
        self.server0 = [cpu_seconds(p) for p in self.pids]
        self.client0 = time.process_time()

    def read(self) -> dict:
        s1, c1 = [cpu_seconds(p) for p in self.pids], time.process_time()
        own = [b["self"] - a["self"] for a, b in zip(self.server0, s1)]
        return {"wall_s": time.perf_counter() - self.t0,
                "server_self_s": sum(own), "server_self_by_pid": dict(zip(self.pids, own)),
                "server_children_s": sum(b["children"] - a["children"] for a, b in zip(self.server0, s1)),
                "client_s": c1 - self.client0, "live_children": sum(b["live_children"] for b in s1)}


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
    if any(e.startswith("client: GET") and e.endswith("-> 429") for e in r.exceptions):
        return "limited"      # a proxy's limit refused a picture
    if any(e.startswith("client: GET") for e in r.exceptions):
        return "media"
    return r.status if r.status != "ok" else "client"
