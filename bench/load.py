"""Load benchmark: K simulated browser tabs on one server of the app (or on replicas behind the shipped nginx),
over Streamlit's websocket protocol from this one light process (labkit/stclient); prints one JSON object.

    python bench/load.py --sessions 5                        # one K
    python bench/load.py --sessions 1,5,10,20,30             # a sweep: the largest K with p95 <= 300 ms
                                                             # (and no errors), overall and per page
    python bench/load.py --sessions 10 --training            # while another tab trains a model
    python bench/load.py --sessions 10 --watcher auto --post-gc true   # the server settings under test
    python bench/load.py --sessions 30 --front nginx         # as a class reaches it: deploy/nginx.conf in front
                                                             # of 2 replicas as deploy/replicas.sh 2 starts them

For each K a fresh server is started (bench/loadkit.py: as ``./run.sh app`` starts it, with a
fresh temporary runs folder), then:

1. warm-up (not measured): one tab opens each chosen page and does one interaction there, so
   the first tab does not pay for imports and model loads (on each replica, directly); then 2 s
   idle give the server's background CPU (``server_idle_cpu_ms_per_s``).
2. with ``--training``: one more tab opens Train, presses "Quick demo settings", sets the time
   budget to cover the phase (and epochs to 1000), presses Start, and keeps polling its progress
   fragment once per interval like the browser's timer (the job's heartbeat) until the end;
   the server CPU of those polls is in the phase's server CPU (``training.polls`` counts them).
3. K tabs open, each at a random moment in the first ``--ramp`` (2) s: Home, then one page
   (round robin over ``--page``); ``open_ms`` is Home + page, each to its script_finished.
4. measured phase: every tab does one interaction of its page every 2-4 s (``--think``; the
   next send is 2-4 s after the previous send, or at once when that one took longer), until it
   has done ``--interactions`` or ``--duration`` seconds have passed. Latency: send -> the
   script_finished that ends the run (client wall clock); ``media_ms``: send -> the last new
   picture fetched. Server CPU (the process itself, and its children separately) and this
   client's CPU are read before and after this phase only, and divided by the interactions.

Interactions (labkit/stclient/vaelab.py): generate = "New samples"; sliders = a latent
slider's release (the components-v2 panel's committed value); map = a click on a point of the
latent map (a plotly selection); recon = a change of order, count or test image.
Errors: exception (shown by the script), timeout (``--timeout``), disconnect, media (a picture
GET failed), client (the page lacked what the interaction needs); behind nginx also limited (an
answer 429: over a limit of deploy/nginx.conf), refused (the websocket upgrade answered another
status) and http (a preflight GET not 200).

``--front nginx`` (bench/loadkit.py ``serving``): a fresh nginx with deploy/nginx.conf's limits for each K, in front
of ``--replicas`` (2) app servers as deploy/replicas.sh starts them. Each tab connects to
``https://127.0.0.1:PORT`` trusting the throwaway certificate (as a person accepts it), sends the login
(Authorization: Basic) with every request and the websocket upgrade, and keeps nginx's sticky cookie; its
User-Agent names it in nginx's access log. Server CPU and memory are summed over the replicas (each one's
share in ``server_cpu_share_by_replica``); ``nginx`` reports nginx's own CPU (master and workers), its answers
by status, the 429s and "limiting" lines of its error log, and the replica each tab reached
(``sessions_by_replica``; a tab seen on two replicas would mean the cookie did not pin it). One client address
(127.0.0.1) is what a class behind one NAT is to nginx's per-address limits. ``--media-connections`` caps a
tab's picture GETs in flight (a browser opens 6 per host; default: no cap, 6 behind nginx).
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
from collections import Counter

import _root  # noqa: F401, I001  (the repository root on sys.path: labkit, ui)
import loadkit
import streamlit
import websockets
from websockets.exceptions import InvalidStatus

import labkit.stclient as stclient
from labkit.stclient import vaelab


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", default="1,5,10,20,30", help="K, or a comma list of K to sweep")
    ap.add_argument("--interactions", type=int, default=20, help="per session")
    ap.add_argument("--duration", type=float, default=60.0, help="cap on the measured phase, seconds")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--page", default="generate,sliders,map,recon",
                    help=f"interactions to use, a comma list of {','.join(vaelab.INTERACTIONS)}")
    ap.add_argument("--think", default="2,4", help="seconds between a session's sends: LO,HI (uniform)")
    ap.add_argument("--training", action="store_true", help="one more tab trains a model during the phase")
    ap.add_argument("--train-seconds", type=float, default=0.0,
                    help="time budget of that run (default: the phase's duration + 90 s)")
    ap.add_argument("--ramp", type=float, default=2.0, help="the K tabs open at random moments in this many seconds")
    ap.add_argument("--timeout", type=float, default=30.0, help="per action, seconds")
    ap.add_argument("--p95-ms", type=float, default=300.0, help="the latency goal a sweep reports against")
    ap.add_argument("--stop-over", type=float, default=0.0,
                    help="stop a sweep after a K whose p95 exceeds this many ms (default: run every K)")
    ap.add_argument("--first-visit", action="store_true",
                    help="tabs come without the app's person cookie, as a browser's very first page does (default: "
                         "each tab brings one, as the browser has it from then on)")
    ap.add_argument("--media-connections", type=int, default=None,
                    help="a tab's picture GETs in flight at most (default: no cap directly, 6 behind nginx)")
    loadkit.add_server_args(ap)
    loadkit.add_front_args(ap)
    args = ap.parse_args(argv)
    args.k_list = [int(k) for k in args.sessions.split(",") if k.strip()]
    args.pages = [p.strip() for p in args.page.split(",") if p.strip()]
    bad = [p for p in args.pages if p not in vaelab.INTERACTIONS]
    if bad or not args.pages or not args.k_list or min(args.k_list) < 1:
        ap.error(f"--page takes {','.join(vaelab.INTERACTIONS)}; --sessions positive integers")
    args.think_lo, args.think_hi = (float(x) for x in args.think.split(","))
    if args.replicas < 0 or (args.media_connections or 0) < 0:
        ap.error("--replicas and --media-connections take whole numbers (0: the default)")
    args.replicas = loadkit.replica_count(args)
    if args.media_connections is None:
        args.media_connections = 6 if args.front == "nginx" else 0
    return args


class Tab:
    """One simulated user: its session, its page and what it measured."""

    def __init__(self, idx: int, page: str, rng: random.Random):
        self.idx, self.page, self.rng = idx, page, rng
        self.session: stclient.Session | None = None
        self.open_s: float | None = None
        self.records: list[dict] = []
        self.errors: list[tuple[str, str]] = []   # (kind, message)
        self.late = 0

    def note(self, r: stclient.RunResult, what: str) -> str | None:
        kind = loadkit.error_kind(r)
        if kind is not None:
            self.errors.append((kind, f"{what}: {r.status} {'; '.join(r.exceptions)[:300]}"))
        return kind

    async def open(self, url: str, delay: float, timeout: float, **kw) -> None:
        """``kw``: ``stclient.Session`` arguments (through nginx: TLS, the login, ...)."""
        await asyncio.sleep(delay)
        try:
            self.session, runs = await vaelab.open_app(url, self.page, timeout=timeout, **kw)
        except InvalidStatus as e:            # the upgrade was answered, but not with 101
            code = e.response.status_code
            self.errors.append(("limited" if code == 429 else "refused", f"open: websocket upgrade -> {code}"))
            return
        except (OSError, websockets.WebSocketException) as e:
            self.errors.append(("disconnect", f"open: {type(e).__name__}: {e}"))
            return
        for code in self.session.preflight_status:
            if code != 200:
                self.errors.append(("limited" if code == 429 else "http", f"open: preflight GET -> {code}"))
        bad = [self.note(r, "open") for r in runs]
        if len(runs) >= 2 and not any(bad):     # Home, the page, and the live decoder's first commit if any
            self.open_s = sum(r.seconds for r in runs)

    async def run(self, t_end: float, n: int, think: tuple[float, float]) -> None:
        s, act = self.session, vaelab.INTERACTIONS[self.page]
        if s is None or self.open_s is None:
            return
        due = time.perf_counter() + self.rng.uniform(0, think[1])
        for _ in range(n):
            if due >= t_end:
                return
            now = time.perf_counter()
            if due > now:
                await asyncio.sleep(due - now)
            elif now - due > 0.05:
                self.late += 1
            sent = time.perf_counter()
            due = sent + self.rng.uniform(*think)
            try:
                r = await act(s, self.rng)
            except (KeyError, ValueError, IndexError) as e:
                self.errors.append(("client", f"{self.page}: {type(e).__name__}: {e}"[:300]))
                continue
            kind = self.note(r, self.page)
            self.records.append({"page": self.page, "seconds": r.seconds, "media_seconds": r.media_seconds,
                                 "bytes": r.bytes, "error": kind})
            if kind == "disconnect":
                return


async def run_k(target: loadkit.Target, k: int, args) -> dict:
    pids, url, runs_dir = target.pids, target.url, target.runs
    notes = []
    for replica in target.replicas:
        notes += await vaelab.warm_up(replica, args.pages, args.timeout)
    idle = loadkit.Meter(pids)
    await asyncio.sleep(2.0)
    idle_cpu = idle.read()
    trainer = None
    if args.training:
        try:
            trainer = await vaelab.start_training(url, args.train_seconds or args.duration + 90, timeout=args.timeout,
                                                  **target.session_kw(TRAINER))
            notes += trainer.notes
        except (KeyError, ValueError) as e:
            notes.append(f"training could not be started: {e}")
    rng = random.Random(f"{args.seed}:{k}")
    first = rng.randrange(len(args.pages))
    tabs = [Tab(i, args.pages[(first + i) % len(args.pages)], random.Random(f"{args.seed}:{k}:{i}"))
            for i in range(k)]
    stop_polls = asyncio.Event()
    if trainer is not None:
        trainer.start_polling(stop_polls)
    mem0 = loadkit.memory_total(pids)
    await asyncio.gather(*[t.open(target.tab_url(t.idx), rng.uniform(0, args.ramp), args.timeout,
                                  max_connections=args.media_connections or None, **target.session_kw(agent(t.idx)),
                                  cookies=None if args.first_visit else vaelab.returning_browser(t.idx))
                           for t in tabs])

    meter = loadkit.Meter(pids)
    nginx = loadkit.Meter(target.nginx.pid) if target.nginx else None
    t_end = time.perf_counter() + args.duration
    await asyncio.gather(*[t.run(t_end, args.interactions, (args.think_lo, args.think_hi)) for t in tabs])
    cpu = meter.read()
    front_cpu = nginx.read() if nginx else None
    mem1 = loadkit.memory_total(pids)
    training = None
    if trainer is not None:
        stop_polls.set()
        await trainer.task
        training = trainer.report(runs_dir)
        training["children_cpu_share"] = round(cpu["server_children_s"] / cpu["wall_s"], 3)
        if not (training["live_panel"] and training["running_at_end"] and training["run_folders"]):
            notes.append("training: not verified all through the phase (live panel, still running at the end, "
                         "a run folder): see 'training'")
        await trainer.finish()
    await asyncio.gather(*[t.session.close() for t in tabs if t.session is not None])
    row = summarize(k, tabs, cpu, idle_cpu, mem0, mem1, training, notes)
    more = placement(target, tabs, cpu, front_cpu)
    if more.get("notes"):
        more["notes"] = row.get("notes", []) + more["notes"]
    row.update(more)
    return row


TRAINER = "vae-lab-load/trainer"


def agent(i: int) -> str:
    """The User-Agent of tab i: names it in nginx's access log."""
    return f"vae-lab-load/tab-{i}"


def placement(target: loadkit.Target, tabs: list[Tab], cpu: dict, front_cpu: dict | None) -> dict:
    """Several replicas: each one's CPU share and the tabs on each; behind nginx, what nginx did and cost."""
    if len(target.replicas) == 1 and target.front is None:
        return {}
    wall, n = cpu["wall_s"], sum(len(t.records) for t in tabs)
    ports = {r.pid: f"127.0.0.1:{r.port}" for r in target.replicas}
    out = {"server_cpu_share_by_replica": {ports[p]: round(s / wall, 3) for p, s in cpu["server_self_by_pid"].items()},
           "replica_env": {k: v for k, v in target.env.items() if k != "VAE_LAB_RUNS_DIR"}}
    if target.front is None:
        out["sessions_by_replica"] = dict(sorted(Counter(target.replica_of(t.idx) for t in tabs).items()))
        return out
    opened = sum(1 for t in tabs if t.session is not None)
    report = loadkit.front_report(target, {agent(t.idx): t.idx for t in tabs}, wait_for=opened)
    out["sessions_by_replica"] = report.pop("sessions_by_replica")
    nginx_s = front_cpu["server_self_s"] + front_cpu["server_children_s"]
    out["nginx"] = {"cpu_share": round(nginx_s / front_cpu["wall_s"], 3),
                    "cpu_ms_per_interaction": round(nginx_s * 1000 / n, 1) if n else None, **report}
    if report["refused_429"] or report["limiting_log_lines"]:
        out.setdefault("notes", []).append(
            f"nginx refused {report['refused_429']} requests over its per-address limits "
            f"({report['limiting_log_lines']} 'limiting' lines in its error log): every tab comes from 127.0.0.1, "
            "as a class behind one NAT does")
    if report["sessions_on_several_replicas"]:
        out.setdefault("notes", []).append(
            f"{report['sessions_on_several_replicas']} tabs reached more than one replica: the sticky cookie "
            "did not pin them")
    return out


def summarize(k, tabs, cpu, idle_cpu, mem0, mem1, training, notes) -> dict:
    recs = [r for t in tabs for r in t.records]
    good = [r["seconds"] for r in recs if r["error"] is None]
    n = len(recs)
    errors: dict[str, int] = {}
    for t in tabs:
        for kind, _ in t.errors:
            errors[kind] = errors.get(kind, 0) + 1
    per = (lambda x: round(x * 1000 / n, 1)) if n else (lambda x: None)
    by_page = {}
    for page in sorted({t.page for t in tabs}):
        by_page[page] = loadkit.latency_ms([r["seconds"] for r in recs if r["page"] == page and r["error"] is None])
    opens = [t.open_s for t in tabs if t.open_s is not None]
    out = {
        "sessions": k,
        "interactions": n,
        "interactions_per_s": round(n / cpu["wall_s"], 2) if cpu["wall_s"] else None,
        "latency_ms": loadkit.latency_ms(good),
        "latency_ms_by_page": by_page,
        "media_ms": loadkit.latency_ms([r["media_seconds"] for r in recs
                                        if r["error"] is None and r["media_seconds"] is not None]),
        "open_ms": {"n": len(opens), "p50": loadkit.ms(loadkit.pct(opens, 50)),
                    "p95": loadkit.ms(loadkit.pct(opens, 95))},
        "errors": sum(errors.values()),
        "errors_by_kind": errors,
        "error_samples": [m for t in tabs for _, m in t.errors][:5],
        "server_cpu_ms_per_interaction": per(cpu["server_self_s"]),
        "server_children_cpu_ms_per_interaction": per(cpu["server_children_s"]),
        "client_cpu_ms_per_interaction": per(cpu["client_s"]),
        "server_cpu_share": round(cpu["server_self_s"] / cpu["wall_s"], 3),
        "client_cpu_share": round(cpu["client_s"] / cpu["wall_s"], 3),
        "server_idle_cpu_ms_per_s": round(idle_cpu["server_self_s"] * 1000 / idle_cpu["wall_s"], 1),
        "phase_s": round(cpu["wall_s"], 1),
        "late_sends": sum(t.late for t in tabs),
        "server_rss_mb": {"before": mem0["rss_mb"], "after": mem1["rss_mb"]},
        "server_threads": {"before": mem0["threads"], "after": mem1["threads"]},
        "server_fds": {"before": mem0["fds"], "after": mem1["fds"]},
        "live_children_at_end": cpu["live_children"],
        "pages": {p: sum(1 for t in tabs if t.page == p) for p in sorted({t.page for t in tabs})},
    }
    if training is not None:
        out["training"] = training
    if notes:
        out["notes"] = notes
    return out


def table(rows: list[dict]) -> str:
    head = (f"{'K':>3} {'done':>5} {'p50':>7} {'p95':>7} {'max':>7} {'open50':>7} {'open95':>7} {'err':>4} "
            f"{'srv/int':>8} {'kids/int':>8} {'cli/int':>8} {'srv%':>5} {'cli%':>5} {'rss MB':>13}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lat, op = r["latency_ms"], r["open_ms"]
        lines.append(f"{r['sessions']:>3} {r['interactions']:>5} {lat['p50'] or '-':>7} {lat['p95'] or '-':>7} "
                     f"{lat['max'] or '-':>7} {op['p50'] or '-':>7} {op['p95'] or '-':>7} {r['errors']:>4} "
                     f"{r['server_cpu_ms_per_interaction'] or '-':>8} "
                     f"{r['server_children_cpu_ms_per_interaction'] or 0:>8} "
                     f"{r['client_cpu_ms_per_interaction'] or '-':>8} {r['server_cpu_share'] * 100:>5.0f} "
                     f"{r['client_cpu_share'] * 100:>5.0f} "
                     f"{r['server_rss_mb']['before']:>6}->{r['server_rss_mb']['after']:<6}")
    lines.append("latency ms: send -> script finished; */int: CPU ms per interaction (server process, its "
                 "children, this client); %: share of one core over the phase")
    return "\n".join(lines)


def largest_k(rows: list[dict], goal_ms: float, page: str | None = None) -> int | None:
    """The largest K whose p95 (overall, or of one page's interactions) met the goal without errors.
    A K over the goal below it is not skipped: the answer is the end of the first good run of Ks."""
    best = None
    for r in sorted(rows, key=lambda r: r["sessions"]):
        if page is not None and page not in r["latency_ms_by_page"]:
            continue  # no tab of this K had that page (K smaller than the number of pages)
        lat = r["latency_ms"] if page is None else r["latency_ms_by_page"][page]
        if lat.get("p95") is None or lat["p95"] > goal_ms or r["errors"]:
            break
        best = r["sessions"]
    return best


def main() -> None:
    args = parse_args()
    rows: list[dict] = []
    for k in args.k_list:
        print(f"K={k}: starting a server ...", file=sys.stderr)
        with loadkit.serving(args) as target:
            row = asyncio.run(run_k(target, k, args))
        rows.append(row)
        print(table([row]).splitlines()[2], file=sys.stderr)
        if "sessions_by_replica" in row:
            ng = row.get("nginx", {})
            print(f"K={k}: sessions by replica {row['sessions_by_replica']}"
                  + (f"; nginx {ng['cpu_share'] * 100:.0f}% of a core, {ng['refused_429']} answers 429, "
                     f"{ng['sessions_on_several_replicas']} tabs on several replicas" if ng else ""), file=sys.stderr)
        p95 = row["latency_ms"]["p95"]
        if args.stop_over and (p95 is None or p95 > args.stop_over) and k != args.k_list[-1]:
            print(f"K={k}: p95 {p95} ms over --stop-over {args.stop_over:g} ms: stopping the sweep", file=sys.stderr)
            break
    print(table(rows), file=sys.stderr)
    out = {
        "max_sessions_within_p95": largest_k(rows, args.p95_ms),
        "max_sessions_within_p95_by_page": {p: largest_k(rows, args.p95_ms, p) for p in args.pages},
        "p95_goal_ms": args.p95_ms,
        "runs": rows,
        "settings": {"sessions": args.k_list, "interactions": args.interactions, "duration_s": args.duration,
                     "think_s": [args.think_lo, args.think_hi], "pages": args.pages, "seed": args.seed,
                     "training": args.training, "timeout_s": args.timeout, "watcher": args.watcher,
                     "post_gc": args.post_gc, "server_flags": loadkit.server_flags(args), "front": args.front,
                     "replicas": args.replicas, "media_connections": args.media_connections or None,
                     "person_cookie": not args.first_visit},
        "streamlit": streamlit.__version__,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
