"""Side-by-side training benchmark: the pytorch/examples VAE recipe as a user writes it vs VAE Lab.

Baseline (a faithful re-implementation of pytorch/examples ``vae/main.py``): torchvision's
MNIST dataset with a per-item ``ToTensor`` behind a ``DataLoader`` (batch 128, shuffled, no
workers on the CPU), MLP 784-400-20, sigmoid then ``binary_cross_entropy`` summed, closed-form
KL, Adam 1e-3, test loss after every epoch with one posterior sample per image.

VAE Lab runs after it in the same process, on the same data, with the same thread count:
``--lab same`` trains the very same recipe through ``vae.train``; ``--lab default`` trains the
command line's default recipe for the baseline's wall time (``time_budget``), recording when it
passes the baseline's final -ELBO; ``--lab both`` does both. ``--budget-2d 60`` adds the default
recipe with a 2-D latent trained for 60 s. Prints one JSON object on the last line.

    python bench/train_vs_baseline.py --data-dir ../shared/data --epochs 10 --lab both
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import sys
import time
from pathlib import Path

import _root  # noqa: F401, I001  (the repository root on sys.path)
import torch

from labkit.examples_vae import VAE as BaselineVAE  # the example's model and loss, as written there
from labkit.examples_vae import loss_function
from vae.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from vae.data import cache_dir, load_dataset
from vae.train import fit

MNIST = DataConfig(name="mnist")  # recorded in each run's config: full MNIST from --data-dir
RAW = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


def baseline_loss(recon_x, x, mu, logvar):
    bce, kld = loss_function(recon_x, x, mu, logvar)
    return bce + kld


def torchvision_root(data_dir: Path) -> Path:
    """torchvision's MNIST reads the unpacked IDX files: unpack the .gz copies into our cache, once."""
    root = cache_dir() / "bench-torchvision"
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name in RAW:
        if not (raw / name).exists():
            with gzip.open(data_dir / "MNIST" / "raw" / f"{name}.gz", "rb") as src, open(raw / f".{name}", "wb") as dst:
                shutil.copyfileobj(src, dst)
            (raw / f".{name}").rename(raw / name)
    return root


def run_baseline(data_dir: Path, epochs: int, latent: int, seed: int) -> dict:
    from torchvision import datasets, transforms
    torch.manual_seed(seed)
    root = torchvision_root(data_dir)
    train_loader = torch.utils.data.DataLoader(
        datasets.MNIST(root, train=True, download=False, transform=transforms.ToTensor()), batch_size=128, shuffle=True)
    test_loader = torch.utils.data.DataLoader(
        datasets.MNIST(root, train=False, transform=transforms.ToTensor()), batch_size=128, shuffle=False)
    model = BaselineVAE(latent=latent)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    curve, t_train = [], 0.0
    t0 = time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        e0 = time.perf_counter()
        for data, _ in train_loader:
            opt.zero_grad()
            recon, mu, logvar = model(data)
            loss = baseline_loss(recon, data, mu, logvar)
            loss.backward()
            opt.step()
        t_train += time.perf_counter() - e0
        model.eval()
        test_loss = 0.0
        with torch.no_grad():
            for data, _ in test_loader:
                recon, mu, logvar = model(data)
                test_loss += baseline_loss(recon, data, mu, logvar).item()
        curve.append({"epoch": epoch, "test_neg_elbo": test_loss / len(test_loader.dataset),
                      "wall": time.perf_counter() - t0})
    wall = time.perf_counter() - t0
    return {"wall_seconds": wall, "train_seconds": t_train, "samples_per_sec": epochs * 60000 / t_train,
            "test_neg_elbo": curve[-1]["test_neg_elbo"], "curve": curve}


# ----------------------------------------------------------------------------- VAE Lab's trainer
def run_lab(split, config: RunConfig, time_limit: float | None = None) -> dict:
    import threading
    curve, cancel = [], threading.Event()
    t0 = time.perf_counter()

    def on(e):
        if e["type"] == "epoch":
            curve.append({"epoch": e["epoch"], "test_neg_elbo": e["test"]["neg_elbo"],
                          "wall": time.perf_counter() - t0, "partial": e["partial"]})
        if time_limit and e["type"] == "step" and time.perf_counter() - t0 > time_limit:
            cancel.set()

    res = fit(config, split, callback=on, cancel=cancel)
    wall = time.perf_counter() - t0
    return {"wall_seconds": wall, "samples_per_sec": res.history["epochs"][-1]["samples_per_sec"],
            "test_neg_elbo": curve[-1]["test_neg_elbo"], "curve": curve, "status": res.status,
            "config": config.to_dict(), "message": res.message}


def lab_default(latent_dim: int, seed: int, threads: int, time_budget: float) -> RunConfig:
    """The command line's defaults (vae.config), trained to a time budget instead of a number of epochs."""
    d = RunConfig()
    return RunConfig(model=ModelConfig(latent_dim=latent_dim, hidden=d.model.hidden, activation=d.model.activation),
                     train=TrainConfig(epochs=1000, seed=seed, threads=threads, time_budget=time_budget),
                     data=MNIST)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, required=True, help="folder holding MNIST/raw/*.gz")
    p.add_argument("--epochs", type=int, default=10, help="epochs of the baseline and of the same-recipe run")
    p.add_argument("--latent-dim", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--lab", choices=["same", "default", "both"], default="both")
    p.add_argument("--budget-2d", type=float, default=60.0,
                   help="also train the default recipe with a 2-D latent for this many seconds (0 = skip)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out: dict = {"machine": {"threads": args.threads, "torch": torch.__version__, "cpus": os.cpu_count()},
                 "epochs": args.epochs, "latent_dim": args.latent_dim}
    out["baseline"] = run_baseline(args.data_dir, args.epochs, args.latent_dim, args.seed)
    b = out["baseline"]
    print(f"baseline: {b['wall_seconds']:.1f} s, test -ELBO {b['test_neg_elbo']:.2f}", file=sys.stderr)
    split = load_dataset("mnist", data_dir=args.data_dir)
    if args.lab in ("same", "both"):
        cfg = RunConfig(model=ModelConfig(hidden=(400,), latent_dim=args.latent_dim),
                        train=TrainConfig(epochs=args.epochs, batch_size=128, lr=1e-3, lr_schedule="constant",
                                          lr_warmup=0.0, output_bias_init=False, seed=args.seed, threads=args.threads),
                        data=MNIST)
        s = out["lab_same_recipe"] = run_lab(split, cfg)
        out["speedup_same_recipe"] = s["samples_per_sec"] / b["samples_per_sec"]
        out["wall_ratio_same_recipe"] = b["wall_seconds"] / s["wall_seconds"]
        out["neg_elbo_gap_same_recipe"] = s["test_neg_elbo"] - b["test_neg_elbo"]
        print(f"lab same recipe: {s['wall_seconds']:.1f} s, test -ELBO {s['test_neg_elbo']:.2f}", file=sys.stderr)
    if args.lab in ("default", "both"):
        d = out["lab_default"] = run_lab(split, lab_default(args.latent_dim, args.seed, args.threads,
                                                             b["wall_seconds"]))
        reach = next((c["wall"] for c in d["curve"] if c["test_neg_elbo"] <= b["test_neg_elbo"]), None)
        out["default_seconds_to_baseline_neg_elbo"] = reach
        out["default_fraction_of_baseline_wall"] = reach / b["wall_seconds"] if reach else None
        out["default_neg_elbo_after_baseline_wall"] = d["test_neg_elbo"]
        out["default_gain_nats"] = b["test_neg_elbo"] - d["test_neg_elbo"]
        print(f"lab default: {d['test_neg_elbo']:.2f} after {d['wall_seconds']:.1f} s", file=sys.stderr)
    if args.budget_2d > 0:
        two = out["lab_default_2d"] = run_lab(split, lab_default(2, args.seed, args.threads, args.budget_2d))
        print(f"lab default 2-D: {two['test_neg_elbo']:.2f} after {two['wall_seconds']:.1f} s", file=sys.stderr)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
