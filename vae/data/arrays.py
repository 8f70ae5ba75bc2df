"""User arrays: validation and normalisation of image/label arrays, and reading ``.npz`` files.

Also the array-level helpers every loader shares: resizing, channel conversion and the cap on
decoded bytes.
"""

from __future__ import annotations

import math
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .split import Arrays, split_arrays
from .types import (
    _ACCEPTED_PIXELS,
    MAX_AUTO_SIDE,
    MAX_CLASSES,
    MAX_IMAGE_SIZE,
    MIN_AUTO_SIDE,
    MIN_IMAGE_SIZE,
    DataError,
    Limits,
)
from .zips import check_zip, open_zip


def resize_uint8(x: np.ndarray, side: int, chunk: int = 4096) -> np.ndarray:
    """Resize uint8 ``[N, C, H, W]`` -> uint8 ``[N, C, side, side]`` (bilinear, antialiased like PIL)."""
    if x.shape[-1] == side and x.shape[-2] == side:
        return x
    out = np.empty((x.shape[0], x.shape[1], side, side), dtype=np.uint8)
    for start in range(0, x.shape[0], chunk):
        part = torch.from_numpy(np.ascontiguousarray(x[start:start + chunk])).to(torch.float32)
        resized = F.interpolate(part, size=(side, side), mode="bilinear", align_corners=False, antialias=True)
        out[start:start + chunk] = resized.round_().clamp_(0, 255).to(torch.uint8).numpy()
    return out


def to_channels(x: np.ndarray, channels: int) -> np.ndarray:
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


def check_image_size_arg(image_size: int | None) -> None:
    if image_size is None:
        return
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or not (
        MIN_IMAGE_SIZE <= image_size <= MAX_IMAGE_SIZE
    ):
        raise DataError(f"image_size {image_size!r} is not accepted; accepted: an integer "
                        f"{MIN_IMAGE_SIZE}-{MAX_IMAGE_SIZE} or none (keep the data's own size)")


def check_decoded_bytes(n: int, channels: int, side: int, what: str, limits: Limits) -> None:
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
    check_image_size_arg(image_size)
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
    check_decoded_bytes(n, min(c, 3), max(side, h), what, limits)
    pixels = np.ascontiguousarray(_to_uint8_pixels(x, what))
    if side != h:
        pixels = resize_uint8(pixels, side)
    return pixels, labels


# ---------------------------------------------------------------------------------------------
# .npz files
# ---------------------------------------------------------------------------------------------


_NPZ_ACCEPTED = ("a file written by numpy.savez / savez_compressed with an array 'x' "
                 "(and optional 'y', 'x_test', 'y_test')")


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


def load_npz(path: Path, image_size: int | None, limits: Limits,
              test_fraction: float, seed: int) -> Arrays:
    fname = path.name
    with open_zip(path, fname, limits, f"a .npz file ({_NPZ_ACCEPTED})") as zf:
        infos = check_zip(zf, fname, limits)
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
            test = (to_channels(test[0], max(x.shape[1], test[0].shape[1])), test[1])
            x = to_channels(x, test[0].shape[1])
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
        return split_arrays(x, y, class_names, source, test_fraction, seed)
    return Arrays(x, y, test[0], test[1], class_names, source + " (with its own test split)", fixed_order=True)
