"""The server's torch threads, per thread: CPU of one decode made from a fresh thread, as Streamlit makes one for
every rerun and every fragment rerun; prints one JSON object.

    python bench/omp_threads.py                 # the demo run's decoder, 200 fresh threads per setting

Each setting runs in its own process, because OpenMP reads its environment once, when torch loads:

- ``main_only``: ``torch.set_num_threads(N)`` once, in the main thread (the server before the fix);
- ``per_thread``: the same, and each fresh thread calls ``ui.compute.configure_torch()`` first;
- ``env``: ``ui.settings.pin_native_threads()`` before torch is imported (what app.py does), nothing per thread;
- ``same_thread``: every call from one thread (the floor: the decode itself).

``cpu_ms`` is the process's CPU (all its threads, OpenMP's spinning workers included) per fresh thread
(three decodes of 10 latents each, like a click on the latent map), ``wall_ms`` the same in wall time.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, threading, time
setting, run_dir, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
sys.path.insert(0, sys.argv[4])
from ui import settings
if setting == "env":
    settings.pin_native_threads()
import numpy as np
import torch
from ui import compute
from vae import latent
from vae.runs import load_run
torch.set_num_threads(settings.torch_threads())
model = load_run(run_dir).model
z = np.random.default_rng(0).standard_normal((10, model.cfg.latent_dim)).astype(np.float32)
latent.decode(model, z, None)

def click():
    if setting == "per_thread":
        compute.configure_torch()
    for _ in range(3):
        latent.decode(model, z, None)

def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime

c0, t0 = cpu(), time.perf_counter()
for _ in range(n):
    if setting == "same_thread":
        click()
    else:
        t = threading.Thread(target=click)
        t.start()
        t.join()
wall = time.perf_counter() - t0
print(json.dumps({"cpu_ms": round(1000 * (cpu() - c0) / n, 2), "wall_ms": round(1000 * wall / n, 2),
                  "torch_threads": settings.torch_threads()}))
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default=str(ROOT / "assets" / "runs" / "mnist-2d"))
    ap.add_argument("--threads", type=int, default=200, help="fresh threads per setting")
    args = ap.parse_args(argv)
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    out = {"run": Path(args.run).name, "fresh_threads": args.threads, "cpu_count": os.cpu_count(), "settings": {}}
    for setting in ("main_only", "per_thread", "env", "same_thread"):
        proc = subprocess.run([sys.executable, "-c", CHILD, setting, args.run, str(args.threads), str(ROOT)],
                              capture_output=True, text=True, env=env, check=True)
        out["settings"][setting] = json.loads(proc.stdout.strip().splitlines()[-1])
    base = out["settings"]["main_only"]["cpu_ms"]
    out["cpu_ratio_to_main_only"] = {k: round(v["cpu_ms"] / base, 3) for k, v in out["settings"].items()}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
