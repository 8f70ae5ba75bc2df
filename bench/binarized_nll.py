"""Dynamically binarised MNIST: train VAE Lab's recipe for a fixed CPU time budget, then report the
importance-weighted test NLL (k samples per image, Burda et al. 2016) on the test set binarised once.

    python bench/binarized_nll.py --data-dir ../shared/data --budget 900 --iw-samples 1000
    python bench/binarized_nll.py --data-dir ../shared/data --budget 900 --iw-samples 1000 --objective iwae --k 5
    python bench/binarized_nll.py --data-dir ../shared/data --budget 900 --iw-samples 1000 --prior vamp
    python bench/binarized_nll.py --data-dir ../shared/data --budget 1800 --iw-samples 1000 --prior vamp \
        --latent-layers 2 --precision bf16 --warmup 20 --lr 0.002

Reference points (not run here): pythae's VAE 89.8 nats; the IWAE paper's one-layer VAE 86.8 nats
after 3,280 passes. Prints one JSON object on the last line.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from vae.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from vae.data import ImageData, load_dataset
from vae.evaluate import evaluate, fixed_binarized
from vae.runs import save_run
from vae.train import fit


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--budget", type=float, default=900.0, help="training seconds")
    p.add_argument("--iw-samples", type=int, default=1000)
    p.add_argument("--hidden", default="1024")
    p.add_argument("--latent-dim", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=TrainConfig().batch_size)
    p.add_argument("--lr", type=float, default=TrainConfig().lr)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--objective", choices=["elbo", "iwae"], default="elbo")
    p.add_argument("--k", type=int, default=1, help="iwae: importance samples per image in training")
    p.add_argument("--decoder-hidden", default=None, help="decoder widths (default: VAE Lab's for --hidden)")
    p.add_argument("--prior", choices=["normal", "vamp"], default="normal")
    p.add_argument("--prior-components", type=int, default=ModelConfig().prior_components)
    p.add_argument("--latent-layers", type=int, choices=[1, 2], default=1)
    p.add_argument("--warmup", type=float, default=0.0, help="KL warm-up in epochs (linear from 0)")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="bf16: the forward pass under autocast (losses, gradients and Adam stay fp32)")
    p.add_argument("--out", type=Path, default=None, help="also save the run folder here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    split = load_dataset("mnist", data_dir=args.data_dir)
    widths = {} if args.decoder_hidden is None else \
        {"decoder_hidden": tuple(int(h) for h in args.decoder_hidden.split(","))}
    cfg = RunConfig(model=ModelConfig(hidden=tuple(int(h) for h in args.hidden.split(",")), latent_dim=args.latent_dim,
                                      prior=args.prior, prior_components=args.prior_components,
                                      latent_layers=args.latent_layers, **widths),
                    train=TrainConfig(epochs=100_000, batch_size=args.batch_size, lr=args.lr, binarize=True,
                                      time_budget=args.budget, threads=args.threads, seed=args.seed,
                                      warmup_epochs=args.warmup, precision=args.precision,
                                      objective=args.objective, iw_k=args.k if args.objective == "iwae" else 1),
                    data=DataConfig(name="mnist"))
    curve = []
    res = fit(cfg, split, callback=lambda e: e["type"] == "epoch" and curve.append(
        {"epoch": e["epoch"], "test_neg_elbo": e["test"]["neg_elbo"], "wall": e["elapsed"]}))
    test = ImageData(x=fixed_binarized(split.test.x, seed=args.seed), y=split.test.y)
    t0 = time.perf_counter()
    final = evaluate(res.model, test, iw_samples=args.iw_samples, seed=args.seed)
    eval_s = time.perf_counter() - t0
    if args.out:
        save_run(args.out, res.model, cfg, {"history": res.history, "final": final, "status": res.status})
    out = {"train_seconds": res.seconds, "epochs": len(res.history["epochs"]), "status": res.message,
           "test_neg_elbo": final["neg_elbo"], "nll_iw": final["nll_iw"], "iw_samples": args.iw_samples,
           "bits_per_dim_iw": final["bits_per_dim_iw"], "active_units": final["active_units"],
           **{k: final[k] for k in ("kl_per_layer", "active_units_lower") if k in final},
           "n_test": final["n_test"], "iw_eval_seconds": eval_s, "config": cfg.to_dict(), "curve": curve}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
