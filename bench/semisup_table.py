"""Semi-supervised MNIST with few labels: the table (``python -m vae semisup`` with its defaults, from nothing, one
run per labelled subset) and the ablation (one change at a time, every row from one shared label-free M1).

    python bench/semisup_table.py --data-dir DATA_DIR --out runs/semisup --parallel 1 --threads 0 \
        > bench/results/semisup_table.json
    python bench/semisup_table.py --data-dir DATA_DIR --out runs/semisup-ab --ablation \
        > bench/results/semisup_ablation_features.json

Each run is one ``python -m vae semisup`` command, ``--parallel`` at a time with ``--threads`` each (one run with
all cores is what the command's defaults do; two with one thread each halve the wall time of three runs); the JSON
holds every run's own JSON line, its full command and wall seconds, and the mean and standard deviation of the test
error. Rows go to stderr as they finish."""
from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

from seedkit import run_all, run_json, spread, vae_cli

# The ablation, each row one change from the row before it (the options on top of the defaults).
ABLATION = (
    ("the previous recipe: q(y|z1) reads the code, affine distortions only",
     ("--classifier", "code", "--elastic", "0")),
    ("+ a smooth random warp in the distorted view (3 px)", ("--classifier", "code")),
    ("+ q(y|x) reads M1's encoder's last hidden layer: the defaults", ()),
)
ALONE = ("q(y|x) reads the hidden layer, no warp (the other change alone)", ("--elastic", "0"))


def command(args, out: Path, label_seed: int, extra=(), m1_from: Path | None = None) -> list[str]:
    cmd = vae_cli("semisup", "--data", "mnist", "--data-dir", args.data_dir, "--labels", args.labels,
                  "--threads", args.threads, "--seed", args.seed, "--label-seed", label_seed, "--out", out, *extra)
    return cmd + (["--m1-from", str(m1_from)] if m1_from else [])


def run_row(cmd: list[str], **fields) -> dict:
    row, seconds = run_json(cmd)
    return {**fields, **row, "wall_seconds": round(seconds, 1), "command": shlex.join(["python", *cmd[1:]])}


def table(args) -> dict:
    seeds = [int(s) for s in args.label_seeds.split(",")]
    rows = run_all(seeds, lambda s: run_row(command(args, args.out / f"k{args.labels}-ls{s}", s), label_seed=s),
                   args.parallel)
    errors = [r["test_error"] for r in rows]
    return {"labels": args.labels, "test_errors": errors, **spread(errors),
            "minutes": [r["minutes"] for r in rows], "wall_minutes": [round(r["wall_seconds"] / 60, 2) for r in rows],
            "command": "\n".join(r["command"] for r in rows), "runs": rows}


def ablation(args) -> dict:
    """Every row from one label-free M1 of the previous recipe (20 epochs), with its 15 joint epochs."""
    m1, base = args.m1_from, None
    if m1 is None:
        m1 = args.out / "m1"
        base = run_row(command(args, m1, args.ablation_seed, ("--epochs", 20, "--m2-epochs", 1, "--joint-epochs", 0,
                                                               "--no-baseline")),
                       change="the shared label-free M1 (20 epochs, no labels seen)")
    previous = ("--epochs", 20, "--joint-epochs", 15)
    rows = [(i, change, (*opts, *previous)) for i, (change, opts) in enumerate((*ABLATION, ALONE))]
    if args.rows:
        rows = [r for r in rows if r[0] in {int(i) for i in args.rows.split(",")}]
    out = run_all(rows, lambda r: run_row(
        command(args, args.out / f"ab{r[0]}", args.ablation_seed, (*r[2], "--no-baseline"), m1_from=m1),
        row=r[0], change=r[1], options=shlex.join(map(str, r[2]))), args.parallel)
    return {"labels": args.labels, "label_seed": args.ablation_seed, "m1_from": str(m1), "m1": base, "rows": out}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", required=True, help="folder holding MNIST in torchvision's layout")
    p.add_argument("--out", type=Path, required=True, help="folder for the run folders")
    p.add_argument("--labels", type=int, default=100)
    p.add_argument("--label-seeds", default="0,1,2", help="one run per labelled subset (default 0,1,2)")
    p.add_argument("--seed", type=int, default=0, help="the weights' and noise's seed (default 0)")
    p.add_argument("--parallel", type=int, default=2, help="runs at a time (default 2)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run, 0 = all cores (default 1: two runs "
                                                          "share the two cores; 0 with --parallel 1 is the defaults' "
                                                          "one run on the whole machine)")
    p.add_argument("--ablation", action="store_true", help="the ablation instead of the table")
    p.add_argument("--ablation-seed", type=int, default=0, help="the labelled subset of the ablation (default 0)")
    p.add_argument("--m1-from", type=Path, help="ablation: reuse this label-free M1 (a semisup run made with "
                                                "--epochs 20 --joint-epochs 0) instead of training one")
    p.add_argument("--rows", help="ablation: only these rows (comma-separated indices, 0 = the previous recipe)")
    args = p.parse_args()
    print(json.dumps(ablation(args) if args.ablation else table(args)))


if __name__ == "__main__":
    main()
