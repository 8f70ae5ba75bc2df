"""What the use cases share: the recipe their published figures were measured with, balanced label subsets."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

Callback = Callable[[dict[str, Any]], None]

# The recipe of the use-case figures in bench/usecases.md (a mirrored MLP at batch 256, lr 2e-3); `vae rd` and
# `vae anomaly` pin it so that their commands reproduce those figures whatever the default recipe becomes.
MEASURED_MODEL: dict[str, Any] = {"decoder_hidden": ()}
MEASURED_TRAIN: dict[str, Any] = {"batch_size": 256, "lr": 2e-3, "lr_warmup": 0.0, "output_bias_init": False}


def balanced_subset(y: np.ndarray | torch.Tensor, k: int | None, seed: int = 0) -> np.ndarray:
    """Balanced labelled subset: ``k // K`` indices per class (all when ``k`` is None or >= N), sorted.

    The same ``seed`` gives the same subset, so the plain and the augmented classifier, the probe and the
    semi-supervised model all see the very same labelled images."""
    y = np.asarray(y)
    n = y.shape[0]
    if k is None or k >= n:
        return np.arange(n)
    classes = np.unique(y)
    per = k // len(classes)
    if per < 1:
        raise ValueError(f"{k} labels are fewer than one per class ({len(classes)} classes)")
    rng = np.random.default_rng([seed, 4242])
    idx = []
    for c in classes:
        members = np.flatnonzero(y == c)
        if members.shape[0] < per:
            raise ValueError(f"class {c} has only {members.shape[0]} images, {per} labelled ones were asked")
        idx.append(rng.choice(members, per, replace=False))
    return np.sort(np.concatenate(idx))
