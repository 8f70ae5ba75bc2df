"""One point of the recipe search behind VAE Lab's default: train one MLP recipe on full MNIST for a
fixed number of seconds and print its test -ELBO after every epoch as one JSON object.

The table in bench/README.md was made with it, one recipe per invocation and nothing else running
(``--threads 2``), or two invocations side by side with ``--threads 1`` each (compare those only
with each other). For example, the default 20-D recipe and the one before it:

    python bench/recipe_search.py --data-dir ../shared/data --budget 98
    python bench/recipe_search.py --data-dir ../shared/data --budget 98 --decoder-hidden mirror \\
        --batch-size 256 --lr 2e-3 --lr-warmup 0 --no-bias-init
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from vae.cli.common import decoder_widths, widths
from vae.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from vae.data import load_dataset
from vae.train import fit


def main(argv=None) -> None:
    m, t = ModelConfig(), TrainConfig()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, required=True, help="folder holding MNIST/raw/*.gz")
    p.add_argument("--budget", type=float, default=98.0, help="seconds of training (evaluations included)")
    p.add_argument("--latent-dim", type=int, default=m.latent_dim)
    p.add_argument("--hidden", type=widths, default=m.hidden, help="encoder widths")
    p.add_argument("--decoder-hidden", type=decoder_widths, default=None, help="decoder widths or 'mirror'")
    p.add_argument("--activation", default=m.activation)
    p.add_argument("--batch-size", type=int, default=t.batch_size)
    p.add_argument("--lr", type=float, default=t.lr)
    p.add_argument("--lr-warmup", type=float, default=t.lr_warmup)
    p.add_argument("--lr-min-factor", type=float, default=t.lr_min_factor)
    p.add_argument("--no-bias-init", action="store_true")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    model = ModelConfig(latent_dim=args.latent_dim, hidden=args.hidden, decoder_hidden=args.decoder_hidden,
                        activation=args.activation)
    train = TrainConfig(epochs=100_000, batch_size=args.batch_size, lr=args.lr, lr_warmup=args.lr_warmup,
                        lr_min_factor=args.lr_min_factor, output_bias_init=not args.no_bias_init,
                        time_budget=args.budget, threads=args.threads, seed=args.seed)
    config = RunConfig(model=model, train=train, data=DataConfig(name="mnist"))
    split = load_dataset("mnist", data_dir=args.data_dir)
    curve, t0 = [], time.perf_counter()
    res = fit(config, split, callback=lambda e: e["type"] == "epoch" and curve.append(
        [e["epoch"], round(time.perf_counter() - t0, 1), round(e["test"]["neg_elbo"], 2)]))
    last = res.history["epochs"][-1]
    print(json.dumps({"decoder": list(model.decoder_widths), "encoder": list(model.hidden),
                      "test_neg_elbo": curve[-1][2], "epochs": curve[-1][0],
                      "samples_per_sec": round(last["samples_per_sec"]), "active_units": last["active_units"],
                      "curve": curve, "config": config.to_dict()}))


if __name__ == "__main__":
    main()
