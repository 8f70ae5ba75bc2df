"""Every held-out digit, over several seeds: the AUROC of each anomaly score, as users get it from the CLI.

Runs ``python -m vae anomaly --holdout-class D --seed S`` for every digit and seed (``--workers`` at a time,
one thread each), then prints one JSON object: the per-task rows and, per score, the mean and standard
deviation over seeds for each digit and for the mean over the ten digits.

    python bench/anomaly_seeds.py --data-dir ../shared/data --seeds 0,1,2,3,4 > assets/results/anomaly_seeds.json
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from seedkit import run_all, run_json, spread, vae_cli

SCORES = ("auroc", "auroc_per_pixel_normalised", "auroc_complexity_corrected", "auroc_iw_nll", "auroc_latent_class")


def one(task: tuple[int, int], args, out_dir: Path) -> dict:
    seed, digit = task
    res, wall = run_json(vae_cli("anomaly", "--data", "mnist", "--data-dir", args.data_dir, "--holdout-class", digit,
                                 "--seed", seed, "--epochs", args.epochs, "--threads", 1, "--iw-samples",
                                 args.iw_samples, "--quiet", "--out", out_dir / f"seed{seed}" / f"no{digit}"))
    return {"seed": seed, "holdout_class": digit, "wall_seconds": wall, "train_seconds": res["train_seconds"],
            "holdout_share_of_top": res["holdout_share_of_top"], **{k: res[k] for k in SCORES if k in res}}


def summarise(rows: list[dict], seeds: list[int], digits: list[int]) -> dict:
    out = {}
    for score in SCORES:
        if not all(score in r for r in rows):
            continue
        by = {(r["seed"], r["holdout_class"]): r[score] for r in rows}
        per_digit = {str(d): spread([by[s, d] for s in seeds]) for d in digits}
        per_seed_mean = [statistics.fmean(by[s, d] for d in digits) for s in seeds]
        out[score] = {"mean_over_digits": spread(per_seed_mean), "per_digit": per_digit}
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--digits", default="0,1,2,3,4,5,6,7,8,9")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--iw-samples", type=int, default=20)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--keep-runs", type=Path, default=None, help="write the run folders here (default: a temp dir)")
    args = p.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    digits = [int(d) for d in args.digits.split(",")]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = args.keep_runs or Path(tmp)
        rows = run_all([(s, d) for s in seeds for d in digits], lambda t: one(t, args, out_dir), args.workers)
    print(json.dumps({"command": "python bench/anomaly_seeds.py " + " ".join(argv or sys.argv[1:]),
                      "seeds": seeds, "digits": digits, "epochs": args.epochs, "iw_samples": args.iw_samples,
                      "wall_seconds": time.perf_counter() - t0, "summary": summarise(rows, seeds, digits),
                      "rows": rows}))


if __name__ == "__main__":
    main()
