"""Random-weight models for browser tests and the bench, rebuilt identically from (config, seed)."""
from __future__ import annotations

import json

import torch

from vae.config import ModelConfig, from_dict
from vae.models import VAE, build_model


def make_model(cfg: dict | str, seed: int = 0, scale: float = 3.0) -> VAE:
    """``cfg``: ModelConfig fields (dict or JSON). Decoder weights are scaled by ``scale`` so
    random-weight images span the whole 0..1 range instead of sitting near 0.5."""
    if isinstance(cfg, str):
        cfg = json.loads(cfg)
    torch.manual_seed(seed)
    model = build_model(from_dict(ModelConfig, cfg)).eval()
    with torch.no_grad():
        for p in model.decoder.parameters():
            p.mul_(scale)
    return model
