"""Does generated data help a classifier with few labels? Every regime over several seeds, as users run it.

For each number of labels (balanced: 10 and 100 per class by default), each mixing ratio (generated images per
real one: 0.5, 1 and 4 by default) and each seed, runs
``python -m vae augment --labels K --per-class R*K/10 --seed S`` (a conditional VAE trained on the same K images,
the same MLP trained with and without its samples; one thread each, ``--workers`` at a time), then prints one
JSON object: the rows and, per regime, the accuracy without and with generated images and the gain, each as
mean and standard deviation over seeds.

    python bench/augment_seeds.py --data-dir ../shared/data > assets/results/augment_seeds.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from seedkit import run_all, run_json, spread, vae_cli


def one(task: tuple[int, float, int], args) -> dict:
    labels, ratio, seed = task
    per_class = max(1, round(ratio * labels / 10))
    res, wall = run_json(vae_cli("augment", "--data", "mnist", "--data-dir", args.data_dir, "--labels", labels,
                                 "--per-class", per_class, "--seed", seed, "--threads", 1, "--quiet"))
    return {"labels": labels, "ratio": ratio, "per_class": per_class, "seed": seed, "wall_seconds": wall,
            "accuracy_without": res["accuracy_without"], "accuracy_with": res["accuracy_with"], "gain": res["gain"],
            "cvae_seconds": res["cvae"]["seconds"]}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--labels", default="100,1000", help="labelled images (balanced over the 10 classes)")
    p.add_argument("--ratios", default="0.5,1,4", help="generated images per labelled one")
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    labels = [int(v) for v in args.labels.split(",")]
    ratios = [float(v) for v in args.ratios.split(",")]
    seeds = [int(v) for v in args.seeds.split(",")]
    t0 = time.perf_counter()
    rows = run_all([(k, r, s) for k in labels for r in ratios for s in seeds], lambda t: one(t, args), args.workers)
    regimes = []
    for k in labels:
        for r in ratios:
            got = [row for row in rows if row["labels"] == k and row["ratio"] == r]
            regimes.append({"labels": k, "ratio": r, "per_class": got[0]["per_class"],
                            **{f: spread([row[f] for row in got]) for f in ("accuracy_without", "accuracy_with",
                                                                              "gain")},
                            "helped_in": sum(row["gain"] > 0 for row in got), "of": len(got)})
    print(json.dumps({"command": "python bench/augment_seeds.py " + " ".join(argv or sys.argv[1:]), "seeds": seeds,
                      "wall_seconds": time.perf_counter() - t0, "regimes": regimes, "rows": rows}))


if __name__ == "__main__":
    main()
