"""Loss terms as pure functions returning named tensors.

Conventions: every per-image quantity is a SUM over pixels (or latent dims), in nats;
a batch loss is the MEAN over images. ``bits_per_dim = nats / (D * ln 2)``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .config import ModelConfig

LOG_2PI = math.log(2 * math.pi)


def kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, 1)) per image and dimension, closed form: [B, D].

    Kingma & Welling 2014, Appendix B: -KL = 1/2 * sum(1 + log sigma^2 - mu^2 - sigma^2).
    """
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def recon_nll(logits: torch.Tensor, x: torch.Tensor, cfg: ModelConfig,
              sigma: torch.Tensor | None = None) -> torch.Tensor:
    """-log p(x | z) per image, summed over pixels: [B].

    logits, x: [B, C, H, W]; x in [0, 1].
    Bernoulli: binary cross-entropy on logits (stable; valid for continuous x too, as the
    standard MNIST recipe uses it). Gaussian: mean = sigmoid(logits), sigma per channel.
    """
    if cfg.likelihood == "bernoulli":
        return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
    if sigma is None:
        sigma = torch.full((cfg.channels,), cfg.gaussian_sigma, device=logits.device)
    s = sigma.to(logits.device).view(1, -1, 1, 1)
    mean = torch.sigmoid(logits)
    nll = 0.5 * ((x - mean) / s).pow(2) + torch.log(s) + 0.5 * LOG_2PI
    return nll.flatten(1).sum(1)


def log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag(exp(logvar))) summed over the last dim."""
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) / logvar.exp()).sum(-1)


def log_std_normal(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) summed over the last dim."""
    return -0.5 * (LOG_2PI + z.pow(2)).sum(-1)


def elbo_terms(logits: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, cfg: ModelConfig,
               sigma: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Per-image terms: ``recon`` [B], ``kl`` [B], ``kl_per_dim`` [B, D], ``neg_elbo`` [B] (nats)."""
    recon = recon_nll(logits, x, cfg, sigma)
    kld = kl_per_dim(mu, logvar)
    kl = kld.sum(1)
    return {"recon": recon, "kl": kl, "kl_per_dim": kld, "neg_elbo": recon + kl}


def iwae_terms(logits: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, z: torch.Tensor,
               cfg: ModelConfig, sigma: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The importance-weighted bound (Burda et al. 2016, eq. 8) with ``k`` samples per image, and the usual terms.

    logits: [k * B, C, H, W] (sample-major, as ``VAE.forward(x, k=k)`` returns them); z: [k, B, D].
    log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x);  ``neg_iw`` [B] = -(logsumexp_i log w_i - log k),
    an upper bound on -log p(x) that tightens as k grows (k = 1: a one-sample estimate of the -ELBO).
    ``recon`` [B] is the mean over the k samples, ``kl`` [B] the closed form, ``neg_elbo`` their sum.
    """
    z = z.unsqueeze(0) if z.dim() == 2 else z           # one sample per image: [B, D] -> [1, B, D]
    k, b = z.shape[0], z.shape[1]
    xx = x.unsqueeze(0).expand(k, *x.shape).reshape(k * b, *x.shape[1:])
    nll = recon_nll(logits, xx, cfg, sigma).view(k, b)
    log_w = -nll + log_std_normal(z) - log_normal(z, mu.unsqueeze(0), logvar.unsqueeze(0))
    kld = kl_per_dim(mu, logvar)
    recon, kl = nll.mean(0), kld.sum(1)
    return {"recon": recon, "kl": kl, "kl_per_dim": kld, "neg_elbo": recon + kl,
            "neg_iw": -(torch.logsumexp(log_w, 0) - math.log(k))}


def training_loss(terms: dict[str, torch.Tensor], *, beta: float = 1.0, free_bits: float = 0.0) -> torch.Tensor:
    """The scalar to minimise: mean over the batch of recon + beta * KL (or, for ``iwae_terms``, of the
    importance-weighted bound).

    With free bits (Kingma et al. 2016, IAF), each latent dimension's batch-mean KL is
    clamped below at ``free_bits`` nats, so the optimiser gains nothing from pushing a
    dimension's KL under that floor (guards against posterior collapse).
    """
    if "neg_iw" in terms:                  # the IWAE objective: the bound itself, no beta or free bits
        return terms["neg_iw"].mean()
    recon = terms["recon"].mean()
    if free_bits > 0:
        kl = torch.clamp(terms["kl_per_dim"].mean(0), min=free_bits).sum()
    else:
        kl = terms["kl"].mean()
    return recon + beta * kl


def bits_per_dim(nats_per_image: float, cfg: ModelConfig) -> float:
    """Convert nats per image to bits per pixel value.

    For the Gaussian likelihood the density is over x in [0, 1]; moving to the 8-bit scale
    [0, 256) divides the density by 256 per value, so D*ln(256) nats are added first
    (the usual convention for continuous models of 8-bit data).
    """
    d = cfg.data_dim
    nats = nats_per_image + (d * math.log(256.0) if cfg.likelihood == "gaussian" else 0.0)
    return nats / (d * math.log(2.0))
