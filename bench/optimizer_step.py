"""Milliseconds per training step, split into forward, backward, gradient norm and Adam step, for
torch's default CPU Adam (a loop over the parameters) against the fused kernel VAE Lab uses
(``vae.train.adam``), side by side in one process on the same model and batch. Prints one JSON object.

    python bench/optimizer_step.py --threads 2 --hidden 1024 --batch-size 256
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from vae import losses
from vae.cli.common import widths
from vae.config import ModelConfig
from vae.models import build_model
from vae.train import adam, grad_norm

PHASES = ("forward", "backward", "grad_norm", "adam_step")


def time_steps(model, opt, x, steps: int, warmup: int = 20) -> dict[str, float]:
    params = list(model.parameters())
    spent = dict.fromkeys(PHASES, 0.0)
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        out = model(x)
        loss = losses.training_loss(losses.elbo_terms(out.recon_logits, x, out.mu, out.logvar, model.cfg))
        t1 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t2 = time.perf_counter()
        grad_norm(params, 0.0)
        t3 = time.perf_counter()
        opt.step()
        t4 = time.perf_counter()
        if i >= warmup:
            for k, (a, b) in zip(PHASES, ((t0, t1), (t1, t2), (t2, t3), (t3, t4))):
                spent[k] += b - a
    ms = {k: 1000 * v / steps for k, v in spent.items()}
    ms["total"] = sum(ms.values())
    ms["samples_per_sec"] = x.shape[0] * 1000 / ms["total"]
    return ms


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--hidden", type=widths, default=(1024,))
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--steps", type=int, default=300)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = ModelConfig(hidden=args.hidden, decoder_hidden=())
    x = (torch.rand(args.batch_size, 1, 28, 28, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    out = {"threads": args.threads, "hidden": list(args.hidden), "batch_size": args.batch_size}
    for name, make in (("torch_default_adam", lambda ps: torch.optim.Adam(ps, lr=1e-3)),
                       ("fused_adam", lambda ps: adam(ps, lr=1e-3))):
        torch.manual_seed(0)
        model = build_model(cfg)
        out[name] = {k: round(v, 3) for k, v in time_steps(model, make(model.parameters()), x, args.steps).items()}
    out["adam_step_ratio"] = out["torch_default_adam"]["adam_step"] / out["fused_adam"]["adam_step"]
    out["samples_per_sec_ratio"] = out["fused_adam"]["samples_per_sec"] / out["torch_default_adam"]["samples_per_sec"]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
