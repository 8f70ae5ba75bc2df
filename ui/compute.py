"""Inference the pages ask for, cached per run and data set.

``st.cache_data`` keys on ``run_key`` (path + modification time) and the data key; the
model and images are underscore arguments, so they are not hashed. All calls go through
``vae.latent`` / ``vae.evaluate``, which run without autograd in eval mode and leave the
shared model as it was.
"""
from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from vae import latent
from vae.data import ImageData
from vae.evaluate import evaluate
from vae.models import VAE

from . import settings


def configure_torch() -> None:
    """The server's torch thread count, in the calling thread (``settings.pin_native_threads`` says why it is per
    thread); a few microseconds when it is already right."""
    n = settings.torch_threads()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


@st.cache_data(show_spinner="Encoding the test images…", max_entries=16)
def encode(_model: VAE, _test: ImageData, run_key: str, data_key: str) -> dict[str, np.ndarray]:
    """Posterior means and log-variances of the test images: {"mu", "logvar"}: [N, D]."""
    return latent.encode(_model, _test)


@st.cache_data(show_spinner="Scoring every test image…", max_entries=16)
def per_image(_model: VAE, _test: ImageData, run_key: str, data_key: str) -> dict[str, np.ndarray]:
    """Per-image -ELBO, reconstruction and KL (nats), and the mean reconstructions as uint8 [N, C, H, W]
    (a quarter of the float size: the cache hands out a copy on every call)."""
    scores = evaluate(_model, _test, per_image=True, seed=0)["per_image"]
    recons = (latent.reconstruct(_model, _test) * 255).round().astype(np.uint8)
    return {**{k: np.asarray(v) for k, v in scores.items()}, "recons": recons}


@st.cache_data(show_spinner=False, max_entries=64)
def posterior_samples(_model: VAE, _test: ImageData, run_key: str, data_key: str, index: int, samples: int,
                      seed: int) -> np.ndarray:
    """``samples`` decodes of z ~ q(z | x_index): [S, C, H, W]."""
    one = ImageData(x=_test.x[index:index + 1], y=None if _test.y is None else _test.y[index:index + 1])
    return latent.reconstruct(_model, one, samples=samples, seed=seed)[0]


@st.cache_data(show_spinner="Projecting the latent means…", max_entries=16)
def projection(mu: np.ndarray, method: str, run_key: str, data_key: str) -> tuple[np.ndarray, dict]:
    """2-D points for the map and the projection's parameters (PCA: mean and components)."""
    pts, proj = latent.project(mu, "tsne" if method == "tsne" else "pca", seed=0)
    return pts, {"method": proj.method, "mean": proj.mean, "components": proj.components}


def transform(params: dict, z: np.ndarray) -> np.ndarray | None:
    """Place new latents on the map (None for t-SNE, which cannot)."""
    proj = latent.Projection(params["method"], params["mean"], params["components"])
    try:
        return proj.transform(np.atleast_2d(z))
    except ValueError:
        return None


@st.cache_data(show_spinner=False, max_entries=32)
def manifold(_model: VAE, run_key: str, n: int, dims: tuple[int, int], label: int | None) -> np.ndarray:
    """Decoded images over an n x n grid of prior quantiles in ``dims``: [n*n, C, H, W]."""
    return latent.manifold_grid(_model, n, dims=dims, y=label)


@st.cache_data(show_spinner=False, max_entries=32)
def uniform_tiles(_model: VAE, run_key: str, n: int, extent: float, dims: tuple[int, int],
                  label: int | None) -> np.ndarray:
    """Decoded images tiling [-extent, extent]^2 evenly (tile centres), top row = largest z[dims[1]]:
    one image [n*S, n*S(, C)] uint8 with no padding, for the latent pad's background."""
    d = _model.cfg.latent_dim
    c = (np.arange(n) + 0.5) / n * 2 * extent - extent
    z = np.zeros((n * n, d), np.float32)
    for r in range(n):
        for col in range(n):
            z[r * n + col, dims[0]] = c[col]
            z[r * n + col, dims[1]] = c[n - 1 - r]
    return latent.image_grid(latent.decode(_model, z, label), n, pad=0)


@st.cache_data(show_spinner=False, max_entries=64)
def interpolation(_model: VAE, run_key: str, za: tuple[float, ...], zb: tuple[float, ...], steps: int, method: str,
                  label: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Latent path [T, D] and decoded frames [T, C, H, W] from za to zb."""
    return latent.interpolate(_model, np.asarray(za), np.asarray(zb), steps, method=method, y=label)


@st.cache_data(show_spinner=False, max_entries=64)
def prior_samples(_model: VAE, run_key: str, n: int, seed: int, temperature: float,
                  labels: tuple[int, ...] | None) -> tuple[np.ndarray, np.ndarray]:
    """n draws from the prior and their decodes: ([n, D], [n, C, H, W])."""
    return latent.sample_prior(_model, n, seed=seed, temperature=temperature,
                               y=None if labels is None else np.asarray(labels))


@st.cache_data(show_spinner=False, max_entries=256)
def decode_one(_model: VAE, run_key: str, z: tuple[float, ...], label: int | None) -> np.ndarray:
    """One latent decoded on the server: [C, H, W]."""
    return latent.decode(_model, np.asarray(z, np.float32)[None], label)[0]


@st.cache_data(show_spinner=False, max_entries=64)
def decode_many(_model: VAE, run_key: str, zs: tuple[tuple[float, ...], ...], label: int | None) -> np.ndarray:
    """Several latents decoded on the server: [S, C, H, W]."""
    return latent.decode(_model, np.asarray(zs, np.float32), label)
