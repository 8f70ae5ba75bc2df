"""The probe, compression and rate-distortion figures of the Use cases page over several seeds, as users run them.

Per seed S (``--workers`` at a time, one thread each, every step through the command line):

1. the semi-supervised command's M1 with 20 epochs, trained as ``python -m vae semisup --labels 100 --seed S
   --epochs 20 --m2-epochs 1 --joint-epochs 0`` does (M1 is the 50-D VAE the probe and the compression table read;
   20 epochs as when these tables were measured, where the semisup default now trains 5 and leaves the rest to the
   joint epochs; one M2 epoch on its frozen codes is the least the command trains, and no joint epoch, so M1 never
   sees a label);
2. ``python -m vae probe`` on it, the labelled subsets drawn with seed S;
3. ``python -m vae compress`` on it, the test images binarised with seed S;
4. ``python -m vae rd --seed S``: one run per beta.

Prints one JSON object: "probe", "compress" and "rd" in the shape each command prints, every figure the mean over
seeds with its standard deviation beside it (``latent_accuracy`` and ``latent_accuracy_sd``, ...), and every seed's
row.

    python bench/usecase_seeds.py --data-dir ../shared/data > assets/results/usecase_seeds.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from seedkit import run_all, run_json, spread, vae_cli

CODES = ("png_per_image_bits_per_dim", "png_tiled_bits_per_dim", "gzip_bits_per_dim", "neg_elbo_bits_per_dim",
         "iw_bits_per_dim", "neg_elbo_nats", "nll_iw_nats")
RD = ("rate_nats", "distortion_nats", "neg_elbo", "active_units", "seconds")


def one(seed: int, args) -> dict:
    data = ("--data-dir", args.data_dir)
    m1 = args.out / f"m1-s{seed}"
    ss, ss_wall = run_json(vae_cli("semisup", "--data", "mnist", *data, "--labels", 100, "--epochs", 20,
                                   "--m2-epochs", 1, "--joint-epochs", 0,
                                   "--seed", seed, "--no-baseline", "--threads", 1, "--quiet", "--out", m1))
    probe, probe_wall = run_json(vae_cli("probe", m1, *data, "--budgets", args.budgets, "--seed", seed,
                                         "--threads", 1))
    comp, comp_wall = run_json(vae_cli("compress", m1, *data, "--n", 1000, "--iw-samples", 100, "--seed", seed,
                                       "--threads", 1))
    rd, rd_wall = run_json(vae_cli("rd", "--data", "mnist", *data, "--betas", args.betas, "--epochs", 1,
                                   "--latent-dim", 20, "--seed", seed, "--threads", 1, "--quiet",
                                   "--out", args.out / f"rd-s{seed}"))
    return {"seed": seed, "m1_minutes": ss["m1_minutes"], "probe": probe["rows"],
            "compress": {k: comp[k] for k in CODES}, "rd": [{k: p[k] for k in ("beta", *RD)} for p in rd["points"]],
            "wall_seconds": {"m1": ss_wall, "probe": probe_wall, "compress": comp_wall, "rd": rd_wall}}


def _mean_sd(rows: list[dict], field: str) -> dict:
    """``field`` and ``field_sd``: its mean and standard deviation over the seeds' rows."""
    got = spread([r[field] for r in rows])
    return {field: got["mean"], f"{field}_sd": got["sd"]}


def summarise(rows: list[dict]) -> dict:
    """The summary in the shape of one run's output (``vae probe`` / ``vae compress`` / ``vae rd``), each figure
    the mean over seeds with its standard deviation beside it as ``<figure>_sd``."""
    def at(key: str, name: str, value) -> list[dict]:
        return [next(p for p in r[key] if p[name] == value) for r in rows]

    probe = []
    for k in [p["labels"] for p in rows[0]["probe"]]:
        got = at("probe", "labels", k)
        probe.append({"labels": k, **_mean_sd(got, "latent_accuracy"), **_mean_sd(got, "pixel_accuracy"),
                      "latent_ahead_in": sum(p["latent_accuracy"] > p["pixel_accuracy"] for p in got),
                      "of": len(got)})
    compress = {"images": "binarised 0/1 (one draw per seed)", "n_images": 1000, "iw_samples": 100,
                "raw_bits_per_dim": 1.0}
    for code in CODES:
        compress.update(_mean_sd([r["compress"] for r in rows], code))
    rd = [{"beta": b, **{k: v for f in RD for k, v in _mean_sd(at("rd", "beta", b), f).items()}}
          for b in [p["beta"] for p in rows[0]["rd"]]]
    return {"probe": {"latent_dim": 50, "rows": probe}, "compress": compress,
            "rd": {"data": "mnist", "epochs": 1, "points": rd}}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--budgets", default="100,600,1000,10000", help="probe: labelled images")
    p.add_argument("--betas", default="0.25,0.5,1,2,4,8", help="rate-distortion: one run per beta")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("runs/usecase_seeds"), help="the M1 and rd runs go here")
    args = p.parse_args(argv)
    seeds = [int(v) for v in args.seeds.split(",")]
    t0 = time.perf_counter()
    rows = run_all(seeds, lambda s: one(s, args), args.workers)
    print(json.dumps({"command": "python bench/usecase_seeds.py " + " ".join(argv or sys.argv[1:]), "seeds": seeds,
                      "wall_seconds": time.perf_counter() - t0, **summarise(rows), "rows": rows}))


if __name__ == "__main__":
    main()
