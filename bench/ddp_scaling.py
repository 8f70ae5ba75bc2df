"""One process x 2 threads against 2 processes x 1 thread (torchrun, gloo), side by side in one invocation.

    python bench/ddp_scaling.py --data-dir ../shared/data               # full MNIST, the default 20-D recipe

Both train the same recipe with the same global batch and seed for ``--epochs`` epochs (default 10) through
``python -m vae train``; prints one JSON object: for each, samples/s (training time only), wall time, test
-ELBO, and for the torchrun run the time per step spent in the gradient all-reduce and in the step's
consensus all-reduce (waiting for the slower rank included), so the cost of communication is visible.
The two -ELBOs answer "does the recipe mean the same at any N"; the samples/s answer "does it pay here".
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(cmd: list[str], out: Path) -> dict:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{done.stderr[-3000:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    epochs = metrics["history"]["epochs"]
    row = {"wall_s": round(wall, 1), "train_s": round(epochs[-1]["train_seconds"], 1),
           "samples_per_sec": round(epochs[-1]["samples_per_sec"]), "neg_elbo": round(metrics["final"]["neg_elbo"], 2),
           "epochs": len(epochs), "active_units": metrics["final"]["active_units"]}
    if "communication" in epochs[-1]:
        row["communication_per_step"] = {k: round(v, 3) for k, v in epochs[-1]["communication"].items()}
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="mnist")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--extra", default="", help="more `vae train` options for both runs, e.g. '--latent-dim 2'")
    args = ap.parse_args()
    common = ["--data", args.data, "--epochs", str(args.epochs), "--seed", str(args.seed), "--quiet",
              *(["--data-dir", args.data_dir] if args.data_dir else []), *args.extra.split()]
    with tempfile.TemporaryDirectory(prefix="vae-ddp-") as tmp:
        tmp = Path(tmp)
        single = run([sys.executable, "-m", "vae", "train", *common, "--threads", "2", "--out", str(tmp / "one")],
                     tmp / "one")
        ddp = run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                   "-m", "vae", "train", *common, "--threads", "1", "--out", str(tmp / "two")], tmp / "two")
    result = {"bench": "ddp_scaling", "data": args.data, "epochs": args.epochs, "recipe": "default 20-D" +
              (f" + {args.extra}" if args.extra else ""),
              "one_process_2_threads": single, "two_processes_1_thread_gloo": ddp,
              "samples_per_sec_ratio": round(ddp["samples_per_sec"] / single["samples_per_sec"], 3),
              "neg_elbo_difference": round(ddp["neg_elbo"] - single["neg_elbo"], 2)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
