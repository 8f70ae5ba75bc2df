"""nginx in front of the app (deploy/nginx.conf as shipped: TLS, the login, limits, the access log), measured
against the app served directly, and what a first page load asks of nginx (the numbers its limits rest on).

    python bench/proxy_bench.py [--requests 400] [--loads 3]

1. Latency of /_stcore/health, direct (the replica's port; a kept-alive connection as a browser keeps, and a new
   connection per request as nginx opens to the app) and through nginx over HTTP and over TLS (kept alive, the login
   sent each time), the paths taken in turn so that a change in the machine's load hits them alike; p50 / p95 /
   mean in ms and nginx's p50 and mean over each direct path's. Clients set TCP_NODELAY, as browsers do.
2. A first page load of Home in Chromium through nginx (a fresh browser context: empty cache, no cookie, the login
   sent as a logged-in browser sends it; a person's first request is also answered 401 once): requests by kind as
   Chromium made them, the connections it opened, what nginx logged (requests by status, megabytes sent), then the
   same for a second tab of that browser (cache and cookie kept); over TLS (the throwaway certificate accepted, as
   a class accepts a self-signed one) and over plain HTTP; and nginx's CPU seconds over each set. A load ends when
   the app's first run has finished (no running indicator, nothing stale) and a second has passed.

Two replicas behind nginx, as deploy/replicas.sh 2 starts them (bench/appserver.py, deploy/serve.env). Prints JSON.
"""
from __future__ import annotations

import argparse
import collections
import http.client
import json
import os
import socket
import statistics
import tempfile
import time
from pathlib import Path

import _root  # noqa: F401, I001  (the repository root on sys.path: labkit, ui)

from labkit import nginxfront as nf
from labkit.appserver import CHROMIUM, CHROMIUM_ARGS, app_server

IDLE = ("!document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " && !document.querySelector('[data-stale=\"true\"]')")


def _summary(ms: list[float]) -> dict:
    ms = sorted(ms)
    return {"p50": round(statistics.median(ms), 3), "p95": round(ms[int(0.95 * (len(ms) - 1))], 3),
            "mean": round(statistics.fmean(ms), 3), "n": len(ms)}


def health_latency(app_port: int, front: nf.Front, requests: int) -> dict:
    """GET /_stcore/health by four paths, in turn; ms per request. ``direct`` keeps its connection alive, as a
    browser does; ``direct_new_connection`` opens one per request, as nginx does to the app."""
    conns = {"direct": http.client.HTTPConnection("127.0.0.1", app_port, timeout=10),
             "nginx_http": http.client.HTTPConnection("127.0.0.1", front.http, timeout=10),
             "nginx_tls": http.client.HTTPSConnection("localhost", front.https, timeout=10,
                                                      context=front.tls_context())}
    for conn in conns.values():
        conn.connect()
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)     # as browsers set it
    headers = {"Authorization": nf.basic_auth()}
    times: dict[str, list[float]] = {k: [] for k in [*conns, "direct_new_connection"]}
    for i in range(requests + 20):
        for name in times:
            conn = conns.get(name) or http.client.HTTPConnection("127.0.0.1", app_port, timeout=10)
            t0 = time.perf_counter()
            conn.request("GET", "/_stcore/health", headers=headers)
            r = conn.getresponse()
            body = r.read()
            dt = (time.perf_counter() - t0) * 1000
            assert r.status == 200 and body == b"ok", (name, r.status, body)
            if name not in conns:
                conn.close()
            if i >= 20:                                         # the first 20 rounds warm up
                times[name].append(dt)
    out = {k: _summary(v) for k, v in times.items()}
    for k in ("nginx_http", "nginx_tls"):
        for base in ("direct", "direct_new_connection"):
            out[k][f"p50_over_{base}"] = round(out[k]["p50"] / out[base]["p50"], 2)
            out[k][f"mean_over_{base}"] = round(out[k]["mean"] / out[base]["mean"], 2)
    return out


def _load(page, cdp, url: str, log: Path, log_from: int) -> dict:
    kinds: collections.Counter = collections.Counter()
    conns: set = set()
    page.on("request", lambda r: kinds.update([r.resource_type]))
    cdp.on("Network.responseReceived", lambda e: conns.add(e["response"].get("connectionId")))
    t0 = time.perf_counter()
    page.goto(url)
    page.wait_for_selector("[data-testid='stMain'] h1")
    page.wait_for_function(IDLE)
    seconds = time.perf_counter() - t0
    page.wait_for_timeout(1000)
    fields = [line.split('"')[2].split() for line in log.read_text().splitlines()[log_from:]]
    return {"seconds_to_idle": round(seconds, 2), "chromium_requests": sum(kinds.values()),
            "by_kind": dict(kinds.most_common()), "connections": len(conns - {None, 0}),
            "nginx_requests": len(fields), "nginx_by_status": dict(collections.Counter(f[0] for f in fields)),
            "nginx_mb_sent": round(sum(int(f[1]) for f in fields) / 1e6, 2)}


def _cpu_seconds(pids: list[int]) -> float:
    ticks = 0
    for pid in pids:
        ticks += sum(int(x) for x in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[11:13])
    return ticks / os.sysconf("SC_CLK_TCK")


def page_loads(front: nf.Front, loads: int, scheme: str, nginx_pids: list[int]) -> dict:
    """``loads`` first loads of Home (each in a fresh context) and a second tab each, over ``scheme``; nginx's CPU
    seconds over all of them."""
    from playwright.sync_api import sync_playwright

    url = f"{scheme}://localhost:{front.https if scheme == 'https' else front.http}/"
    log = front.dir / "var" / "access.log"
    results = []
    cpu0 = _cpu_seconds(nginx_pids)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        for _ in range(loads):
            # the login as a header, as a browser sends it once logged in (Playwright's http_credentials would
            # answer the 401 challenge, one more request, but intercepts requests and so turns the cache off)
            ctx = browser.new_context(viewport={"width": 1100, "height": 900}, ignore_https_errors=True,
                                      extra_http_headers={"Authorization": nf.basic_auth()})
            tabs = []
            for _ in range(2):                                   # a first load; a second tab (cache, cookie kept)
                page = ctx.new_page()
                cdp = ctx.new_cdp_session(page)
                cdp.send("Network.enable")
                tabs.append(_load(page, cdp, url, log, len(log.read_text().splitlines())))
            results.append({"first": tabs[0], "second_tab": tabs[1]})
            ctx.close()
        browser.close()
    return {"loads": results, "nginx_cpu_s": round(_cpu_seconds(nginx_pids) - cpu0, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=400, help="health requests per path")
    ap.add_argument("--loads", type=int, default=3, help="first page loads (each in a fresh browser context)")
    args = ap.parse_args()
    if why := nf.missing():
        raise SystemExit(why)
    with tempfile.TemporaryDirectory() as tmp:
        env = {**nf.serve_env(), "VAE_LAB_RUNS_DIR": f"{tmp}/runs", "VAE_LAB_THREADS": "1"}
        with app_server(env=env) as one, app_server(env=env) as two:
            front = nf.render(Path(tmp) / "deploy", [one.port, two.port])
            with nf.serve(front) as proc:
                pids = [proc.pid, *map(int, Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split())]
                out = {"health_ms": health_latency(one.port, front, args.requests),
                       "page_loads_tls": page_loads(front, args.loads, "https", pids),
                       "page_loads_http": page_loads(front, args.loads, "http", pids)}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
