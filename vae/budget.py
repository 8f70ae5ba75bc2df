"""What a model may cost, checked on its config before anything is built.

A config can come from a stranger (an uploaded run, the app's forms): a 2 KB ``config.json`` asking for 300 hidden
layers of 4,096 units would have the server allocate tens of gigabytes before its weights were even read. So every
place a config enters (``vae.runs.load_run``, the pipeline, the app's uploads, forms and jobs) asks :func:`check`
first: the number of hidden layers, their widths, the latent size and the parameter count (counted on PyTorch's
``meta`` device, which allocates nothing) against a :class:`Budget`. The default budget is what a run folder may
hold at all (its weights file is capped at ``vae.runs.MAX_WEIGHTS_BYTES``); the app narrows it to what a class
server affords (``ui.settings``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .config import ConfigError, RunConfig
from .kinds import builder


@dataclass(frozen=True)
class Budget:
    max_params: int = 128_000_000     # 512 MB of float32 weights, the largest weights file a run folder may hold
    max_layers: int = 16              # hidden layers of the MLP encoder, and of its decoder
    max_width: int = 4096             # units (or channels) of one layer
    max_latent: int = 128
    max_prior_components: int = 5000
    setting: str = ""                 # how to raise it, for the message (e.g. "VAE_LAB_MAX_PARAMS")

    def where(self, name: str) -> str:
        return f" ({self.setting}{name})" if self.setting else ""


DEFAULT = Budget()


def expected_tensors(config: RunConfig) -> dict[str, tuple[int, ...]]:
    """The name and shape of every tensor of the model ``config`` describes, found without allocating them (the
    model is built on PyTorch's ``meta`` device)."""
    with torch.device("meta"):
        model = builder(config.kind)(config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def parameter_count(config: RunConfig) -> int:
    """The parameters of the model ``config`` describes, counted without allocating them."""
    return sum(math.prod(s) for s in expected_tensors(config).values())


def check(config: RunConfig, budget: Budget = DEFAULT) -> int:
    """Refuse a config whose model is over ``budget`` with one line naming the setting; returns its parameters."""
    m = config.model
    layers = {"model.hidden": len(m.hidden), "model.decoder_hidden": len(m.decoder_hidden)}
    for name, n in layers.items():
        if n > budget.max_layers:
            raise ConfigError(f"{name} has {n} layers, over the budget of {budget.max_layers}"
                              f"{budget.where('_LAYERS')}")
    widest = max([*m.hidden, *m.decoder_hidden, m.fc_dim if m.arch == "conv" else 0])
    if widest > budget.max_width:
        raise ConfigError(f"a layer of {widest:,} units is over the budget of {budget.max_width:,} per layer"
                          f"{budget.where('_WIDTH')}")
    if m.latent_dim > budget.max_latent:
        raise ConfigError(f"model.latent_dim {m.latent_dim} is over the budget of {budget.max_latent}"
                          f"{budget.where('_LATENT')}")
    if m.prior == "vamp" and m.prior_components > budget.max_prior_components:
        raise ConfigError(f"model.prior_components {m.prior_components:,} is over the budget of "
                          f"{budget.max_prior_components:,}")
    n = parameter_count(config)
    if n > budget.max_params:
        raise ConfigError(f"the model has {n:,} parameters, over the budget of {budget.max_params:,}"
                          f"{budget.where('_PARAMS')}")
    return n
