"""Linear probe: a logistic regression on latent means against the same probe on raw pixels, by label budget."""
from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np

from ..data import DataSplit, ImageData
from ..latent import encode
from ..models import VAE
from .common import balanced_subset

DEFAULT_BUDGETS = (100, 600, 1000, 10000)


def _logreg(xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, yte: np.ndarray, *, seed: int = 0,
            c: float = 1.0) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    sc = StandardScaler().fit(xtr)
    clf = LogisticRegression(C=c, max_iter=500, random_state=seed).fit(sc.transform(xtr), ytr)
    return float((clf.predict(sc.transform(xte)) == yte).mean())


def linear_probe(model: VAE, data: DataSplit, *, budgets: Sequence[int | None] = DEFAULT_BUDGETS, seed: int = 0,
                 max_test: int | None = None) -> dict[str, Any]:
    """Test accuracy of the same logistic regression on latent means and on raw pixels, per label budget.

    Features are standardised on the labelled images; the labelled images are a balanced subset of the
    training split (``balanced_subset``), the same for both feature sets. ``None`` in ``budgets`` = all.
    """
    if not data.has_labels:
        raise ValueError(f"the probe needs labelled data; {data.name} has no labels")
    y_tr = data.train.y.numpy()
    test = data.test if max_test is None else ImageData(data.test.x[:max_test], data.test.y[:max_test])
    y_te = test.y.numpy()
    z_tr = encode(model, ImageData(data.train.x, None))["mu"]
    z_te = encode(model, ImageData(test.x, None))["mu"]
    p_tr = data.train.x.reshape(len(y_tr), -1).numpy().astype(np.float32) / 255.0
    p_te = test.x.reshape(len(y_te), -1).numpy().astype(np.float32) / 255.0
    rows = []
    for k in budgets:
        idx = balanced_subset(y_tr, k, seed)
        t0 = time.perf_counter()
        lat = _logreg(z_tr[idx], y_tr[idx], z_te, y_te, seed=seed)
        t1 = time.perf_counter()
        pix = _logreg(p_tr[idx], y_tr[idx], p_te, y_te, seed=seed)
        rows.append({"labels": int(len(idx)), "latent_accuracy": lat, "pixel_accuracy": pix,
                     "latent_seconds": t1 - t0, "pixel_seconds": time.perf_counter() - t1})
    return {"probe": "logistic regression (L2, C=1) on standardised features", "latent_dim": model.cfg.latent_dim,
            "n_test": int(len(y_te)), "rows": rows}
