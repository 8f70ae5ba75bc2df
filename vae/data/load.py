"""The entry point :func:`load_dataset`: argument checks, dispatch by name or path, subsets and tensors."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import torch

from .arrays import check_decoded_bytes, check_image_size_arg, load_npz, resize_uint8, to_channels
from .builtin import load_digits8, load_mnist5k
from .cache import default_data_dir
from .factors import load_factor_set
from .idx import load_idx_dataset
from .images import load_folder, load_zip_images
from .split import Arrays
from .types import ACCEPTED_SPECS, DATASETS, GENERATED_DATASETS, DataError, DataSplit, ImageData, Limits


def _take(x: np.ndarray, y: np.ndarray | None, k: int | None, shuffled: bool, seed: int, stream: int,
          f: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """First ``k`` items (images, labels, factors) after shuffling by seed (already-shuffled splits are just cut)."""
    if k is None or k >= x.shape[0]:
        return x, y, f
    idx = np.arange(k) if shuffled else np.random.default_rng([seed, stream]).permutation(x.shape[0])[:k]
    return x[idx], None if y is None else y[idx], None if f is None else f[idx]


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
    roots: Sequence[str | os.PathLike[str]] | None = None,
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
        roots: When given (the app does: its uploads folder), a path is read only if it lies inside one of these
            folders once every link in it is resolved; built-in names are always accepted (:func:`where_allowed`).

    Returns:
        A :class:`DataSplit` with train/test uint8 ``[N, C, S, S]`` and int64 ``[N]`` labels (or None); for the
        generated sets (:data:`GENERATED_DATASETS`) also int64 ``[N, F]`` ``factors`` and the split's
        ``factor_names`` / ``factor_values``. Those sets render only the images kept by ``max_train`` /
        ``max_test``, and the caps of ``limits`` (made for reading files) do not apply to them.

    Raises:
        DataError: Unknown name, missing files, bad or hostile data, or bad arguments.
    """
    text = os.fspath(spec)
    if not isinstance(text, str) or not text.strip():
        raise DataError(f"empty data set name; accepted: {', '.join(DATASETS)} or {ACCEPTED_SPECS}")
    color = _checked_args(image_size, color, test_fraction, max_train, max_test, seed)
    if roots is not None:
        refused = where_allowed(text, roots)
        if refused:
            raise DataError(refused)
    seed = int(seed)
    name, arrays, from_images = _arrays_for(text, data_dir=data_dir, image_size=image_size, color=color,
                                            test_fraction=test_fraction, seed=seed, limits=limits, download=download,
                                            max_train=max_train, max_test=max_test)
    return _prepared(name, arrays, from_images, image_size=image_size, color=color, seed=seed, limits=limits,
                     max_train=max_train, max_test=max_test)


def _prepared(name: str, arrays: Arrays, from_images: bool, *, image_size, color, seed, limits, max_train,
              max_test) -> DataSplit:
    """The split arrays cut to ``max_train`` / ``max_test``, checked against the image cap, resized and converted
    (images decoded from files already are), as tensors."""
    x_train, y_train, f_train = _take(arrays.x_train, arrays.y_train, max_train, not arrays.fixed_order, seed, 0,
                                      arrays.f_train)
    x_test, y_test, f_test = _take(arrays.x_test, arrays.y_test, max_test, not arrays.fixed_order, seed, 1,
                                   arrays.f_test)
    total = x_train.shape[0] + x_test.shape[0] - (1 if x_train.shape[0] == 1 and x_test.shape[0] == 1 else 0)
    # the generated sets read no file and have a fixed, documented size: the caps on reading data do not apply
    if total > limits.max_images and name not in GENERATED_DATASETS:
        raise DataError(f"{name}: {total:,} images, over the limit of {limits.max_images:,} (Limits.max_images); "
                        f"accepted: fewer images, or set max_train / max_test")
    if not from_images:
        if image_size is not None and image_size != x_train.shape[-1]:
            check_decoded_bytes(total, x_train.shape[1], image_size, name, limits)
            x_train, x_test = resize_uint8(x_train, image_size), resize_uint8(x_test, image_size)
        if color is not None:
            x_train = to_channels(x_train, 1 if color == "grey" else 3)
            x_test = to_channels(x_test, 1 if color == "grey" else 3)

    def images(x, y, f) -> ImageData:
        return ImageData(_tensor(x), None if y is None else _tensor(y), None if f is None else _tensor(f))
    return DataSplit(name=name, source=arrays.source, train=images(x_train, y_train, f_train),
                     test=images(x_test, y_test, f_test), class_names=arrays.class_names,
                     factor_names=arrays.factor_names, factor_values=arrays.factor_values)


def where_allowed(spec: str, roots: Sequence[str | os.PathLike[str]]) -> str | None:
    """None when ``spec`` is a built-in data set or a path inside one of ``roots`` after resolving every link in it
    (so ``uploads/../../etc`` or a link out of the folder is outside); else the one-line reason it is not."""
    if spec.strip().lower() in DATASETS:
        return None
    try:
        target = Path(spec).expanduser().resolve(strict=False)
        bases = [Path(r).expanduser().resolve(strict=False) for r in roots]
    except (OSError, RuntimeError, ValueError):
        return f"data set {Path(spec).name!r} is not available here"
    if any(target == b or b in target.parents for b in bases):
        return None
    return (f"data set {Path(spec).name!r} is not available here; accepted: a built-in data set "
            f"({', '.join(DATASETS)}) or a file uploaded to this server")


def _checked_args(image_size, color, test_fraction, max_train, max_test, seed) -> str | None:
    """Refuse a bad argument with one line; returns ``color`` spelled the accepted way."""
    check_image_size_arg(image_size)
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
    return color


def _arrays_for(text: str, *, data_dir, image_size, color, test_fraction, seed, limits, download, max_train,
                max_test) -> tuple[str, Arrays, bool]:
    """(the data set's name, its split arrays, whether they were decoded from image files) for a name or a path."""
    key = text.strip().lower()
    if key in DATASETS:
        if key == "mnist5k":
            return key, load_mnist5k(test_fraction, seed), False
        if key == "digits8":
            return key, load_digits8(test_fraction, seed), False
        if key in GENERATED_DATASETS:
            return key, load_factor_set(key, test_fraction, seed, max_train, max_test), False
        base = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
        return key, load_idx_dataset(key, base, limits, download), False
    path = Path(text).expanduser()
    if path.is_dir():
        return text, load_folder(path, image_size, color, limits, test_fraction, seed), True
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".npz":
            return text, load_npz(path, image_size, limits, test_fraction, seed), False
        if suffix == ".zip":
            return text, load_zip_images(path, image_size, color, limits, test_fraction, seed), True
        raise DataError(f"{path.name}: unsupported file type {path.suffix or '(none)'!r}; accepted: {ACCEPTED_SPECS}")
    if path.exists():
        raise DataError(f"{text}: not a regular file or folder; accepted: {ACCEPTED_SPECS}")
    looks_like_path = any(sep in text for sep in ("/", "\\")) or "." in Path(text).name
    what = f"{text}: no such file or folder" if looks_like_path else f"unknown data set {text!r}"
    raise DataError(f"{what}; accepted: {', '.join(DATASETS)} or {ACCEPTED_SPECS}")
