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


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor, prior_mu: torch.Tensor, prior_logvar: torch.Tensor
                ) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(prior_mu, prior_sigma^2)) per element, closed form (the lower layer of a two-layer
    model against its conditional prior p(z1 | z)): same shape as ``mu``."""
    return 0.5 * (prior_logvar - logvar + (logvar.exp() + (mu - prior_mu).pow(2)) * torch.exp(-prior_logvar) - 1.0)


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


def log_normal_mixture(z: torch.Tensor, mu_k: torch.Tensor, logvar_k: torch.Tensor) -> torch.Tensor:
    """log (1/K) sum_k N(z; mu_k, diag(exp(logvar_k))) for z [..., D] and components [K, D]: [...].

    The squared distance to every component comes from two matrix products, never a [..., K, D] tensor (B x K x D
    floats per step would cost more than the rest of the step). They run in float64:
    expanding (z - mu)^2 cancels large terms when a component is narrow, and float64 costs nothing at this size."""
    iv = torch.exp(-logvar_k.double())                                   # [K, D]
    m = mu_k.double()
    zz = z.reshape(-1, z.shape[-1]).double()
    quad = (zz * zz) @ iv.T - 2 * zz @ (m * iv).T + (m * m * iv).sum(1)
    lp = -0.5 * (quad + logvar_k.double().sum(1) + z.shape[-1] * LOG_2PI)  # [N, K]
    return (torch.logsumexp(lp, -1) - math.log(mu_k.shape[0])).view(z.shape[:-1]).to(z.dtype)


def kl_to_marginals(mu: torch.Tensor, logvar: torch.Tensor, mu_k: torch.Tensor, logvar_k: torch.Tensor
                    ) -> torch.Tensor:
    """KL of each dimension of q against a Gaussian with the mean and variance of the mixture prior's marginal on
    that dimension: [B, D]. With a mixture prior the KL does not split by dimension, so this is the per-dimension
    reading (a dimension the encoder ignores has q equal to that marginal, and about 0 here); it does not sum to
    the KL."""
    m = mu_k.mean(0)
    v = (logvar_k.exp() + mu_k * mu_k).mean(0) - m * m
    return 0.5 * (torch.log(v) - logvar + (logvar.exp() + (mu - m).pow(2)) / v - 1)


def prior_kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor, prior) -> torch.Tensor:
    """The KL per dimension [B, D] against the model's prior: the closed form against N(0, 1) (``prior`` None), or
    :func:`kl_to_marginals` for a mixture ``prior = (mu_k, logvar_k)``."""
    return kl_per_dim(mu, logvar) if prior is None else kl_to_marginals(mu, logvar, *prior)


def prior_terms(mu: torch.Tensor, logvar: torch.Tensor, z: torch.Tensor | None, prior
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """(``kl`` [B], ``kl_per_dim`` [B, D]) against the model's prior: closed form for N(0, I) (``prior`` None);
    for a mixture ``prior = (mu_k, logvar_k)``, the one-sample estimate log q(z|x) - log p(z) at the drawn ``z``
    ([B, D], or [k, B, D]: averaged over the k samples) and :func:`prior_kl_per_dim`."""
    kld = prior_kl_per_dim(mu, logvar, prior)
    if prior is None:
        return kld.sum(1), kld
    zs = z.unsqueeze(0) if z.dim() == 2 else z
    kl = (log_normal(zs, mu.unsqueeze(0), logvar.unsqueeze(0)) - log_normal_mixture(zs, *prior)).mean(0)
    return kl, kld


def log_prior(z: torch.Tensor, prior) -> torch.Tensor:
    """log p(z) summed over the last dim: N(0, I) when ``prior`` is None, else the mixture ``(mu_k, logvar_k)``."""
    return log_std_normal(z) if prior is None else log_normal_mixture(z, *prior)


def elbo_terms(logits: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, cfg: ModelConfig,
               sigma: torch.Tensor | None = None, *, z: torch.Tensor | None = None, prior=None, lower=None
               ) -> dict[str, torch.Tensor]:
    """Per-image terms: ``recon`` [B], ``kl`` [B], ``kl_per_dim`` [B, D], ``neg_elbo`` [B] (nats).

    ``prior``: None for N(0, I) (the KL in closed form), or a mixture ``(mu_k, logvar_k)`` (``VAE.prior_params``),
    whose KL is estimated at the decoded sample ``z`` (:func:`prior_terms`). ``lower`` (``vae.models.Lower``, two
    layers): ``kl`` is then both layers' KL, the lower one KL(q(z1|x,z) || p(z1|z)) in closed form at the drawn z,
    and the terms add ``kl_top`` [B], ``kl_lower`` [B] and ``kl_per_dim_lower`` [B, D]; ``kl_per_dim`` stays the top
    layer's."""
    recon = recon_nll(logits, x, cfg, sigma)
    kl, kld = prior_terms(mu, logvar, z, prior)
    if lower is None:
        return {"recon": recon, "kl": kl, "kl_per_dim": kld, "neg_elbo": recon + kl}
    kld_low = gaussian_kl(lower.mu, lower.logvar, lower.prior_mu, lower.prior_logvar)
    kl_low = kld_low.sum(1)
    return {"recon": recon, "kl": kl + kl_low, "kl_per_dim": kld, "neg_elbo": recon + kl + kl_low,
            "kl_top": kl, "kl_lower": kl_low, "kl_per_dim_lower": kld_low}


def iwae_terms(logits: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, z: torch.Tensor,
               cfg: ModelConfig, sigma: torch.Tensor | None = None, *, prior=None, lower=None
               ) -> dict[str, torch.Tensor]:
    """The importance-weighted bound (Burda et al. 2016, eq. 8) with ``k`` samples per image, and the usual terms.

    logits: [k * B, C, H, W] (sample-major, as ``VAE.forward(x, k=k)`` returns them); z: [k, B, D].
    log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x);  ``neg_iw`` [B] = -(logsumexp_i log w_i - log k),
    an upper bound on -log p(x) that tightens as k grows (k = 1: a one-sample estimate of the -ELBO).
    ``recon`` [B] is the mean over the k samples, ``kl`` [B] the closed form (with a mixture ``prior``, the
    estimate of :func:`prior_terms` over the k samples), ``neg_elbo`` their sum. With ``lower`` (two layers, rows
    [k * B, D] sample-major) each weight also has log p(z1_i|z_i) - log q(z1_i|x, z_i) and ``kl`` adds the lower
    layer's closed-form KL averaged over the k samples.
    """
    z = z.unsqueeze(0) if z.dim() == 2 else z           # one sample per image: [B, D] -> [1, B, D]
    k, b = z.shape[0], z.shape[1]
    xx = x.unsqueeze(0).expand(k, *x.shape).reshape(k * b, *x.shape[1:])
    nll = recon_nll(logits, xx, cfg, sigma).view(k, b)
    log_w = -nll + log_prior(z, prior) - log_normal(z, mu.unsqueeze(0), logvar.unsqueeze(0))
    kl, kld = prior_terms(mu, logvar, z, prior)
    recon = nll.mean(0)
    out = {"recon": recon, "kl": kl, "kl_per_dim": kld}
    if lower is not None:
        log_w = log_w + lower_log_ratio(lower).view(k, b)
        kld_low = gaussian_kl(lower.mu, lower.logvar, lower.prior_mu, lower.prior_logvar).view(k, b, -1).mean(0)
        out.update(kl=kl + kld_low.sum(1), kl_top=kl, kl_lower=kld_low.sum(1), kl_per_dim_lower=kld_low)
    return {**out, "neg_elbo": recon + out["kl"], "neg_iw": -(torch.logsumexp(log_w, 0) - math.log(k))}


def lower_log_ratio(lower) -> torch.Tensor:
    """log p(z1 | z) - log q(z1 | x, z) at the drawn z1 of a two-layer model's ``lower`` terms: [N]."""
    return log_normal(lower.z, lower.prior_mu, lower.prior_logvar) - log_normal(lower.z, lower.mu, lower.logvar)


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
        kl = sum(torch.clamp(terms[name].mean(0), min=free_bits).sum()
                 for name in ("kl_per_dim", "kl_per_dim_lower") if name in terms)
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
