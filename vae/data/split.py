"""Train/test splitting: the deterministic, stratified random split and the loaders' common output."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def split_indices(n: int, y: np.ndarray | None, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic random split of ``n`` items -> (train indices, test indices), both in shuffled order.

    ``round(n * test_fraction)`` items go to test, clipped to ``[1, n - 1]``. With labels the split is
    stratified (each class contributes in proportion, largest remainders first). ``n == 1``: the single
    item is used for both train and test.
    """
    if n == 1:
        return np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64)
    rng = np.random.default_rng(seed)
    n_test = min(max(1, round(n * test_fraction)), n - 1)
    is_test = np.zeros(n, dtype=bool)
    if y is not None:
        classes, counts = np.unique(y, return_counts=True)
        quota = counts * (n_test / n)
        take = np.floor(quota).astype(np.int64)
        short = n_test - int(take.sum())
        for ci in np.argsort(-(quota - take), kind="stable"):
            if short <= 0:
                break
            if take[ci] < counts[ci]:
                take[ci] += 1
                short -= 1
        for ci, cls in enumerate(classes):
            members = np.flatnonzero(y == cls)
            is_test[rng.permutation(members)[: take[ci]]] = True
    else:
        is_test[rng.permutation(n)[:n_test]] = True
    train, test = np.flatnonzero(~is_test), np.flatnonzero(is_test)
    return rng.permutation(train), rng.permutation(test)


@dataclass
class Arrays:
    """Loader output before tensors: uint8 NCHW images, int64 labels, and how they were split."""

    x_train: np.ndarray
    y_train: np.ndarray | None
    x_test: np.ndarray
    y_test: np.ndarray | None
    class_names: list[str] | None
    source: str
    fixed_order: bool  # True: official/explicit split in original order; False: already shuffled by seed
    # Generated data sets with known factors (vae.data.factors): int64 [N, F] indices per split, and per factor
    # its name and the value behind each index.
    f_train: np.ndarray | None = None
    f_test: np.ndarray | None = None
    factor_names: list[str] | None = None
    factor_values: list[list] | None = None


def split_arrays(x: np.ndarray, y: np.ndarray | None, class_names: list[str] | None, source: str,
                  test_fraction: float, seed: int) -> Arrays:
    train, test = split_indices(int(x.shape[0]), y, test_fraction, seed)
    return Arrays(x[train], None if y is None else y[train], x[test], None if y is None else y[test],
                   class_names, source, fixed_order=False)
