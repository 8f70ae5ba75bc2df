"""Class attacks: what a student could try on a teacher's server of the app (issue 20, "Safe to give to a class"),
each against a server this script starts itself on 127.0.0.1, each bounded by a timeout, while K load sessions
(bench/load.py's simulated tabs) click alongside. Prints a markdown table (stderr) and one JSON object (stdout).

    python bench/class_attacks.py                                   # every attack, K = 20 sessions alongside
    python bench/class_attacks.py --only query,json --sessions 2    # some attacks, a light load (while developing)
    python bench/class_attacks.py --serve-env                       # served with deploy/serve.env's settings
    python bench/class_attacks.py --front nginx --replicas 2        # as a teacher serves a room (below)
    python bench/class_attacks.py --list                            # the attacks, by name

The server is the app as ``./run.sh app`` serves it, with a fresh runs folder, every class limit at its default and a
teacher's password (bench/attackkit.py, ``attack_server``); it and every training process it started are stopped on
the way out, whatever happened. Each attack tab talks to it as Chromium does (``attackkit.Tab``): over Streamlit's
websocket, as a person (the ``vaelab_person`` cookie: two people are two tokens), uploading through Streamlit's upload
endpoint with the XSRF cookie and header, and sending the widget ids of buttons it was never shown (forged clicks).

``--front nginx --replicas N`` (bench/load.py's flags): served as a teacher serves a room, ``deploy/replicas.sh N``'s
servers (deploy/serve.env's settings, one runs folder, VAE_LAB_MAX_JOBS the cores divided among them; the limits,
password and heartbeat as above) behind the shipped deploy/nginx.conf (labkit/nginxfront.py: a throwaway
certificate, a login). Every attack tab, health check and load session then goes through nginx over TLS with the
login. The load sessions keep the sticky cookie nginx gives them; an attack tab sets its own (a student can), so that
a person's tabs and the people alternate between replicas (``attackcases.Ctx.place``): B meets A's job from the
other replica, A's tabs pressing at once are on different ones. The JSON adds nginx's answers by status (429: over
its limits), the replicas the tabs reached (from its access log) and attacks that could not apply behind it (none
so far: an attack that could not would be listed with its reason, not dropped).

Columns (one row per attack; the JSON has each row's details):

- attack: what was tried (the number is the issue's list item, 5 is several rows; 13 is not in the issue's list).
- outcome: ``refused`` (the app said no in one line and did nothing), ``contained`` (it took part of it and bounded
  the harm: a run stored with its data marked unavailable, bytes received and dropped, a link value ignored),
  ``succeeded`` (the harm happened: a file outside the app read, another's job stopped, two processes, memory grown by
  a tenth of what was claimed, a traceback shown). ``timeout``, ``error`` and ``skipped`` (an earlier attack it builds
  on failed) are failures of the run, not passes.
- answer: the one line the page showed (or the HTTP status the server answered).
- RSS MB: the server process's resident memory (VmRSS) before the attack -> its peak during the attack (sampled
  every 50 ms) -> after it (its tabs closed). The JSON adds the kernel's lifetime peak (VmHWM) before and after.
  Behind nginx: the replicas' summed (the peak: of the sum at each sample; the JSON adds each replica's own peak).
- kids MB: the peak resident memory of the server's child processes (training jobs; of every replica) during the
  attack, summed (sampled every second).
- server CPU: the server process's CPU during the attack, in cores (load sessions and attack tabs together; 1.0 is
  all its one interpreter can give; behind nginx the replicas' summed, up to N, each one's in the JSON). Near 1.0
  the server was the bottleneck; well below 1.0 with a high load p95, the machine was (other processes on its cores).
- healthy: afterwards ``/_stcore/health`` answers 200 and a new tab renders Home without an exception (behind
  nginx: through it, on every replica).
- load p95: the K load sessions' p95 latency (send -> script finished, ms) while this attack ran.

Below the table: the load sessions' p95 over all the attacks (the goal: <= 300 ms), beside their p95 alone in the
``--baseline`` seconds before the first attack, and their errors; every page shown to an attack tab searched for a
traceback (an exception element with its type or stack), Python's "Traceback" text or a server path (the repository,
the runs folder); and this client's CPU share (the load sessions and the attack tabs share its one event loop).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import _root  # noqa: F401, I001  (the repository root on sys.path: labkit, ui)
import attackcases as cases
import attackfiles as hostile
import attackjobs as jobs
import attackkit as kit
import load
import loadkit
import streamlit
import websockets

from labkit import nginxfront as nf
from labkit.stclient import vaelab


@dataclass(frozen=True)
class Attack:
    name: str
    title: str
    run: object
    timeout: float
    not_behind_front: str = ""   # why it cannot apply behind nginx, if it cannot: its row says so (none today)


ATTACKS = [  # in this order: the job attacks build on each other (A's job, then interrupted, then resumed)
    Attack("query", "11. query strings: ?run=../.., ?run=/path, ?vs=, unknown page, huge values",
           cases.query_strings, 120),
    Attack("outside", "1. run upload whose config.json names data outside (an .npz, /etc/passwd)",
           cases.outside_data, 240),
    Attack("budget", "2. 2 KB run upload: hidden 300, 40, 8 layers of 4096, 8 bytes of weights", cases.budget, 120),
    Attack("json", "3. config.json nested 32k deep; a 5,000-digit integer; lr 1e400", cases.hostile_json, 120),
    Attack("tracked", "10. a tracked run (vae.track, ONNX programs) uploaded", cases.tracked, 180),
    Attack("size", "9. run upload over 200 MB: one file of 201 MB; two of 105 MB", cases.oversize, 240),
    Attack("pixels", "8. data zip of 20 PNGs of 4096² (each within the per-image cap)", cases.pixels, 180),
    Attack("form", "4. Train form: epochs 1000, time budget 7 days, latent 500", cases.form_numbers, 120),
    Attack("width", "4. Train form: hidden 4096 × 40 and × 8, Start pressed", cases.form_width, 120),
    Attack("stop", "5. B stops A's job: no Stop shown; forged clicks on A's and the teacher's Stop",
           jobs.others_stop, 240),
    Attack("watcher", "5. B's watcher tab closes: A's job keeps training", jobs.watcher_leaves, 60),
    Attack("resume", "5. B resumes A's interrupted run (forged Resume)", jobs.others_resume, 120),
    Attack("delete", "5. B deletes A's run (forged Delete)", jobs.others_delete, 60),
    Attack("two-resumes", "6. A presses Resume in two tabs at once", jobs.two_resumes, 180),
    Attack("tabs", "7. A presses Start in three tabs at once", jobs.three_tabs, 180),
    Attack("widgets", "13. forged widget values: component state not JSON, a point id '../../etc', options not offered",
           cases.forged_values, 180),
    Attack("errors", "12. hostile data files through the Train upload (labkit/hostile_files.py)",
           cases.error_paths, 180),
    Attack("leaks", "12. every page the attack tabs saw: no traceback, no server path", cases.no_leaks, 10),
]

GOAL_MS = 300.0
PASSING = ("refused", "contained")
NOT_APPLICABLE = "not applicable"


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=20, help="K load sessions clicking alongside (0: none)")
    ap.add_argument("--page", default="generate,sliders,map,recon", help="their interactions (bench/load.py's)")
    ap.add_argument("--think", default="2,4", help="seconds between a load session's sends: LO,HI")
    ap.add_argument("--baseline", type=float, default=20.0, help="seconds of load alone before the first attack")
    ap.add_argument("--only", default="", help="a comma list of attack names (default: all; --list shows them)")
    ap.add_argument("--timeout-scale", type=float, default=1.0, help="multiplies every attack's timeout")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--serve-env", action="store_true",
                    help="serve with deploy/serve.env's settings (as deploy/replicas.sh serves a room: no error "
                         "details in the browser) instead of as ./run.sh app")
    ap.add_argument("--list", action="store_true", help="list the attacks and exit")
    loadkit.add_front_args(ap)
    args = ap.parse_args(argv)
    args.replicas = loadkit.replica_count(args)
    if args.replicas < 1 or (args.front == "direct" and args.replicas != 1):
        ap.error("--replicas: 1 direct (the one server), or any number behind --front nginx")
    args.pages = [p.strip() for p in args.page.split(",") if p.strip()]
    args.think_lo, args.think_hi = (float(x) for x in args.think.split(","))
    names = {a.name for a in ATTACKS}
    args.names = [n.strip() for n in args.only.split(",") if n.strip()] or [a.name for a in ATTACKS]
    if set(args.names) - names or set(args.pages) - set(vaelab.INTERACTIONS):
        ap.error(f"--only takes {','.join(sorted(names))}; --page {','.join(vaelab.INTERACTIONS)}")
    return args


# ------------------------------------------------------------------------------------------------ the load alongside
class LoadTab(load.Tab):
    """bench/load.py's simulated tab, noting when each interaction ended (to tell which attack it ran beside)."""

    def __init__(self, *a):
        super().__init__(*a)
        self.ends: list[float] = []

    def note(self, r, what: str):
        if what == self.page:           # an interaction (not the opening): one record follows, in the same order
            self.ends.append(time.perf_counter())
        return super().note(r, what)


class Load:
    """K tabs (Home, then their page) each doing one interaction every LO-HI s until ``stop``."""

    def __init__(self, served: kit.Served, args: argparse.Namespace):
        self.served, self.args, self.tasks = served, args, []
        rng = random.Random(args.seed)
        self.tabs = [LoadTab(i, args.pages[i % len(args.pages)], random.Random(f"{args.seed}:{i}"))
                     for i in range(args.sessions)]
        self.delays = [rng.uniform(0, 2.0) for _ in self.tabs]

    async def start(self) -> None:
        media = {"max_connections": 6} if self.served.front else {}       # as a browser, behind nginx (bench/load.py)
        await asyncio.gather(*(t.open(self.served.url, d, 60.0, **media,
                                      **self.served.tab_kw(agent=f"{LOAD_AGENT}{t.idx}"))
                               for t, d in zip(self.tabs, self.delays)))
        think = (self.args.think_lo, self.args.think_hi)
        self.tasks = [asyncio.create_task(t.run(math.inf, 10**9, think)) for t in self.tabs]

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await asyncio.gather(*(t.session.close() for t in self.tabs if t.session is not None), return_exceptions=True)

    def good(self, t0: float = -math.inf, t1: float = math.inf) -> list[float]:
        return [r["seconds"] for t in self.tabs for r, end in zip(t.records, t.ends)
                if r["error"] is None and t0 <= end <= t1]

    def summary(self, attacks_from: float) -> dict:
        """Over the attacks (from ``attacks_from``, a perf_counter time), and alone before them (the baseline)."""
        errors: dict[str, int] = {}
        for t in self.tabs:
            for kind, _ in t.errors:
                errors[kind] = errors.get(kind, 0) + 1
        lat = loadkit.latency_ms(self.good(attacks_from))
        return {"sessions": len(self.tabs), "opened": sum(t.open_s is not None for t in self.tabs),
                "interactions": sum(len(t.records) for t in self.tabs), "latency_ms": lat, "p95_goal_ms": GOAL_MS,
                "latency_ms_alone_before": loadkit.latency_ms(self.good(-math.inf, attacks_from)),
                "within_goal": lat["p95"] is not None and lat["p95"] <= GOAL_MS, "errors": sum(errors.values()),
                "errors_by_kind": errors, "error_samples": [m for t in self.tabs for _, m in t.errors][:5]}


LOAD_AGENT = "vae-lab-load/tab-"


# ------------------------------------------------------------------------------------------------ one attack, measured
async def healthy(served: kit.Served) -> bool:
    """/_stcore/health answers 200 and a new tab renders Home (its title) without an exception; behind nginx, through
    it, on each replica."""
    for i in range(len(served.replicas)):
        tab = kit.Tab(served.url, **served.tab_kw(i, f"vae-lab-attacks/health-{i}"))
        status, _, _ = await tab.request("GET", "/_stcore/health")
        try:
            r = await tab.open()
            if not (status == 200 and r.ok and "VAE Lab" in tab.texts()):
                return False
        except (OSError, asyncio.TimeoutError, websockets.WebSocketException):
            return False
        finally:
            await tab.close()
    return True


def share(cpu: dict) -> float:
    """The server process's CPU over a phase (the replicas': summed), in cores (1.0: one core all along)."""
    return round(cpu["server_self_s"] / cpu["wall_s"], 2) if cpu["wall_s"] else 0.0


async def run_one(attack: Attack, ctx: cases.Ctx, load_: Load | None, scale: float) -> dict:
    pid, placed = ctx.served.pids, len(ctx.placed)
    kept = [f"{name} -> replica {t.replica}" for name, t in ctx.kept.items()]     # earlier attacks' tabs, still open
    t0, before, meter = time.perf_counter(), kit.memory(pid), loadkit.Meter(pid)
    ctx.peaks = kit.Peaks(pid)
    try:
        row = await asyncio.wait_for(attack.run(ctx), attack.timeout * scale)
    except asyncio.TimeoutError:
        row = cases.Row("timeout", f"not done within {attack.timeout * scale:g} s")
    except cases.Skip as e:
        row = cases.Row("skipped", str(e))
    except Exception as e:  # a failure of the bench or of the app: reported in the row, the next attack runs
        row = cases.Row("error", f"{type(e).__name__}: {e}"[:300])
    finally:
        await ctx.close_tabs()
    peaks, ctx.peaks = ctx.peaks.stop(), None
    t1, after, cpu = time.perf_counter(), kit.memory(pid), meter.read()
    growth = round(peaks["peak_mb"] - before["rss_mb"], 1) if before["rss_mb"] else None
    if row.peak_limit_mb is not None and growth is not None and growth > row.peak_limit_mb:
        row.outcome, row.answer = "succeeded", f"peak grew {growth:g} MB (limit {row.peak_limit_mb:g}): {row.answer}"
    lat = loadkit.latency_ms(load_.good(t0, t1)) if load_ is not None else None
    out = {"attack": attack.title, "name": attack.name, "outcome": row.outcome, "answer": " ".join(row.answer.split()),
           "rss_mb": {"before": before["rss_mb"], "peak": peaks["peak_mb"], "after": after["rss_mb"],
                      "peak_growth": growth, "peak_limit": row.peak_limit_mb,
                      "lifetime_peak_before": before["hwm_mb"], "lifetime_peak_after": after["hwm_mb"]},
           "children_peak_mb": peaks["children_peak_mb"], "server_cpu_share": share(cpu),
           "server_children_cpu_s": round(cpu["server_children_s"], 1), "healthy": await healthy(ctx.served),
           "load_latency_ms": lat, "seconds": round(t1 - t0, 1), "detail": row.detail}
    if ctx.served.front is not None:
        out["rss_mb"]["peak_by_replica"] = peaks.get("peak_mb_by_replica", [peaks["peak_mb"]])
        out["server_cpu_share_by_replica"] = [round(cpu["server_self_by_pid"][p] / cpu["wall_s"], 2) for p in pid]
        out["tabs"] = [f"{p['who']} {p['page']} -> replica {p['replica']}" for p in ctx.placed[placed:]]
        out["tabs_kept_open"] = kept                  # the job attacks act through them (A1, A2, B, B2)
    return out


# ------------------------------------------------------------------------------------------------ all of them
async def run_all(served: kit.Served, tracker, args) -> dict:
    runs, scratch = served.runs, served.scratch
    leaks = kit.Leaks([str(runs.parent), str(kit.ROOT), "site-packages", "Traceback (most recent", 'File "/'])
    ctx = cases.Ctx(served.url, runs, scratch, leaks, served=served)
    ctx.state.update(secret=hostile.secret_npz(scratch / "someone-else"), pixel_zip=hostile.pixel_zip(),
                     canary=hostile.canary_run(scratch / "canary-run"), tracked=tracker,
                     atime_works=hostile.atime_works(scratch))
    notes = []
    for i in range(len(served.replicas)):             # first imports and model loads: not charged to an attack
        notes += await vaelab.warm_up(served.url, args.pages, **served.tab_kw(i, f"vae-lab-attacks/warm-up-{i}"))
    load_ = Load(served, args) if args.sessions else None
    cpu0, t0 = time.process_time(), time.perf_counter()
    alone, front_cpu = None, loadkit.Meter(served.nginx.pid) if served.nginx else None
    if load_ is not None:
        await load_.start()
        meter = loadkit.Meter(served.pids)
        await asyncio.sleep(args.baseline)                # the load alone first: its p95 without any attack
        alone = share(meter.read())
    rows = []
    try:
        for attack in [a for a in ATTACKS if a.name in args.names]:
            print(f"{attack.name}: {attack.title} ...", file=sys.stderr)
            if served.front is not None and attack.not_behind_front:
                rows.append({"attack": attack.title, "name": attack.name, "outcome": NOT_APPLICABLE,
                             "answer": attack.not_behind_front, "rss_mb": {}, "healthy": True, "load_latency_ms": None})
            else:
                rows.append(await run_one(attack, ctx, load_, args.timeout_scale))
            print(f"  {rows[-1]['outcome']}: {rows[-1]['answer'][:150]}", file=sys.stderr)
    finally:
        await ctx.close_tabs(kept=True)
        await cases.end_jobs(runs)
        if load_ is not None:
            await load_.stop()
    summary = load_.summary(t0 + args.baseline) if load_ else None
    if summary:
        summary["server_cpu_share_alone_before"] = alone
    out = {"rows": rows, "load": summary, "notes": notes,
           "client_cpu_share": round((time.process_time() - cpu0) / (time.perf_counter() - t0), 3),
           "access_times_tell_reads": ctx.state["atime_works"],
           "leaks": {"pages": leaks.pages, "found": sorted(set(leaks.found))[:20]},
           "server_rss_mb_end": kit.memory(served.pids)["rss_mb"], "healthy_at_end": await healthy(served)}
    if front_cpu is not None:
        cpu = front_cpu.read()
        await asyncio.sleep(1.0)                          # nginx logs a websocket once it has closed
        out["front"] = {"nginx_cpu_share": round((cpu["server_self_s"] + cpu["server_children_s"]) / cpu["wall_s"], 2),
                        **front_report(served, ctx, load_)}
    return out


def sticky_values(served: kit.Served, tries: int = 64) -> list[str]:
    """For each replica, a value of nginx's sticky cookie (deploy/nginx.conf: ``hash $sticky_key consistent``) that
    reaches it, found as nginx places them: a health check with each candidate, its replica read from the log."""
    found: dict[int, str] = {}
    for start in range(0, tries, 8):
        for i in range(start, start + 8):
            nf.get(f"{served.url}/_stcore/health", context=served.tls,
                   headers={"Cookie": f"{kit.STICKY_COOKIE}=attacks-{i}", "User-Agent": f"vae-lab-attacks/probe-{i}"})
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:          # nginx logs a request once it has answered it
            seen = [r for r in served.front.requests() if r["agent"].startswith("vae-lab-attacks/probe-")]
            if len(seen) >= start + 8:
                break
            time.sleep(0.05)
        for r in seen:
            at = served.replica_at(r["upstream"])
            if at is not None:
                found.setdefault(at, "attacks-" + r["agent"].rsplit("-", 1)[1])
        if len(found) == len(served.replicas):
            return [found[i] for i in range(len(served.replicas))]
    raise RuntimeError(f"no sticky cookie value found for every replica in {tries} tries: {found}")


def front_report(served: kit.Served, ctx: cases.Ctx, load_: Load | None) -> dict:
    """What nginx's access and error logs say: its answers by status, what it refused over a limit (429, "limiting"
    lines), and the replicas each tab reached: every attack tab only the one it was placed on, the load sessions
    where nginx put them."""
    reqs, reached = served.front.requests(), {}
    for r in reqs:
        if r["upstream"] != "-":
            reached.setdefault(r["agent"], set()).update(served.replica_at(u) for u in r["upstream"].split(","))
    off = [f"{p['agent']} ({p['page']}): placed on {p['replica']}, reached {sorted(reached.get(p['agent'], ()))}"
           for p in ctx.placed if reached.get(p["agent"]) != {p["replica"]}]
    loads = [reached.get(f"{LOAD_AGENT}{t.idx}", set()) for t in (load_.tabs if load_ else [])]
    status = Counter(r["status"] for r in reqs)
    limiting = [ln for ln in served.front.error_log().splitlines() if "limiting" in ln]
    return {"replicas": [f"127.0.0.1:{r.port}" for r in served.replicas], "replica_env": served.env,
            "sticky_cookie_values": served.sticky, "requests": len(reqs), "status_counts": dict(sorted(status.items())),
            "refused_429": status.get("429", 0), "limiting_log_lines": len(limiting), "limiting_samples": limiting[:3],
            "attack_tabs_by_replica": dict(sorted(Counter(p["replica"] for p in ctx.placed).items())),
            "attack_tabs_off_their_replica": off[:10], "attack_tabs_off_count": len(off),
            "load_sessions_by_replica": dict(sorted(Counter(next(iter(v)) for v in loads if len(v) == 1).items())),
            "load_sessions_on_several_replicas": sum(len(v) > 1 for v in loads)}


def tracked_run(folder: Path):
    """The tracked run's folder once ``vae.track`` has written it (started at the beginning, in its own process)."""
    proc = hostile.start_tracked_run(folder)

    async def ready() -> Path:
        code = await asyncio.to_thread(proc.wait, 300)
        if code != 0:
            said = (folder.parent / "track.log").read_text(errors="replace").strip().splitlines()
            raise RuntimeError(f"vae.track exited with {code}: {said[-1] if said else 'no output'}")
        return folder
    return proc, ready


def table(out: dict) -> str:
    lines = ["| attack | outcome | answer | RSS MB before → peak → after | kids MB | server CPU | healthy | "
             "load p95 ms |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in out["rows"]:
        m, lat = r["rss_mb"], r["load_latency_ms"] or {}
        answer = r["answer"] if len(r["answer"]) <= 140 else r["answer"][:139] + "…"
        if r["outcome"] == NOT_APPLICABLE:
            lines.append(f"| {r['attack']} | {r['outcome']} | {answer.replace('|', '/')} | | | | | |")
            continue
        lines.append(f"| {r['attack']} | {r['outcome']} | {answer.replace('|', '/')} | {m['before']} → {m['peak']} → "
                     f"{m['after']} | {r['children_peak_mb']} | {r['server_cpu_share']:.2f} | "
                     f"{'yes' if r['healthy'] else 'NO'} | "
                     f"{lat.get('p95') or '-'} |")
    ld = out.get("load")
    if ld:
        lines.append(f"\nLoad alongside: {ld['sessions']} sessions, {ld['interactions']} interactions, p95 "
                     f"{ld['latency_ms']['p95']} ms during the attacks (goal <= {GOAL_MS:g}), "
                     f"{ld['latency_ms_alone_before']['p95']} ms alone before them (server CPU "
                     f"{ld['server_cpu_share_alone_before']} cores); {ld['errors']} errors.")
    fr = out.get("front")
    if fr:
        lines.append(f"nginx in front of {len(fr['replicas'])} replicas: {fr['requests']} requests "
                     f"{fr['status_counts']}, {fr['refused_429']} over its limits; attack tabs by replica "
                     f"{fr['attack_tabs_by_replica']} ({fr['attack_tabs_off_count']} reached another), load sessions "
                     f"{fr['load_sessions_by_replica']}; nginx CPU {fr['nginx_cpu_share']} cores.")
    lines.append(f"Attack tabs: {out['leaks']['pages']} pages searched, {len(out['leaks']['found'])} leaks. "
                 f"This client's CPU: {out['client_cpu_share']:.0%} of a core. "
                 f"All refused or contained: {out['all_refused_or_contained']}. Wall {out['wall_s']} s, load average "
                 f"{out['load_average']}.")
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    if args.list:
        print("\n".join(f"{a.name:12} {a.title}" for a in ATTACKS))
        return
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))      # unwind: the server and its jobs are stopped
    t0, report = time.perf_counter(), {}
    with tempfile.TemporaryDirectory(prefix="vae-lab-tracked-") as tmp:
        proc, ready = tracked_run(Path(tmp) / "tracked") if "tracked" in args.names else (None, None)
        try:
            extra = kit.serve_env() if args.serve_env else None
            with kit.attack_server(report, extra_env=extra, replicas=args.replicas,
                                   front=args.front == "nginx") as served:
                if served.front is not None:
                    served.sticky = sticky_values(served)
                out = asyncio.run(run_all(served, ready, args))
        finally:
            kit.kill_all([proc.pid] if proc is not None and proc.poll() is None else [])
    out.update(report, wall_s=round(time.perf_counter() - t0, 1), load_average=[round(x, 2) for x in os.getloadavg()],
               all_refused_or_contained=all(r["outcome"] in PASSING for r in out["rows"]
                                            if r["outcome"] != NOT_APPLICABLE),
               not_applicable_behind_front={r["name"]: r["answer"] for r in out["rows"]
                                            if r["outcome"] == NOT_APPLICABLE},
               all_healthy=all(r["healthy"] for r in out["rows"]) and out["healthy_at_end"],
               settings={"sessions": args.sessions, "pages": args.pages, "think_s": [args.think_lo, args.think_hi],
                         "attacks": args.names, "timeout_scale": args.timeout_scale, "baseline_s": args.baseline,
                         "server": (f"deploy/replicas.sh {args.replicas} behind deploy/nginx.conf"
                                    if args.front == "nginx" else
                                    "deploy/serve.env" if args.serve_env else "./run.sh app"),
                         "front": args.front, "replicas": args.replicas,
                         "heartbeat_timeout_s": kit.HEARTBEAT_S},
               streamlit=streamlit.__version__, cpus=os.cpu_count(), platform=platform.platform())
    print(table(out), file=sys.stderr)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
