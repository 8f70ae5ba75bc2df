"""The Sliders page on a model logged with vae.track: pictures decoded on the server while dragging, beside the
in-browser decoder, in Chromium against the app served as ``./run.sh app`` serves it. Prints one JSON object.

    python bench/server_slider.py [--seconds 5] [--rate 60] [--rounds 2]

Two tracked runs are logged into a temporary runs folder (the user-style models of tests/foreign_models.py, one
epoch on 1,000 mnist5k digits or on synthetic RGB blobs):

- ``mlp``: the pytorch/examples VAE, a 28x28 MLP decoder that ``vae.onnx_spec`` translates for the browser;
- ``conv``: the 32x32 RGB conv VAE with GroupNorm, SiLU and upsampling, whose decoder cannot go to the browser.

Cases, each on the Sliders page of its run: ``mlp-browser`` (the in-browser decoder); ``mlp-server-strips`` and
``mlp-server-frames`` (the same run on servers started with ``VAE_LAB_SERVER_DECODE=1`` and ``=frames``, the
switches that send every panel down the server path, with and without slider strips: ui/live_decoder.py); and
``conv-server`` (its strip would exceed the byte cap, so one round trip a picture). The first slider is driven with
``input`` events at ``--rate`` Hz for ``--seconds`` (what a drag sends, without the test driver's own round trip per
mouse move), then released. Reported per case
(median over ``--rounds``, each round on a fresh page):

- ``fps``: pictures painted during the drive (the canvas's ``data-frames``), per second;
- ``requests``: frames the page asked the server for (server path); ``from_strip``: pictures painted from a strip;
- ``round_trip_ms_median`` / ``_p90``: from a request to its picture arriving;
- ``server_cpu_ms_per_frame``: the server process's user + system CPU over the drive, per picture painted;
- ``server_cpu_share``: that CPU over the drive's wall time (1.0 = one core).

The servers are started by ``labkit.appserver.app_server`` from the repository root, so they read its
``.streamlit/config.toml`` like ``./run.sh app``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import _root  # noqa: F401, I001  (the repository root on sys.path: labkit, ui)

from labkit.appserver import ROOT, app_server, chromium

sys.path.insert(0, str(ROOT / "tests"))          # the user-style models the tests log (tests/foreign_models.py)

PANEL = "sliders.panel"
DRIVE = """async ([inp, canvas, seconds, rate]) => {
  const hook = window.__vaeLab.panel('%s');
  const f0 = +canvas.getAttribute('data-frames'), r0 = hook.requests(), n0 = hook.roundTrips().length;
  const s0 = hook.fromStrip();
  const t0 = performance.now();
  let i = 0;
  await new Promise(done => {
    const tick = setInterval(() => {
      const t = (performance.now() - t0) / 1000;
      if (t >= seconds) { clearInterval(tick); done(); return; }
      inp.value = (2.5 * Math.sin(2 * Math.PI * t / 2.0)).toFixed(2);   // back and forth, one sweep a second
      inp.dispatchEvent(new Event('input', {bubbles: true}));
      i += 1;
    }, 1000 / rate);
  });
  const wall = (performance.now() - t0) / 1000;
  inp.dispatchEvent(new Event('change', {bubbles: true}));
  return {frames: +canvas.getAttribute('data-frames') - f0, requests: hook.requests() - r0, inputs: i, wall,
          server: hook.server(), rtt: hook.roundTrips().slice(n0), from_strip: hook.fromStrip() - s0};
}""" % PANEL


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def make_runs(root: Path) -> None:
    import torch
    from foreign_models import ConvRGBVAE, ExamplesVAE, train_and_log
    from helpers import blobs

    import vae
    from vae.data import load_dataset
    torch.manual_seed(0)
    d = load_dataset("mnist5k", max_train=1000, max_test=200)
    mlp = ExamplesVAE()
    with vae.track(root / "mlp", mlp, d.test.x, labels=d.test.y, output="probs") as lab:
        train_and_log(lab, mlp, d.train.x.float().view(-1, 784) / 255, epochs=1)
    data = blobs(256, side=32, channels=3, classes=4)
    conv = ConvRGBVAE(side=32)
    with vae.track(root / "conv", conv, data.x[:128], labels=data.y[:128], output="logits",
                   encode=lambda t: tuple(conv.encoder(t).flatten(1).chunk(2, dim=1)), decode=conv.generate) as lab:
        train_and_log(lab, conv, data.x.float() / 255, epochs=1, batch=32)


def measure(browser, url, run: str, seconds: float, rate: float) -> dict:
    ctx = browser.new_context(viewport={"width": 1300, "height": 1000})
    page = ctx.new_page()
    page.set_default_timeout(90_000)
    page.goto(f"{url}/sliders?{urllib.parse.urlencode({'run': run})}")
    page.wait_for_selector("[data-testid='vae-live-image']")
    page.wait_for_function(f"window.__vaeLab && window.__vaeLab.panel('{PANEL}')")
    page.wait_for_timeout(1500)                                   # the page's own first commit and rerun settle
    c0 = cpu_seconds(url.pid)
    got = page.evaluate(DRIVE, [page.locator("[data-testid='vae-latent-sliders'] input[type=range]").first
                                .element_handle(), page.locator("[data-testid='vae-live-image']").element_handle(),
                                seconds, rate])
    cpu = cpu_seconds(url.pid) - c0
    page.wait_for_timeout(500)
    ctx.close()
    rtt = sorted(got["rtt"]) or [float("nan")]
    return {"fps": got["frames"] / got["wall"], "frames": got["frames"], "requests": got["requests"],
            "from_strip": got["from_strip"],
            "round_trip_ms_median": rtt[len(rtt) // 2], "round_trip_ms_p90": rtt[int(0.9 * (len(rtt) - 1))],
            "inputs": got["inputs"], "server_path": got["server"],
            "server_cpu_ms_per_frame": 1000 * cpu / max(1, got["frames"]), "server_cpu_share": cpu / got["wall"]}


def median_of(rounds: list[dict]) -> dict:
    out = {k: round(statistics.median(r[k] for r in rounds), 3) for k in rounds[0] if k != "server_path"}
    out = {k: (None if v != v else v) for k, v in out.items()}                     # NaN (no round trips) -> null
    return {**out, "server_path": rounds[0]["server_path"], "rounds": len(rounds)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rate", type=float, default=60.0, help="input events a second while 'dragging'")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    out: dict = {"seconds": args.seconds, "rate_hz": args.rate, "machine": platform.machine(),
                 "cpus": os.cpu_count(), "load_avg_before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="vae-server-slider-") as tmp:
        runs = Path(tmp) / "runs"
        t0 = time.perf_counter()
        make_runs(runs)
        out["setup_s"] = round(time.perf_counter() - t0, 1)
        env = {"VAE_LAB_RUNS_DIR": str(runs), "VAE_LAB_THREADS": "1"}
        cases = {}
        with chromium() as browser:
            with app_server(env=env) as url:
                for name, run in (("mlp-browser", "mlp"), ("conv-server", "conv")):
                    cases[name] = median_of([measure(browser, url, run, args.seconds, args.rate)
                                             for _ in range(args.rounds)])
            for name, forced in (("mlp-server-strips", "1"), ("mlp-server-frames", "frames")):
                with app_server(env={**env, "VAE_LAB_SERVER_DECODE": forced}) as url:
                    cases[name] = median_of([measure(browser, url, "mlp", args.seconds, args.rate)
                                             for _ in range(args.rounds)])
        out["cases"] = cases
    out["load_avg_after"] = os.getloadavg()[0]
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
