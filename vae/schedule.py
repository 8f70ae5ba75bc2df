"""The schedules and the optimiser every training stage uses: pure functions of the config and the step.

``learning_rate(cfg, step, total, elapsed)`` is the one learning-rate schedule (a linear warm-up, then constant or a
cosine decay, by steps or by the clock under a time budget) and ``kl_weight`` the KL warm-up; ``adam`` is Adam with
torch's fused kernel where the device has one; ``grad_norm`` measures (and clips) the gradients.
"""
from __future__ import annotations

import math

import torch

from .config import TrainConfig


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
    """The schedule: a linear warm-up over the first ``lr_warmup`` of the run, then constant or a cosine decay to
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



def adam(params, **kw) -> torch.optim.Adam:
    """Adam with torch's fused kernel where the device has one (on a CPU the default loops over the parameters one
    at a time; fused, the optimiser step is 3-4x cheaper with the same update rule)."""
    params = list(params)
    try:
        return torch.optim.Adam(params, fused=True, **kw)
    except (RuntimeError, TypeError, ValueError):  # no fused kernel for this device or torch
        return torch.optim.Adam(params, **kw)


def grad_norm(params: list[torch.nn.Parameter], clip: float) -> float:
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
