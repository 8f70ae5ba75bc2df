"""Held-out evaluation: -ELBO (nats per image, bits per dim), its parts, an
importance-weighted log p(x) (Burda et al. 2016), active units and per-image scores
(``evaluate(..., per_image=True)``).

All under ``torch.no_grad()`` in eval mode, restoring the caller's mode. The -ELBO uses one
posterior sample per image, as the pytorch/examples VAE reports it; the sampling noise comes
from a seeded generator so the same run and data give the same number.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from . import losses
from .config import ModelConfig, TrainConfig
from .data import ImageData, to_float
from .models import VAE

ACTIVE_UNIT_THRESHOLD = 0.01  # Burda et al. 2016: Cov_x(E_q[z_d | x]) > 0.01
UNUSED_KL_NATS = 0.05         # a latent dimension whose mean KL is under this carries (almost) nothing: pages
                              # grey it out and the doctor counts it as shut when active units are not recorded


def fixed_binarized(x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Binarise uint8 images once, reproducibly: uint8 0/255 of the same shape."""
    gen = torch.Generator().manual_seed(seed + 7919)
    p = to_float(x)
    return (torch.rand(p.shape, generator=gen) < p).to(torch.uint8) * 255


def test_view(test: ImageData, cfg: TrainConfig) -> ImageData:
    """The held-out images as a run is scored on them: binarised once with a fixed seed (the run's) when the
    run trains on dynamically binarised pixels, else as they are. Every evaluation of a run goes through this."""
    if not cfg.binarize:
        return test
    return ImageData(x=fixed_binarized(test.x, seed=cfg.seed), y=test.y)


@torch.no_grad()
def mean_image_nats(x: torch.Tensor, cfg: ModelConfig, sigma: torch.Tensor | None = None) -> float:
    """-log p(x) per image (nats) under the model that ignores its latent code: every image decoded to the mean
    of ``x`` (uint8 [N, C, H, W]), KL = 0. It is the -ELBO a fully collapsed VAE of this shape reaches, so
    ``mean_image_nats - neg_elbo`` is what the latent code buys; the doctor reads it as the zero point."""
    if x.shape[0] == 0:
        return float("nan")
    total = torch.zeros(x.shape[1:], dtype=torch.float64)
    for i in range(0, x.shape[0], 4096):
        total += x[i:i + 4096].sum(0, dtype=torch.float64)
    mean = (total / (x.shape[0] * 255.0)).float().clamp(1e-4, 1 - 1e-4)[None]     # [1, C, H, W]
    logits = (torch.log(mean) - torch.log1p(-mean))
    nll = sum(float(losses.recon_nll(logits.expand(len(xb), *logits.shape[1:]), to_float(xb), cfg, sigma).sum())
              for xb in x.split(4096))
    return nll / x.shape[0]


def _randn(shape, gen: torch.Generator, device) -> torch.Tensor:
    return torch.randn(shape, generator=gen).to(device)


@torch.no_grad()
def evaluate(model: VAE, data: ImageData, *, iw_samples: int = 0, batch_size: int = 500, binarized: bool = False,
             seed: int = 0, device: torch.device | str | None = None, per_image: bool = False,
             return_latent: bool = False) -> dict[str, Any]:
    """Evaluate on ``data`` (uint8 images); returns a JSON-ready dict.

    Keys: ``neg_elbo, recon, kl`` (nats per image), ``bits_per_dim``, ``active_units``,
    ``kl_per_dim`` (list; for the VampPrior, against each dimension's marginal: ``losses.kl_to_marginals``),
    ``n_test``, ``mean_image_nats`` (the zero point: see :func:`mean_image_nats`);
    ``nll_iw`` and ``iw_samples`` when ``iw_samples > 1``;
    ``per_image`` (dict of numpy arrays ``neg_elbo, recon, kl``, and ``nll_iw`` with ``iw_samples``) when
    asked; ``latent`` (``mu`` numpy [N, D], ``logvar``, ``y``) when asked.
    ``binarized=True`` binarises the images once with a fixed seed first.
    """
    cfg = model.cfg
    device = torch.device(device) if device is not None else next(model.parameters()).device
    x_all = fixed_binarized(data.x, seed) if binarized else data.x
    if x_all.shape[0] == 0:
        raise ValueError("the evaluation set is empty")
    if cfg.conditional and data.y is None:
        raise ValueError("a conditional model needs labelled test data")
    was_training = model.training
    model.eval()
    try:
        sigma = model.likelihood_sigma()
        sigma = None if sigma is None else sigma.to(device)
        scores = _scores(model, x_all, data.y if cfg.conditional else None, iw_samples, batch_size, seed, device,
                         sigma)
    finally:
        model.train(was_training)
    recon, kl, mu, logvar = scores["recon"], scores["kl"], scores["mu"], scores["logvar"]
    neg_elbo, n = recon + kl, x_all.shape[0]
    prior = model.prior_params()
    kld = losses.prior_kl_per_dim(mu, logvar, None if prior is None else tuple(t.cpu() for t in prior)).mean(0)
    act = mu.var(0, unbiased=False) > ACTIVE_UNIT_THRESHOLD if n > 1 else torch.zeros(cfg.latent_dim, dtype=torch.bool)
    out: dict[str, Any] = {
        "neg_elbo": float(neg_elbo.mean()), "recon": float(recon.mean()), "kl": float(kl.mean()),
        "bits_per_dim": losses.bits_per_dim(float(neg_elbo.mean()), cfg),
        "active_units": int(act.sum()), "kl_per_dim": [float(v) for v in kld], "n_test": int(n),
        "mean_image_nats": mean_image_nats(x_all, cfg, sigma),
    }
    if "kl_top" in scores:          # two layers: each layer's KL, the lower one's per dimension and active units
        kl_low = scores["kl_per_dim_lower"]
        out.update(kl_per_layer=[float(scores["kl_top"].mean()), float(kl_low.sum(1).mean())],
                   kl_per_dim_lower=[float(v) for v in kl_low.mean(0)],
                   active_units_lower=int((scores["mu_lower"].var(0, unbiased=False) > ACTIVE_UNIT_THRESHOLD).sum())
                   if n > 1 else 0)
    if iw_samples > 1:
        out.update(nll_iw=float(scores["nll_iw"].mean()), iw_samples=int(iw_samples))
        out["bits_per_dim_iw"] = losses.bits_per_dim(out["nll_iw"], cfg)
    if per_image:
        out["per_image"] = {"neg_elbo": neg_elbo.numpy(), "recon": recon.numpy(), "kl": kl.numpy(),
                            **({"nll_iw": scores["nll_iw"].numpy()} if iw_samples > 1 else {})}
    if return_latent:
        out["latent"] = {"mu": mu.numpy(), "logvar": logvar.numpy(),
                         "y": data.y.numpy() if data.y is not None else None}
    return out


def _scores(model: VAE, x_all: torch.Tensor, y_all: torch.Tensor | None, iw_samples: int, batch_size: int, seed: int,
            device, sigma) -> dict[str, torch.Tensor]:
    """Per-image ``recon``, ``kl`` (and ``nll_iw``), and the posteriors ``mu``, ``logvar``, in batches (CPU)."""
    gen = torch.Generator().manual_seed(seed)
    gen_iw = torch.Generator().manual_seed(seed + 1)  # separate stream: the -ELBO is the same with or without IW
    prior = model.prior_params()           # the VampPrior's components, once (None for N(0, I))
    parts: dict[str, list[torch.Tensor]] = {"recon": [], "kl": [], "mu": [], "logvar": [], "nll_iw": [],
                                            "kl_top": [], "kl_per_dim_lower": [], "mu_lower": []}
    two = getattr(model, "lower", None) is not None          # a foreign model has one layer and no encoder
    for i in range(0, x_all.shape[0], batch_size):
        x = to_float(x_all[i:i + batch_size]).to(device)
        y = y_all[i:i + batch_size].to(device) if y_all is not None else None
        h = model.encoder.hidden(x) if two else None
        mu, logvar = model.encoder.code(h) if two else model.encode(x, y)
        z = mu + _randn(mu.shape, gen, device) * torch.exp(0.5 * logvar)
        if not two:
            low, logits = None, model.decode(z, y)
        else:
            low = model.lower(h, z, _randn(mu.shape, gen, device))
            logits = model.decode_layers(z, low.z)
            parts["mu_lower"].append(model.lower.mean(h, mu).cpu())   # E[z1 | x] at the top layer's mean
        terms = losses.elbo_terms(logits, x, mu, logvar, model.cfg, sigma, z=z, prior=prior, lower=low)
        for k, v in terms.items():
            if k in parts:
                parts[k].append(v.cpu())
        parts["mu"].append(mu.cpu())
        parts["logvar"].append(logvar.cpu())
        if iw_samples > 1:
            parts["nll_iw"].append(_iw_nll(model, x, y, mu, logvar, iw_samples, gen_iw, sigma, prior=prior, h=h).cpu())
    return {k: torch.cat(v) for k, v in parts.items() if v}


def _iw_nll(model: VAE, x: torch.Tensor, y: torch.Tensor | None, mu: torch.Tensor, logvar: torch.Tensor, k: int,
            gen: torch.Generator, sigma: torch.Tensor | None, chunk_elems: int = 4_000_000, *, prior=None,
            h: torch.Tensor | None = None) -> torch.Tensor:
    """-log p(x) ~= -(logsumexp_k [log p(x|z_k) + log p(z_k) - log q(z_k|x)] - log k): [B].

    Two layers (``h``: the encoder's last hidden layer [B, H]): each weight is
    log p(x|z1_k, z_k) + log p(z1_k|z_k) + log p(z_k) - log q(z1_k|x, z_k) - log q(z_k|x).
    Samples are drawn in chunks so that the decoder's output stays under ``chunk_elems`` floats.
    """
    cfg = model.cfg
    b, d = mu.shape
    per = max(1, chunk_elems // max(1, b * cfg.data_dim))
    log_w = []
    done = 0
    while done < k:
        m = min(per, k - done)
        eps = _randn((m, b, d), gen, mu.device)
        z = mu.unsqueeze(0) + eps * torch.exp(0.5 * logvar).unsqueeze(0)          # [m, B, D]
        yy = y.repeat(m) if y is not None else None
        flat = z.reshape(m * b, d)
        if h is None:
            logits, lower_ratio = model.decode(flat, yy), 0.0
        else:
            low = model.lower(h.repeat(m, 1), flat, _randn((m * b, d), gen, mu.device))
            logits, lower_ratio = model.decode_layers(flat, low.z), losses.lower_log_ratio(low).view(m, b)
        xx = x.unsqueeze(0).expand(m, *x.shape).reshape(m * b, *x.shape[1:])
        log_px_z = -losses.recon_nll(logits, xx, cfg, sigma).view(m, b)
        log_pz = losses.log_prior(z, prior)
        log_qz = losses.log_normal(z, mu.unsqueeze(0), logvar.unsqueeze(0))
        log_w.append(log_px_z + log_pz - log_qz + lower_ratio)
        done += m
    lw = torch.cat(log_w, 0)                                                     # [k, B]
    return -(torch.logsumexp(lw, 0) - math.log(k))
