"""Anomalies: per-image scores and the AUROC of a class left out of training against the classes seen.

Five scores, all "higher = more anomalous": the -ELBO; the same per unit of ink; the -ELBO corrected for input
complexity (Serra et al. 2020); the importance-weighted -log p(x) (Burda et al. 2016), a tighter likelihood;
and the code's surprise, -log p(mu(x)) under a Gaussian mixture fitted to the training images' codes with one
component per seen class: an image whose code no seen class would produce is one the model has no place for,
however simple (and so likely) its pixels are."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ..data import DataSplit, ImageData
from ..evaluate import evaluate
from ..latent import encode
from ..models import VAE


def anomaly_scores(model: VAE, test: ImageData, *, seed: int = 0, binarized: bool = False) -> np.ndarray:
    """Per-image -ELBO (nats) of ``test``: higher = more anomalous. [N]."""
    return evaluate(model, test, per_image=True, seed=seed, binarized=binarized)["per_image"]["neg_elbo"]


@torch.no_grad()
def latent_class_scores(model: VAE, reference: ImageData, test: ImageData, *, ridge: float = 1e-4) -> np.ndarray:
    """-log p(mu(x)) per test image [N] (nats) under a Gaussian mixture fitted to the reference (training) images'
    codes, one full-covariance component per class they hold, weighted by the class's share: a generative
    classifier on the codes (Lee et al. 2018's class-conditional Gaussians, on a VAE's means). A code that no
    seen class would produce scores high even when its pixels are simple and likely."""
    if reference.y is None or len(reference) == 0:
        raise ValueError("the latent class score needs labelled reference (training) images")
    ref_mu = torch.from_numpy(encode(model, reference)["mu"]).double()
    test_mu = torch.from_numpy(encode(model, test)["mu"]).double()
    y = reference.y.long()
    eye = torch.eye(ref_mu.shape[1], dtype=torch.float64)
    comps = []
    for c in torch.unique(y):
        a = ref_mu[y == c]
        if a.shape[0] < 2:
            continue
        cov = torch.cov(a.T) + ridge * eye
        dist = torch.distributions.MultivariateNormal(a.mean(0), covariance_matrix=cov)
        comps.append(dist.log_prob(test_mu) + math.log(a.shape[0] / ref_mu.shape[0]))
    if not comps:
        raise ValueError("the latent class score needs at least two reference images of one class")
    return (-torch.logsumexp(torch.stack(comps, 1), 1)).float().numpy()


def top_anomalies(scores: np.ndarray, n: int = 16) -> np.ndarray:
    """Indices of the ``n`` highest scores, highest first."""
    return np.argsort(-scores, kind="stable")[:n]


def without_class(data: DataSplit, holdout: int) -> DataSplit:
    """The same data with class ``holdout`` removed from the training split (the test split is kept)."""
    if data.train.y is None:
        raise ValueError("holding out a class needs labels")
    if not 0 <= holdout < data.num_classes:
        raise ValueError(f"the held-out class must be 0..{data.num_classes - 1}, got {holdout}")
    keep = data.train.y != holdout
    return DataSplit(data.name, data.source, ImageData(data.train.x[keep], data.train.y[keep]), data.test,
                     data.class_names)


def holdout_auroc(scores: np.ndarray, y: np.ndarray, holdout: int) -> float:
    """AUROC of ``scores`` separating class ``holdout`` (positive) from the rest."""
    from sklearn.metrics import roc_auc_score
    return float(roc_auc_score((np.asarray(y) == holdout).astype(int), scores))


def holdout_anomaly(model: VAE, test: ImageData, holdout: int, *, seed: int = 0, top: int = 16,
                    reference: ImageData | None = None, iw_samples: int = 0) -> dict[str, Any]:
    """Score ``test`` with a model trained without ``holdout``: AUROC of each score, per-class mean -ELBO, top
    anomalies by -ELBO. ``reference`` (the labelled training images) adds the latent class score; ``iw_samples``
    > 1 the importance-weighted likelihood."""
    ev = evaluate(model, test, per_image=True, seed=seed, iw_samples=iw_samples)["per_image"]
    scores = ev["neg_elbo"]
    y = test.y.numpy()
    top_idx = top_anomalies(scores, top)
    per_class = {str(int(c)): float(scores[y == c].mean()) for c in np.unique(y)}
    extra: dict[str, Any] = {}
    if "nll_iw" in ev:
        extra["auroc_iw_nll"] = holdout_auroc(ev["nll_iw"], y, holdout)
        extra["iw_samples"] = iw_samples
    if reference is not None:
        extra["auroc_latent_class"] = holdout_auroc(latent_class_scores(model, reference, test), y, holdout)
    return {"holdout_class": holdout, "auroc": holdout_auroc(scores, y, holdout),
            "auroc_per_pixel_normalised": _auroc_normalised(scores, test, y, holdout),
            "auroc_complexity_corrected": holdout_auroc(complexity_corrected(scores, test.x), y, holdout), **extra,
            "mean_score_per_class": per_class, "top_indices": top_idx.tolist(),
            "top_labels": y[top_idx].tolist(), "top_scores": scores[top_idx].tolist(),
            "holdout_share_of_top": float((y[top_idx] == holdout).mean()), "scores": scores}


def _auroc_normalised(scores: np.ndarray, test: ImageData, y: np.ndarray, holdout: int) -> float:
    """AUROC of -ELBO divided by the image's ink (sum of pixels): a crude correction for the known
    bias of likelihood scores towards simple images (Nalisnick et al. 2019)."""
    ink = test.x.reshape(test.x.shape[0], -1).float().sum(1).numpy() / 255.0
    return holdout_auroc(scores / np.maximum(ink, 1.0), y, holdout)


def complexity_bits(x: torch.Tensor) -> np.ndarray:
    """Code length in bits of each uint8 image [N, C, H, W] under a generic lossless compressor
    (zlib level 9 on the raw bytes, header excluded): a measure of the image's complexity. [N]."""
    import zlib
    arr = x.numpy()
    empty = len(zlib.compress(b"", 9))
    return np.array([8.0 * (len(zlib.compress(a.tobytes(), 9)) - empty) for a in arr])


def complexity_corrected(scores: np.ndarray, x: torch.Tensor) -> np.ndarray:
    """-ELBO (nats) minus the image's generic code length (nats): Serra et al. 2020's input-complexity
    correction. Likelihood scores rank simple images (a 1, a 7) as typical whatever the model saw; this
    asks how much *better* than a general-purpose compressor the model codes the image."""
    return scores - complexity_bits(x) * math.log(2.0)
