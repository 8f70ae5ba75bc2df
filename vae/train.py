"""The training loop: data already in memory, events out, cancel in; never prints.

``fit(config, data, callback=..., cancel=...)`` builds a fresh model and trains it.
Subscribers (the CLI's progress bar, the app's worker, tests) receive plain dict events:

- ``start``: ``epochs, steps_per_epoch, total_steps, n_train, n_test, device, threads``
- ``step``: ``epoch, step, global_step, loss, recon, kl, beta, lr, grad_norm, samples_per_sec,
  elapsed, eta`` (every step)
- ``recon``: ``global_step, inputs, recons`` (uint8 numpy [K, C, H, W], fixed test images) every
  ``recon_every`` steps and at each epoch end
- ``epoch``: ``epoch, train{loss, recon, kl, neg_elbo}, test{neg_elbo, recon, kl}, kl_per_dim,
  active_units, elapsed, samples_per_sec, latent`` (for a 2-D latent: test means and labels)
- ``end``: ``status`` (completed | cancelled | failed), ``message``

A cancel request (``threading.Event``) is honoured before the next batch. A non-finite
loss or gradient stops the run before the optimiser step; the last good weights are kept.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from . import losses
from .config import RunConfig, TrainConfig
from .data import DataSplit, binarize, to_float
from .evaluate import evaluate, test_view
from .models import VAE, build_model
from .util import pick_device, set_threads

Callback = Callable[[dict[str, Any]], None]
N_RECON = 8          # images in each reconstruction snapshot
MAX_MAP_POINTS = 2000  # test points sent with each epoch event for a 2-D latent map


@dataclass
class TrainResult:
    model: VAE
    status: str                      # completed | cancelled | failed
    message: str
    history: dict[str, list] = field(default_factory=dict)  # "epochs": [...], "steps": [...]
    seconds: float = 0.0


def kl_weight(cfg: TrainConfig, global_step: int, steps_per_epoch: int) -> float:
    """beta, ramped linearly from 0 over ``warmup_epochs``."""
    if cfg.warmup_epochs <= 0:
        return cfg.beta
    return cfg.beta * min(1.0, global_step / (cfg.warmup_epochs * steps_per_epoch))


def progress(cfg: TrainConfig, global_step: int, total_steps: int, elapsed: float) -> float:
    """Fraction of the run done: by steps, or by the clock when a time budget is set (whichever is further)."""
    t = global_step / total_steps if total_steps > 0 else 1.0
    if cfg.time_budget > 0:
        t = max(t, elapsed / cfg.time_budget)
    return min(1.0, t)


def learning_rate(cfg: TrainConfig, global_step: int, total_steps: int, elapsed: float = 0.0) -> float:
    """Linear warm-up over the first ``lr_warmup`` of the run, then constant or cosine decay to
    ``lr_min_factor * lr`` at the end (by steps, or by the clock under a time budget)."""
    if total_steps <= 1:
        return cfg.lr
    t = progress(cfg, global_step, total_steps, elapsed)
    w = cfg.lr_warmup
    if w > 0 and t < w:
        return cfg.lr * max(0.01, t / w)
    if cfg.lr_schedule == "constant":
        return cfg.lr
    t = (t - w) / (1 - w)
    lo = cfg.lr * cfg.lr_min_factor
    return lo + 0.5 * (cfg.lr - lo) * (1 + math.cos(math.pi * t))


def fit(config: RunConfig, data: DataSplit, *, callback: Callback | None = None,
        cancel: threading.Event | None = None) -> TrainResult:
    """Seed, build a fresh model for ``config.model`` and train it on ``data``."""
    torch.manual_seed(config.train.seed)
    model = build_model(config.model)
    if config.train.output_bias_init:
        init_output_bias(model, data.train.x)
    return train(model, data, config.train, callback=callback, cancel=cancel)


@torch.no_grad()
def init_output_bias(model: VAE, x: torch.Tensor) -> None:
    """Start the decoder's output bias at the logit of the mean training pixel (per pixel for an
    MLP, per channel for a conv decoder), so the first steps refine the mean image instead of
    learning it from grey. ``x``: uint8 [N, C, H, W]. Its gain is measured in
    bench/recipe_ablation.sh (README, Benchmarks)."""
    last = model.decoder.net[-1]
    if x.shape[0] == 0 or getattr(last, "bias", None) is None:
        return
    total = torch.zeros(x.shape[1:], dtype=torch.float64)
    for i in range(0, x.shape[0], 4096):               # in chunks: no float copy of the whole set
        total += x[i:i + 4096].sum(0, dtype=torch.float64)
    mean = (total / (x.shape[0] * 255.0)).float()     # [C, H, W]
    if model.cfg.arch == "mlp":
        mean = mean.flatten()
    else:
        mean = mean.mean(dim=(1, 2))
    if mean.shape != last.bias.shape:
        return
    mean = mean.clamp(1e-3, 1 - 1e-3)
    last.bias.copy_(torch.log(mean) - torch.log1p(-mean))


def adam(params, **kw) -> torch.optim.Adam:
    """Adam with torch's fused kernel where the device has one.

    On a CPU, torch's default Adam loops over the parameters one at a time; the fused
    kernel makes the optimiser step about 3-4x cheaper (10-20% more samples per second for a
    784-1024 MLP at batch 256: bench/optimizer_step.py), with the same update rule.
    """
    params = list(params)
    try:
        return torch.optim.Adam(params, fused=True, **kw)
    except (RuntimeError, TypeError, ValueError):  # no fused kernel for this device or torch
        return torch.optim.Adam(params, **kw)


def _uint8_images(t: torch.Tensor) -> np.ndarray:
    return (t.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def _grad_norm(params: list[torch.nn.Parameter], clip: float) -> float:
    """Total gradient L2 norm (clipping in place when ``clip`` > 0)."""
    if clip > 0:
        return float(torch.nn.utils.clip_grad_norm_(params, clip))
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return 0.0
    total_norm = getattr(torch.nn.utils, "get_total_norm", None)  # torch >= 2.6: one fused pass
    if total_norm is not None:
        return float(total_norm(grads))
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))


def train(model: VAE, data: DataSplit, cfg: TrainConfig, *, callback: Callback | None = None,
          cancel: threading.Event | None = None) -> TrainResult:
    """Train ``model`` in place on ``data.train``; evaluate on ``data.test`` after each epoch."""
    emit = callback or (lambda e: None)
    threads = set_threads(cfg.threads)
    device = pick_device(cfg.device)
    model.to(device)
    mcfg = model.cfg
    gen = torch.Generator().manual_seed(cfg.seed)
    x_train = data.train.x                     # uint8 [N, C, H, W], stays on the CPU
    y_train = data.train.y if mcfg.conditional else None
    n = x_train.shape[0]
    if n == 0:
        raise ValueError("the training set is empty")
    bs = min(cfg.batch_size, n)
    steps_per_epoch = math.ceil(n / bs)
    total_steps = steps_per_epoch * cfg.epochs
    params = [p for p in model.parameters() if p.requires_grad]
    opt = adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    test_eval = test_view(data.test, cfg)
    recon_x = to_float(test_eval.x[:N_RECON]).to(device)
    recon_y = test_eval.y[:N_RECON].to(device) if (mcfg.conditional and test_eval.y is not None) else None

    history: dict[str, list] = {"epochs": [], "steps": []}
    emit({"type": "start", "epochs": cfg.epochs, "steps_per_epoch": steps_per_epoch, "total_steps": total_steps,
          "n_train": n, "n_test": int(data.test.x.shape[0]), "device": str(device), "threads": threads})
    status, message = "completed", f"trained {cfg.epochs} epochs"
    t0 = time.perf_counter()
    global_step = 0
    seen = 0
    train_time = 0.0                           # seconds inside the batch loop (no evaluation), for samples/s
    stop = False
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        t_loop = time.perf_counter()
        perm = torch.randperm(n, generator=gen)
        xs = x_train[perm]                     # one gather per epoch; batches are then views
        ys = y_train[perm] if y_train is not None else None
        sums = {"loss": 0.0, "recon": 0.0, "kl": 0.0}
        kl_dim_sum = torch.zeros(mcfg.latent_dim)
        count = 0
        for step in range(steps_per_epoch):
            if cancel is not None and cancel.is_set():
                status, message, stop = "cancelled", f"stopped by request at epoch {epoch}, step {step}", True
                break
            if cfg.time_budget > 0 and time.perf_counter() - t0 >= cfg.time_budget:
                status, stop = "completed", True
                message = f"time budget of {cfg.time_budget:g} s reached at epoch {epoch}"
                break
            lr = learning_rate(cfg, global_step, total_steps, time.perf_counter() - t0)
            for g in opt.param_groups:
                g["lr"] = lr
            beta = kl_weight(cfg, global_step, steps_per_epoch)
            xb = to_float(xs[step * bs:(step + 1) * bs])
            if cfg.binarize:
                xb = binarize(xb, gen)
            xb = xb.to(device, non_blocking=True)
            yb = ys[step * bs:(step + 1) * bs].to(device) if ys is not None else None
            out = model(xb, yb)
            terms = losses.elbo_terms(out.recon_logits, xb, out.mu, out.logvar, mcfg,
                                      model.sigma() if mcfg.likelihood == "gaussian" else None)
            loss = losses.training_loss(terms, beta=beta, free_bits=cfg.free_bits)
            if not torch.isfinite(loss.detach()):
                status, stop = "failed", True
                message = (f"training stopped: the loss became {float(loss.detach())} at epoch {epoch}, step {step}; "
                           "try a lower learning rate or gradient clipping (the last good weights are kept)")
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            gnorm = _grad_norm(params, cfg.grad_clip)
            if not math.isfinite(gnorm):
                status, stop = "failed", True
                message = (f"training stopped: non-finite gradients at epoch {epoch}, step {step}; "
                           "try a lower learning rate or gradient clipping (the last good weights are kept)")
                break
            opt.step()
            b = xb.shape[0]
            global_step += 1
            seen += b
            count += b
            loss_v = float(loss.detach())
            recon_m, kl_m = float(terms["recon"].detach().mean()), float(terms["kl"].detach().mean())
            sums["loss"] += loss_v * b
            sums["recon"] += recon_m * b
            sums["kl"] += kl_m * b
            kl_dim_sum += terms["kl_per_dim"].detach().sum(0).cpu()
            now = time.perf_counter()
            elapsed = now - t0
            busy = train_time + (now - t_loop)
            rate = seen / busy if busy > 0 else 0.0
            ev = {"type": "step", "epoch": epoch, "step": step + 1, "global_step": global_step,
                  "loss": loss_v, "recon": recon_m, "kl": kl_m, "beta": beta, "lr": lr, "grad_norm": gnorm,
                  "samples_per_sec": rate, "elapsed": elapsed,
                  "eta": (total_steps - global_step) * elapsed / global_step}
            emit(ev)
            if global_step % max(1, steps_per_epoch // 20) == 0 or step == steps_per_epoch - 1:
                history["steps"].append({k: ev[k] for k in ("epoch", "global_step", "loss", "recon", "kl", "beta",
                                                            "lr", "grad_norm", "elapsed")})
            if global_step % cfg.recon_every == 0:
                _emit_recon(model, recon_x, recon_y, emit, global_step)
        train_time += time.perf_counter() - t_loop
        if stop and status == "failed":
            break
        if count == 0:  # stopped before the first batch of this epoch
            break
        train_stats = {k: v / count for k, v in sums.items()}
        train_stats["neg_elbo"] = train_stats["recon"] + train_stats["kl"]
        record: dict[str, Any] = {"epoch": epoch, "partial": stop, "train": train_stats,
                                  "kl_per_dim": (kl_dim_sum / count).tolist(),
                                  "elapsed": time.perf_counter() - t0}
        if cfg.eval_every_epoch and test_eval.x.shape[0] > 0:
            ev_stats = evaluate(model, test_eval, binarized=False, seed=cfg.seed, device=device,
                                return_latent=mcfg.latent_dim == 2)
            latent = ev_stats.pop("latent", None)
            record["test"] = {k: ev_stats[k] for k in ("neg_elbo", "recon", "kl", "bits_per_dim")}
            record["active_units"] = ev_stats["active_units"]
        else:
            latent = None
        record["train_seconds"] = train_time
        record["samples_per_sec"] = seen / train_time if train_time > 0 else 0.0
        history["epochs"].append(record)
        ev = {"type": "epoch", **record}
        if latent is not None:
            k = min(MAX_MAP_POINTS, latent["mu"].shape[0])
            ev["latent"] = {"mu": latent["mu"][:k], "y": None if latent["y"] is None else latent["y"][:k]}
        emit(ev)
        _emit_recon(model, recon_x, recon_y, emit, global_step)
        if stop:
            break
    model.eval()
    seconds = time.perf_counter() - t0
    emit({"type": "end", "status": status, "message": message, "seconds": seconds})
    return TrainResult(model=model, status=status, message=message, history=history, seconds=seconds)


@torch.no_grad()
def _emit_recon(model: VAE, x: torch.Tensor, y: torch.Tensor | None, emit: Callback, global_step: int) -> None:
    if x.shape[0] == 0:
        return
    was_training = model.training
    model.eval()
    mu, _ = model.encode(x, y)
    rec = torch.sigmoid(model.decode(mu, y))
    model.train(was_training)
    emit({"type": "recon", "global_step": global_step, "inputs": _uint8_images(x), "recons": _uint8_images(rec)})
