"""Training speed as the app trains (Start on the Train page) against ``python -m vae train`` on the same
config, side by side in one invocation. Prints one JSON object.

    python bench/train_in_app.py --seconds 40

The app's run: a tab (over the websocket, bench/stclient) presses "Quick demo settings" and Start with a
time budget of ``--seconds``; the job trains in its own process (1 thread, nice 10). Then the same
``config.json`` trains with ``python -m vae train --config ... --threads 1``. Each reports the training
images per second of its last epoch (training time only).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _root  # noqa: F401, I001  (the repository root on sys.path: labkit, ui)
import loadkit

from labkit.stclient import vaelab


def samples_per_sec(run_dir: Path) -> tuple[float, int]:
    epochs = json.loads((run_dir / "metrics.json").read_text())["history"]["epochs"]
    full = [e for e in epochs if not e.get("partial")] or epochs
    return full[-1]["samples_per_sec"], len(epochs)


async def app_run(url: str, runs: Path, seconds: float) -> Path:
    t = await vaelab.start_training(url, seconds)
    deadline = time.monotonic() + seconds + 120
    while True:
        done = [p for p in runs.iterdir() if (p / "job.json").is_file()
                and json.loads((p / "job.json").read_text()).get("state") in ("done", "stopped", "failed")]
        if done:
            break
        assert time.monotonic() < deadline, "the app's run did not end"
        await asyncio.sleep(0.5)
    await t.session.close()
    return done[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    loadkit.add_server_args(ap)
    ap.add_argument("--seconds", type=float, default=40.0)
    args = ap.parse_args()
    with loadkit.server(args) as (url, runs):
        run = asyncio.run(app_run(url, runs, args.seconds))
        app_rate, app_epochs = samples_per_sec(run)
        config = run / "config.json"
        with tempfile.TemporaryDirectory(prefix="vae-cli-") as tmp:
            subprocess.run([sys.executable, "-m", "vae", "train", "--config", str(config), "--threads", "1",
                            "--quiet", "--out", str(Path(tmp) / "cli")], check=True, capture_output=True)
            cli_rate, cli_epochs = samples_per_sec(Path(tmp) / "cli")
    print(json.dumps({"bench": "train_in_app", "seconds": args.seconds,
                      "app_job": {"samples_per_sec": round(app_rate), "epochs": app_epochs},
                      "cli_1_thread": {"samples_per_sec": round(cli_rate), "epochs": cli_epochs},
                      "ratio": round(app_rate / cli_rate, 3)}))


if __name__ == "__main__":
    main()
