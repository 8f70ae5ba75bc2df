"""One input through the VAE, every intermediate kept: what the Inside page draws and a notebook can print.
A two-layer model's lower layer (q(z1 | x, z), p(z1 | z), eps1, z1 and their KL) is kept too (``ForwardPass.lower``).

``forward_pass(model, x)`` runs x -> encoder -> (mu, log sigma^2) -> sigma -> z = mu + sigma * eps ->
decoder -> x-hat for ONE image and returns every value on the way with the two loss terms for this
input, in nats: the reconstruction term -log p(x | z) at this z (a one-sample estimate, as in
training) and the KL of each latent dimension in closed form. ``eps`` can be given (frozen) or drawn
from ``seed``. ``posterior_cloud`` draws many z ~ q(z | x) and decodes them; ``ellipse`` gives the
k-sigma contour of the posterior on a 2-D map (the latent itself, or a linear projection of it).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .data import to_float
from .latent import device_of, inference, labels_for
from .losses import gaussian_kl, log_normal, log_prior, prior_kl_per_dim, recon_nll
from .models import VAE


@dataclass(frozen=True)
class LowerPass:
    """A two-layer model's lower layer z1 for this input (numpy [D] each): its posterior q(z1 | x, z) at the top
    layer's z, its conditional prior p(z1 | z), the draw and each dimension's KL between the two (closed form)."""

    mu: np.ndarray
    logvar: np.ndarray
    sigma: np.ndarray
    eps: np.ndarray
    z: np.ndarray
    prior_mu: np.ndarray
    prior_sigma: np.ndarray
    kl_per_dim: np.ndarray

    @property
    def kl(self) -> float:
        return float(self.kl_per_dim.sum())


@dataclass(frozen=True)
class ForwardPass:
    """Every value of one forward pass (numpy, float32; vectors are [D], images [C, H, W] in [0, 1])."""

    x: np.ndarray
    mu: np.ndarray
    logvar: np.ndarray
    sigma: np.ndarray
    eps: np.ndarray
    z: np.ndarray
    x_hat: np.ndarray           # the decoder's mean image at z: sigmoid(logits)
    recon: float                # -log p(x | z), nats, summed over pixels
    kl_per_dim: np.ndarray      # KL(q(z_j | x) || N(0, 1)), nats (VampPrior: against each dimension's marginal)
    log_q: float                # log q(z | x) at this z
    log_p: float                # log p(z) at this z
    kl_mixture: float | None = None  # VampPrior: KL(q || p) estimated from 1,000 draws (it does not split by dim)
    lower: LowerPass | None = None   # two layers: the lower layer (x_hat and recon are then decoded at [z1, z])

    @property
    def kl_top(self) -> float:
        """The top layer's KL against p(z)."""
        return float(self.kl_per_dim.sum()) if self.kl_mixture is None else self.kl_mixture

    @property
    def kl(self) -> float:
        """The whole KL: the top layer's, plus the lower layer's against p(z1 | z) with two layers."""
        return self.kl_top + (0.0 if self.lower is None else self.lower.kl)

    @property
    def neg_elbo(self) -> float:
        return self.recon + self.kl


def _one(model: VAE, x) -> torch.Tensor:
    # a copy: the caller's array may be read-only (a cached one)
    t = x.clone() if isinstance(x, torch.Tensor) else torch.as_tensor(np.array(x))
    if t.dtype == torch.uint8:
        t = to_float(t)
    t = t.float()
    if t.ndim == 2:
        t = t[None]
    cfg = model.cfg
    if tuple(t.shape) != (cfg.channels, cfg.image_size, cfg.image_size):
        raise ValueError(f"the input is {tuple(t.shape)}; this model takes one {cfg.channels}x{cfg.image_size}x"
                         f"{cfg.image_size} image (uint8 0-255 or float 0-1)")
    if not torch.isfinite(t).all() or t.min() < 0 or t.max() > 1:
        raise ValueError("pixel values must be finite and within 0..1 (or uint8 0..255)")
    return t[None].to(device_of(model))


LOWER_SEED = 7_000_003     # a two-layer model's lower eps is seed + this: its own stream, never the top layer's


def draw_eps(latent_dim: int, seed: int) -> np.ndarray:
    """The eps a seed stands for: N(0, I) of size ``latent_dim`` from its own generator (never the global one)."""
    g = torch.Generator().manual_seed(int(seed))
    return torch.randn(latent_dim, generator=g).numpy()


@inference
def forward_pass(model: VAE, x, *, eps: np.ndarray | None = None, seed: int = 0, label: int | None = None
                 ) -> ForwardPass:
    """One image (uint8 or float [C, H, W] / [H, W]) through the model; ``eps`` [D] frozen, else from ``seed``."""
    xt = _one(model, x)
    y = labels_for(model, label, 1)
    mu, logvar = model.encode(xt, y)
    prior = model.prior_params()
    d = mu.shape[1]
    e = draw_eps(d, seed) if eps is None else np.asarray(eps, np.float32)
    if e.shape != (d,):
        raise ValueError(f"eps must have {d} values (one per latent dimension), got shape {e.shape}")
    et = torch.as_tensor(e, dtype=mu.dtype, device=mu.device)[None]
    sigma = torch.exp(0.5 * logvar)
    z = mu + sigma * et
    lower = None
    if getattr(model, "lower", None) is not None:
        e1 = draw_eps(d, int(seed) + LOWER_SEED)
        low = model.lower(model.encoder.hidden(xt), z, torch.as_tensor(e1, device=mu.device)[None])
        logits = model.decode_layers(z, low.z)
        lower = LowerPass(*(t[0].cpu().numpy() for t in (low.mu, low.logvar, torch.exp(0.5 * low.logvar))), e1,
                          low.z[0].cpu().numpy(), low.prior_mu[0].cpu().numpy(),
                          torch.exp(0.5 * low.prior_logvar)[0].cpu().numpy(),
                          gaussian_kl(low.mu, low.logvar, low.prior_mu, low.prior_logvar)[0].cpu().numpy())
    else:
        logits = model.decode(z, y)
    recon = recon_nll(logits, xt, model.cfg, model.likelihood_sigma())
    return ForwardPass(
        x=xt[0].cpu().numpy(), mu=mu[0].cpu().numpy(), logvar=logvar[0].cpu().numpy(),
        sigma=sigma[0].cpu().numpy(), eps=e.astype(np.float32), z=z[0].cpu().numpy(),
        x_hat=torch.sigmoid(logits)[0].cpu().numpy(), recon=float(recon[0]),
        kl_per_dim=prior_kl_per_dim(mu, logvar, prior)[0].cpu().numpy(),
        log_q=float(log_normal(z, mu, logvar)[0]), log_p=float(log_prior(z, prior)[0]),
        kl_mixture=None if prior is None else _mixture_kl(mu, logvar, prior, seed), lower=lower)


def _mixture_kl(mu: torch.Tensor, logvar: torch.Tensor, prior, seed: int, n: int = 1000) -> float:
    """KL(q(z|x) || p(z)) for a mixture prior, the mean of log q - log p over ``n`` draws of its own generator."""
    g = torch.Generator().manual_seed(int(seed) + 1)
    zs = mu + torch.exp(0.5 * logvar) * torch.randn(n, mu.shape[1], generator=g).to(mu.device)   # [n, D]
    return float((log_normal(zs, mu, logvar) - log_prior(zs, prior)).mean())


@inference
def posterior_cloud(model: VAE, x, n: int = 50, *, seed: int = 0, label: int | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """``n`` draws z ~ q(z | x) [n, D] and their decoded mean images [n, C, H, W] (two layers: each z decoded with
    its own draw z1 ~ q(z1 | x, z))."""
    if not 1 <= n <= 10_000:
        raise ValueError(f"n must be 1..10000, got {n}")
    xt = _one(model, x)
    y = labels_for(model, label, 1)
    mu, logvar = model.encode(xt, y)
    g = torch.Generator().manual_seed(int(seed))
    eps = torch.randn(n, mu.shape[1], generator=g).to(mu.device)
    z = mu + torch.exp(0.5 * logvar) * eps
    if getattr(model, "lower", None) is not None:      # both layers drawn: z1 ~ q(z1 | x, z) for each z
        low = model.lower(model.encoder.hidden(xt).expand(n, -1), z, torch.randn(z.shape, generator=g).to(z.device))
        return z.cpu().numpy(), torch.sigmoid(model.decode_layers(z, low.z)).cpu().numpy()
    pics = torch.sigmoid(model.decode(z, None if y is None else y.expand(n)))
    return z.cpu().numpy(), pics.cpu().numpy()


def ellipse(center_2d, sigma: np.ndarray, k: float, components: np.ndarray | None = None,
            points: int = 72) -> np.ndarray:
    """The k-sigma contour [points, 2] of a posterior N(mu, diag(sigma^2)) seen on a 2-D map through the
    linear map ``components`` [2, D] (None: the first two dimensions), around ``center_2d`` (mu on the map).

    The covariance on the map is C diag(sigma^2) C^T; the contour is its eigenvectors scaled by
    k times the square roots of its eigenvalues."""
    sigma = np.asarray(sigma, np.float64)
    c = np.eye(2, len(sigma)) if components is None else np.asarray(components, np.float64)
    cov = c @ np.diag(sigma ** 2) @ c.T
    vals, vecs = np.linalg.eigh(cov)
    t = np.linspace(0, 2 * math.pi, points)
    circle = np.stack([np.cos(t), np.sin(t)])
    curve = (vecs @ (np.sqrt(np.maximum(vals, 0))[:, None] * circle)).T * k
    return (curve + np.asarray(center_2d, np.float64)).astype(np.float32)


def chi2_2d_mass(k: float) -> float:
    """Share of a 2-D Gaussian's mass inside its k-sigma ellipse: 1 - exp(-k^2 / 2) (39% at 1, 86% at 2)."""
    return 1.0 - math.exp(-k * k / 2)
