"""On a machine with a CUDA GPU: the default 20-D recipe on full MNIST for a fixed budget on the CPU and on
the GPU (fp32 and bf16), samples/s and test -ELBO for each, as one JSON object. Under 5 minutes.

    python bench/gpu_check.py --data-dir DIR            # DIR holds MNIST/raw (torchvision's layout)

Without CUDA it prints a one-line reason as JSON and exits 0. Every run goes through the one pipeline
(``vae.pipeline.train_run``) with ``--time-budget``, so the comparison is images learned per second of
training and where the test -ELBO got in that time; the data set sits on the device for the GPU runs.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

from vae.config import RunConfig, TrainConfig
from vae.data import load_dataset
from vae.pipeline import train_run


def one(data, device: str, precision: str, budget: float, out: Path) -> dict:
    config = RunConfig(train=TrainConfig(epochs=1000, time_budget=budget, device=device, precision=precision))
    res = train_run(config, data, out)
    last = res.metrics.history.epochs[-1]
    return {"device": device, "precision": precision, "budget_s": budget,
            "epochs": len(res.metrics.history.epochs), "samples_per_sec": round(last.samples_per_sec),
            "neg_elbo": round(res.final.neg_elbo, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--budget", type=float, default=60.0, help="training seconds per run (3 runs)")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print(json.dumps({"bench": "gpu_check", "skipped": "no CUDA device here (torch.cuda.is_available() is False); "
                          "run this on a machine with an NVIDIA GPU"}))
        return
    data = load_dataset("mnist", data_dir=args.data_dir)
    rows = []
    with tempfile.TemporaryDirectory(prefix="vae-gpu-") as tmp:
        for device, precision in (("cpu", "fp32"), ("cuda", "fp32"), ("cuda", "bf16")):
            rows.append(one(data, device, precision, args.budget, Path(tmp) / f"{device}-{precision}"))
            print(json.dumps(rows[-1]), file=sys.stderr)
    cpu = rows[0]["samples_per_sec"]
    print(json.dumps({"bench": "gpu_check", "gpu": torch.cuda.get_device_name(0), "runs": rows,
                      "speedup_fp32": round(rows[1]["samples_per_sec"] / cpu, 1),
                      "speedup_bf16": round(rows[2]["samples_per_sec"] / cpu, 1)}))


if __name__ == "__main__":
    main()
