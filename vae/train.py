"""Training a run: what each kind of run trains (its *plan*: a model and its stages) and ``fit``, which trains it
through the one loop (``vae.loop.Trainer``).

``fit(config, data, callback=..., cancel=...)`` plans ``config`` (a fresh model, seeded, and its stages) and trains
it, or continues a run from its ``Checkpoint`` (``resume=(weights, checkpoint)``). The loop's names are exported
here too (``Trainer``, ``Stage``, ``learning_rate``, ...), so ``vae.train`` is the one place to import training from.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

import torch

from .budget import DEFAULT as DEFAULT_BUDGET
from .budget import Budget
from .budget import check as check_budget
from .config import RunConfig, TrainConfig
from .data import DataSplit, to_float
from .distributed import Dist
from .loop import MAX_MAP_POINTS, N_RECON, Callback, Checkpoint, Stage, Trainer, TrainResult
from .models import VAE, build_model
from .objectives import for_config
from .runs import load_state
from .schedule import adam, grad_norm, kl_weight, learning_rate, progress

__all__ = ["MAX_MAP_POINTS", "N_RECON", "Checkpoint", "Plan", "Stage", "TrainResult", "Trainer", "adam", "fit",
           "grad_norm", "init_output_bias", "init_prior", "kl_weight", "learning_rate", "plan", "progress", "train",
           "vae_plan"]


@dataclass
class Plan:
    """What a run of one ``config.kind`` trains: a fresh model (initialised) and its stages; ``report(result)``
    adds the kind's own figures to ``metrics.json``."""

    model: VAE
    stages: list[Stage]
    report: Callable[[TrainResult], dict[str, Any]] | None = None


#: How each kind of run is planned, as ``"module:function"`` (``function(config, data) -> Plan``): named, not
#: imported, because the use cases are built on the core.
PLANS = {"vae": "vae.train:vae_plan", "semisup": "vae.usecases.semisup:plan"}


def vae_plan(config: RunConfig, data: DataSplit) -> Plan:
    """A plain VAE: the model of ``config.model``, its output bias at the mean pixel and its VampPrior's
    pseudo-inputs at training images (when asked), trained in one stage."""
    model = build_model(config.model)
    if config.train.output_bias_init:
        init_output_bias(model, data.train.x)
    init_prior(model, data.train.x, config.train.seed)
    return Plan(model, [Stage("", for_config(config.train, config.model), config.train)])


def plan(config: RunConfig, data: DataSplit, budget: Budget = DEFAULT_BUDGET) -> Plan:
    """The model (seeded with ``config.train.seed``) and stages of a run of ``config.kind``, once its config is
    within ``budget`` (``vae.budget``)."""
    check_budget(config, budget)
    module, _, name = PLANS[config.kind].partition(":")
    torch.manual_seed(config.train.seed)
    return getattr(importlib.import_module(module), name)(config, data)


def fit(config: RunConfig, data: DataSplit, *, callback: Callback | None = None, cancel: Any = None,
        resume: tuple[dict[str, torch.Tensor], Checkpoint] | None = None,
        on_epoch_end: Callable[["Trainer"], None] | None = None, dist: Dist | None = None,
        prepared: Plan | None = None) -> TrainResult:
    """Plan and train ``config`` on ``data``; with ``resume`` (the weights and ``Checkpoint`` of a run's last
    completed epoch), continue that run where it stopped."""
    p = prepared or plan(config, data)
    if resume is not None:
        load_state(p.model, resume[0], "checkpoint")
    return Trainer(p.model, data, p.stages, callback=callback, cancel=cancel,
                   resume=None if resume is None else resume[1], on_epoch_end=on_epoch_end, dist=dist).run()


def train(model: VAE, data: DataSplit, cfg: TrainConfig, **kw: Any) -> TrainResult:
    """Train ``model`` in place with ``cfg``'s objective (``Trainer``'s keywords: callback, cancel, resume, ...)."""
    return Trainer(model, data, [Stage("", for_config(cfg, model.cfg), cfg)], **kw).run()


@torch.no_grad()
def init_prior(model: VAE, x: torch.Tensor, seed: int) -> None:
    """Start a VampPrior's pseudo-inputs at randomly chosen training images (pixels kept in 0.05..0.95, so their
    logits stay finite and movable), as Tomczak & Welling's data initialisation does; no-op for N(0, I).
    ``x``: uint8 [N, C, H, W]."""
    if model.pseudo_inputs is None:
        return
    k = model.pseudo_inputs.shape[0]
    gen = torch.Generator().manual_seed(seed + 104729)
    pick = torch.randint(len(x), (k,), generator=gen)
    p = to_float(x[pick]).clamp(0.05, 0.95)
    model.pseudo_inputs.copy_(torch.log(p / (1 - p)).to(model.pseudo_inputs.device))


@torch.no_grad()
def init_output_bias(model: VAE, x: torch.Tensor) -> None:
    """Start the decoder's output bias at the logit of the mean training pixel (per pixel for an MLP, per channel
    for a conv decoder), so the first steps refine the mean image instead of learning it from grey.
    ``x``: uint8 [N, C, H, W]."""
    last = model.decoder.net[-1]
    if x.shape[0] == 0 or getattr(last, "bias", None) is None:
        return
    total = torch.zeros(x.shape[1:], dtype=torch.float64)
    for i in range(0, x.shape[0], 4096):               # in chunks: no float copy of the whole set
        total += x[i:i + 4096].sum(0, dtype=torch.float64)
    mean = (total / (x.shape[0] * 255.0)).float()     # [C, H, W]
    mean = mean.flatten() if model.cfg.arch == "mlp" else mean.mean(dim=(1, 2))
    if mean.shape != last.bias.shape:
        return
    mean = mean.clamp(1e-3, 1 - 1e-3)
    last.bias.copy_(torch.log(mean) - torch.log1p(-mean))
