"""Latent-space tools: encode, decode, grids, interpolation, traversal, prior samples, 2-D projections.

Everything runs under ``torch.no_grad()`` in eval mode (the caller's mode is restored) and
returns plain numpy arrays: images are float32 in [0, 1], shaped [N, C, H, W].
"""
from __future__ import annotations

import functools
from typing import Literal

import numpy as np
import torch

from .data import ImageData, to_float
from .models import VAE


def inference(fn):
    """Run ``fn(model, ...)`` without autograd and in eval mode, restoring the model's mode."""
    @functools.wraps(fn)
    def wrapper(model: VAE, *args, **kwargs):
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                return fn(model, *args, **kwargs)
        finally:
            model.train(was_training)
    return wrapper


def labels_for(model: VAE, y, n: int) -> torch.Tensor | None:
    if not model.cfg.conditional:
        return None
    if y is None:
        raise ValueError("this model is conditional: give a label (an int or [N] ints)")
    t = torch.as_tensor(y, dtype=torch.long).reshape(-1)
    if t.numel() == 1:
        t = t.expand(n)
    if t.shape != (n,):
        raise ValueError(f"expected {n} labels, got {t.numel()}")
    if (t < 0).any() or (t >= model.cfg.num_classes).any():
        raise ValueError(f"labels must be 0..{model.cfg.num_classes - 1}")
    return t


def device_of(model: VAE) -> torch.device:
    return next(model.parameters()).device


@inference
def encode(model: VAE, data: ImageData | torch.Tensor, *, batch_size: int = 1000) -> dict[str, np.ndarray]:
    """Posterior means and log-variances of uint8 images: ``{"mu": [N, D], "logvar": [N, D]}``."""
    x_all = data.x if isinstance(data, ImageData) else data
    y_all = data.y if isinstance(data, ImageData) else None
    mus, lvs = [], []
    for i in range(0, x_all.shape[0], batch_size):
        x = to_float(x_all[i:i + batch_size]).to(device_of(model))
        y = labels_for(model, None if y_all is None else y_all[i:i + batch_size], x.shape[0])
        mu, lv = model.encode(x, y)
        mus.append(mu.cpu())
        lvs.append(lv.cpu())
    d = model.cfg.latent_dim
    return {"mu": torch.cat(mus).numpy() if mus else np.zeros((0, d), np.float32),
            "logvar": torch.cat(lvs).numpy() if lvs else np.zeros((0, d), np.float32)}


@inference
def decode(model: VAE, z, y=None, *, batch_size: int = 4096) -> np.ndarray:
    """Pixels (sigmoid of the logits) for latents ``z`` [N, D]: [N, C, H, W] float32 in [0, 1]."""
    z = torch.as_tensor(np.asarray(z, dtype=np.float32))
    if z.ndim == 1:
        z = z[None]
    if z.ndim != 2 or z.shape[1] != model.cfg.latent_dim:
        raise ValueError(f"z must be [N, {model.cfg.latent_dim}], got {list(z.shape)}")
    yy = labels_for(model, y, z.shape[0])
    out = []
    for i in range(0, z.shape[0], batch_size):
        zb = z[i:i + batch_size].to(device_of(model))
        yb = yy[i:i + batch_size].to(zb.device) if yy is not None else None
        out.append(torch.sigmoid(model.decode(zb, yb)).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, model.cfg.channels, model.cfg.image_size,
                                                        model.cfg.image_size), np.float32)


@inference
def reconstruct(model: VAE, data: ImageData, *, samples: int = 0, seed: int = 0) -> np.ndarray:
    """Decode the posterior mean (``samples=0``: [N, C, H, W]) or ``samples`` posterior draws per image
    ([N, S, C, H, W]), showing what the encoder is unsure of. A two-layer model decodes both layers' posterior:
    the lower layer's mean (or a draw) given the top layer's."""
    if getattr(model, "lower", None) is not None:
        return _reconstruct_layers(model, data, samples, seed)
    enc = encode(model, data)
    mu, lv = torch.from_numpy(enc["mu"]), torch.from_numpy(enc["logvar"])
    y = data.y if model.cfg.conditional else None
    if samples <= 0:
        return decode(model, mu, y)
    gen = torch.Generator().manual_seed(seed)
    n, d = mu.shape
    z = mu[:, None] + torch.randn((n, samples, d), generator=gen) * torch.exp(0.5 * lv)[:, None]
    yy = None if y is None else y.repeat_interleave(samples)
    imgs = decode(model, z.reshape(n * samples, d), yy)
    return imgs.reshape(n, samples, *imgs.shape[1:])


def _reconstruct_layers(model: VAE, data: ImageData, samples: int, seed: int, batch_size: int = 1000) -> np.ndarray:
    gen = torch.Generator().manual_seed(seed)
    s, out = max(samples, 1), []
    for i in range(0, data.x.shape[0], batch_size):
        x = to_float(data.x[i:i + batch_size]).to(device_of(model))
        h = model.encoder.hidden(x)
        mu, lv = model.encoder.code(h)
        if samples <= 0:
            out.append(torch.sigmoid(model.decode_layers(mu, model.lower.mean(h, mu))).cpu())
            continue
        z = (mu[:, None] + torch.randn((len(x), s, mu.shape[1]), generator=gen).to(mu.device)
             * torch.exp(0.5 * lv)[:, None]).reshape(-1, mu.shape[1])
        low = model.lower(h.repeat_interleave(s, 0), z, torch.randn(z.shape, generator=gen).to(mu.device))
        out.append(torch.sigmoid(model.decode_layers(z, low.z)).cpu())
    c, side = model.cfg.channels, model.cfg.image_size
    imgs = torch.cat(out).numpy() if out else np.zeros((0, c, side, side), np.float32)
    return imgs if samples <= 0 else imgs.reshape(-1, samples, c, side, side)


def prior_quantile_grid(n: int, *, dims: tuple[int, int] = (0, 1), latent_dim: int = 2,
                        lo: float = 0.05, hi: float = 0.95) -> np.ndarray:
    """Latents on an n x n grid of prior quantiles (Kingma & Welling 2014, fig. 4): [n*n, D].

    Row r, column c sets ``z[dims[0]] = Phi^-1(q_c)`` and ``z[dims[1]] = Phi^-1(q_(n-1-r))`` (up is larger);
    other dimensions are 0 (the prior's mode).
    """
    q = torch.linspace(lo, hi, n)
    v = torch.distributions.Normal(0.0, 1.0).icdf(q)
    z = torch.zeros(n * n, latent_dim)
    for r in range(n):
        for c in range(n):
            z[r * n + c, dims[0]] = v[c]
            z[r * n + c, dims[1]] = v[n - 1 - r]
    return z.numpy()


def manifold_grid(model: VAE, n: int = 15, *, dims: tuple[int, int] = (0, 1), y=None) -> np.ndarray:
    """Decoded images over the prior-quantile grid: [n*n, C, H, W]."""
    return decode(model, prior_quantile_grid(n, dims=dims, latent_dim=model.cfg.latent_dim), y)


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation between vectors a and b for each t: [T, D]. The direction turns at a constant rate
    along the great circle from a's to b's and the length goes linearly from |a| to |b|, so the path keeps the
    ends' lengths (Shoemake's formula on the vectors themselves would leave that circle when they differ in length,
    far out when they point nearly opposite ways). Linear when an end is 0 or both point the same way (or opposite
    ways in one dimension); through a perpendicular direction when they point opposite ways."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na < 1e-12 or nb < 1e-12:
        return lerp(a, b, t)
    ua, ub = a / na, b / nb
    omega = np.arccos(np.clip(np.dot(ua, ub), -1.0, 1.0))
    if omega < 1e-6 or (np.pi - omega < 1e-6 and a.size == 1):
        return lerp(a, b, t)
    t = np.asarray(t, np.float64)[:, None]
    if np.pi - omega < 1e-6:      # opposite: every great circle through a passes b; take one through an axis
        axis = np.eye(a.size)[np.argmin(np.abs(ua))]
        perp = axis - np.dot(axis, ua) * ua
        turn = np.cos(t * omega) * ua + np.sin(t * omega) * perp / np.linalg.norm(perp)
    else:
        turn = (np.sin((1 - t) * omega) * ua + np.sin(t * omega) * ub) / np.sin(omega)
    return (((1 - t) * na + t * nb) * turn).astype(np.float32)


def lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    t = np.asarray(t, np.float64)[:, None]
    return ((1 - t) * np.asarray(a, np.float64) + t * np.asarray(b, np.float64)).astype(np.float32)


def interpolate(model: VAE, z_a, z_b, steps: int = 10, *, method: Literal["linear", "spherical"] = "linear",
                y=None) -> tuple[np.ndarray, np.ndarray]:
    """Latent path from z_a to z_b (both ends included) and its decoded images: ([T, D], [T, C, H, W])."""
    if steps < 2:
        raise ValueError("interpolation needs at least 2 steps")
    t = np.linspace(0.0, 1.0, steps)
    path = slerp(z_a, z_b, t) if method == "spherical" else lerp(z_a, z_b, t)
    return path, decode(model, path, y)


def traverse(model: VAE, dim: int, *, z0=None, span: float = 3.0, steps: int = 9,
             y=None) -> tuple[np.ndarray, np.ndarray]:
    """Vary one latent dimension from -span to +span around ``z0`` (default 0): ([T], [T, C, H, W])."""
    d = model.cfg.latent_dim
    if not 0 <= dim < d:
        raise ValueError(f"dim must be 0..{d - 1}")
    base = np.zeros(d, np.float32) if z0 is None else np.asarray(z0, np.float32).reshape(d)
    vals = np.linspace(-span, span, steps, dtype=np.float32)
    z = np.repeat(base[None], steps, 0)
    z[:, dim] = vals
    return vals, decode(model, z, y)


def sample_prior(model: VAE, n: int, *, seed: int = 0, y=None,
                 temperature: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """n draws z ~ p(z) at temperature T (N(0, T^2 I) for the standard prior; ``VAE.sample_prior``) and their
    decoded images: ([n, D], [n, C, H, W])."""
    gen = torch.Generator().manual_seed(seed)
    z = model.sample_prior(n, gen, temperature).cpu().numpy()
    return z, decode(model, z, y)


class Projection:
    """A fitted map from D-dim latents to 2-D: PCA (default, linear, reusable on new points) or t-SNE."""

    def __init__(self, method: Literal["pca", "tsne", "identity"], mean: np.ndarray | None = None,
                 components: np.ndarray | None = None):
        self.method, self.mean, self.components = method, mean, components

    def transform(self, z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, np.float32)
        if self.method == "identity":
            return z[:, :2]
        if self.method != "pca":
            raise ValueError("t-SNE cannot place new points; re-run project() on all of them")
        return (z - self.mean) @ self.components.T

    def inverse(self, p: np.ndarray) -> np.ndarray:
        """A latent for a 2-D point (PCA: the point on the plane of the two components)."""
        p = np.asarray(p, np.float32)
        if self.method == "identity":
            return p
        if self.method != "pca":
            raise ValueError("t-SNE has no inverse")
        return p @ self.components + self.mean


def project(z: np.ndarray, method: Literal["pca", "tsne"] = "pca", *, seed: int = 0) -> tuple[np.ndarray, Projection]:
    """Project latents [N, D] to [N, 2]. D <= 2 is returned as is (padded with zeros for D = 1)."""
    z = np.asarray(z, np.float32)
    if z.shape[1] == 1:
        z = np.concatenate([z, np.zeros_like(z)], 1)
    if z.shape[1] == 2:
        return z, Projection("identity")
    if method == "tsne":
        from sklearn.manifold import TSNE
        perplexity = float(min(30.0, max(2.0, (z.shape[0] - 1) / 3)))
        p = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(z)
        return p.astype(np.float32), Projection("tsne")
    mean = z.mean(0)
    _, _, vt = np.linalg.svd(z - mean, full_matrices=False)
    comps = vt[:2]
    # fix the sign so the projection is deterministic: largest-magnitude loading positive
    signs = np.sign(comps[np.arange(2), np.abs(comps).argmax(1)])
    comps = comps * signs[:, None]
    proj = Projection("pca", mean, comps)
    return proj.transform(z), proj


def image_grid(images: np.ndarray, nrow: int | None = None, *, pad: int = 1, scale: int = 1,
               pad_value: float = 1.0) -> np.ndarray:
    """Tile [N, C, H, W] floats in [0, 1] into one uint8 image [H', W', C] (C = 1 squeezed to 2-D).
    ``scale`` upsamples with nearest neighbour so small digits stay crisp."""
    images = np.asarray(images, np.float32)
    n, c, h, w = images.shape
    nrow = nrow or int(np.ceil(np.sqrt(n)))
    ncol = nrow
    rows = int(np.ceil(n / ncol))
    grid = np.full((c, rows * (h + pad) + pad, ncol * (w + pad) + pad), pad_value, np.float32)
    for i in range(n):
        r, cc = divmod(i, ncol)
        grid[:, pad + r * (h + pad):pad + r * (h + pad) + h, pad + cc * (w + pad):pad + cc * (w + pad) + w] = images[i]
    out = (np.clip(grid, 0, 1) * 255).round().astype(np.uint8).transpose(1, 2, 0)
    if scale > 1:
        out = out.repeat(scale, 0).repeat(scale, 1)
    return out[..., 0] if c == 1 else out
