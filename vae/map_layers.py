"""What the latent map can draw over its points: each posterior's ellipse, the density of the encoded points,
the prior's "holes" (where the prior puts mass but no image was encoded), and the class-mean directions.

All of it works on the map's plane: the identity for a 2-D latent, the PCA plane otherwise (whose components
are orthonormal, so the prior N(0, I) projects to N(centre, I) there and its circles stay circles).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .latent import Projection


def posterior_ellipses(mu: np.ndarray, logvar: np.ndarray, proj: Projection, *, n_sigma: float = 1.0,
                       vertices: int = 40) -> np.ndarray:
    """Outlines of each posterior N(mu, diag(sigma^2)) on the map at ``n_sigma``: [N, vertices + 1, 2] (closed).

    On the PCA plane the projected covariance is C diag(sigma^2) C^T (C: the two components), a rotated ellipse;
    for a 2-D latent it is the axis-aligned diag(sigma^2)."""
    mu, var = np.asarray(mu, np.float64), np.exp(np.asarray(logvar, np.float64))
    centres = proj.transform(mu).astype(np.float64)
    if proj.method == "identity":
        cov = np.zeros((len(mu), 2, 2))
        cov[:, 0, 0], cov[:, 1, 1] = var[:, 0], var[:, 1]
    else:
        c = np.asarray(proj.components, np.float64)                  # [2, D]
        cov = np.einsum("id,nd,jd->nij", c, var, c)                 # [N, 2, 2]
    evals, evecs = np.linalg.eigh(cov)                              # per point: axes and their lengths
    t = np.linspace(0, 2 * math.pi, vertices + 1)
    circle = np.stack([np.cos(t), np.sin(t)], 0)                   # [2, V]
    axes = evecs * (n_sigma * np.sqrt(np.clip(evals, 0, None)))[:, None, :]
    return centres[:, None, :] + np.einsum("nij,jv->nvi", axes, circle)


@dataclass
class Density:
    xs: np.ndarray          # [G] cell centres across
    ys: np.ndarray          # [G] cell centres up
    encoded: np.ndarray     # [G, G] (row = y) density of the encoded points, per unit area (sums to ~1 over the plane)
    prior: np.ndarray       # [G, G] the prior's density on the plane, per unit area


def density(points: np.ndarray, centre: tuple[float, float], *, extent: float = 3.0, cells: int = 60,
            bandwidth: float | None = None) -> Density:
    """A Gaussian kernel density of the map's points over the square ``centre`` +- ``extent``, beside the
    prior's. The bandwidth defaults to half of Scott's rule for 2-D."""
    pts = np.asarray(points, np.float64)
    cx, cy = centre
    xs = np.linspace(cx - extent, cx + extent, cells)
    ys = np.linspace(cy - extent, cy + extent, cells)
    if bandwidth is None:     # half of Scott's rule: narrow enough to show the gaps between the classes
        bandwidth = max(0.05, 0.5 * float(pts.std(0).mean()) * max(1, len(pts)) ** (-1 / 6)) if len(pts) else 0.3
    # separable: exp(-(x-px)^2/2h^2) * exp(-(y-py)^2/2h^2), summed over points as a matrix product
    kx = np.exp(-0.5 * ((xs[None, :] - pts[:, :1]) / bandwidth) ** 2)      # [N, G]
    ky = np.exp(-0.5 * ((ys[None, :] - pts[:, 1:2]) / bandwidth) ** 2)     # [N, G]
    enc = ky.T @ kx / (max(1, len(pts)) * 2 * math.pi * bandwidth ** 2)     # [G(y), G(x)]
    gx, gy = np.meshgrid(xs - cx, ys - cy)
    prior = np.exp(-0.5 * (gx ** 2 + gy ** 2)) / (2 * math.pi)
    return Density(xs, ys, enc, prior)


@dataclass
class Hole:
    x: float                # on the map
    y: float
    prior: float            # the prior's density there (per unit area)
    encoded: float          # the encoded points' density there
    ratio: float            # prior / encoded: how many times likelier the prior is to sample here than the data
    nearest: int            # the map point (row of ``points``) nearest to the hole
    distance: float         # and its distance on the map


def holes(points: np.ndarray, centre: tuple[float, float], *, count: int = 6, radius: float = 2.0,
          min_gap: float = 0.6, dens: Density | None = None) -> list[Hole]:
    """The ``count`` places inside the prior's ``radius``-sigma circle where the prior is likeliest to sample
    relative to where images were encoded (largest prior / encoded density), at least ``min_gap`` apart:
    the points a sample from the prior can land on that the decoder was never trained to draw from."""
    pts = np.asarray(points, np.float64)
    d = dens or density(pts, centre)
    gx, gy = np.meshgrid(d.xs, d.ys)
    inside = (gx - centre[0]) ** 2 + (gy - centre[1]) ** 2 <= radius ** 2
    floor = d.prior.max() * 1e-6                                 # no division by zero far from every point
    score = np.where(inside, d.prior / (d.encoded + floor), -np.inf)
    chosen: list[Hole] = []
    for flat in np.argsort(-score, axis=None):
        if len(chosen) == count or not np.isfinite(score.flat[flat]):
            break
        r, c = np.unravel_index(flat, score.shape)
        x, y = float(d.xs[c]), float(d.ys[r])
        if any((x - h.x) ** 2 + (y - h.y) ** 2 < min_gap ** 2 for h in chosen):
            continue
        dist = np.hypot(pts[:, 0] - x, pts[:, 1] - y) if len(pts) else np.array([np.inf])
        j = int(np.argmin(dist))
        chosen.append(Hole(x, y, float(d.prior[r, c]), float(d.encoded[r, c]), float(score[r, c]), j,
                           float(dist[j])))
    return chosen


def class_means(mu: np.ndarray, labels: np.ndarray) -> dict[int, np.ndarray]:
    """Mean latent code of each class: {class: [D]}."""
    return {int(c): np.asarray(mu, np.float64)[labels == c].mean(0) for c in np.unique(labels)}


def along_class_direction(z0: np.ndarray, means: dict[int, np.ndarray], source: int | None, target: int,
                          strengths: np.ndarray) -> np.ndarray:
    """Latents z0 + s * (mean[target] - mean[source]) for each strength s: [S, D]. "More like a 7": s = 1 moves a
    code by the difference between the two class means (from the overall mean of the classes when the start has
    no class)."""
    start = np.mean(np.stack(list(means.values())), 0) if source is None else means[source]
    v = means[target] - start
    return (np.asarray(z0, np.float64)[None, :] + np.asarray(strengths, np.float64)[:, None] * v[None, :]).astype(
        np.float32)
