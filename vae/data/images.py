"""The user's images: a folder or a ``.zip`` of PNG/JPEG/BMP/GIF/WebP files, flat or one folder per class.

Entries are listed first (zip entries are checked by :mod:`vae.data.zips`, folder walks refuse
links that leave the folder), then every header is read and its pixel count checked, and only
then is anything decoded.
"""

from __future__ import annotations

import io
import os
import warnings
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, UnidentifiedImageError

from .arrays import check_decoded_bytes
from .split import Arrays, split_arrays
from .types import ACCEPTED_LAYOUTS, FALLBACK_SIDE, IMAGE_EXTENSIONS, MAX_AUTO_SIDE, MIN_AUTO_SIDE, DataError, Limits
from .zips import check_zip, open_zip

_PIL_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP")


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
            raise DataError(f"{path} is a symbolic link that leaves the folder {root}; "
                            f"accepted: files inside the folder")

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
        raise DataError(f"{what}: {'/'.join(deep.parts)!r} is nested too deep; {ACCEPTED_LAYOUTS}")
    nested = next(e for e, p in zip(entries, parts) if len(p) == 2)
    assert flat is not None
    raise DataError(f"{what}: found images both directly in the top folder ({'/'.join(flat.parts)!r}) and in "
                    f"sub-folders ({'/'.join(nested.parts)!r}); {ACCEPTED_LAYOUTS}")


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
                 color: str | None, limits: Limits, test_fraction: float, seed: int) -> Arrays:
    """Decode a list of image entries (flat or class folders) into split uint8 arrays."""
    if not entries:
        raise DataError(f"{what}: no images found; accepted: {', '.join(IMAGE_EXTENSIONS)} files, "
                        f"{ACCEPTED_LAYOUTS}")
    if len(entries) > limits.max_images:
        raise DataError(f"{what}: {len(entries):,} images, over the limit of {limits.max_images:,} (Limits.max_images)")
    class_names = _assign_labels(entries, what)
    headers = [_header(e, limits)[0] for e in entries]
    total = sum(w * h for w, h in headers)
    if total > limits.max_total_pixels:
        raise DataError(f"{what}: its images hold {total:,} pixels in all, over the limit of "
                        f"{limits.max_total_pixels:,} (Limits.max_total_pixels); accepted: fewer or smaller images")
    sizes = Counter(headers)
    if image_size is None:
        (w, h), _ = sizes.most_common(1)[0]
        side = w if w == h and MIN_AUTO_SIDE <= w <= MAX_AUTO_SIDE else FALLBACK_SIDE
    else:
        side = image_size
    n = len(entries)
    grey_out: np.ndarray | None = None
    rgb_out: np.ndarray | None = None
    if color == "rgb":
        check_decoded_bytes(n, 3, side, what, limits)
        rgb_out = np.empty((n, side, side, 3), dtype=np.uint8)
    else:
        check_decoded_bytes(n, 1, side, what, limits)
        grey_out = np.empty((n, side, side), dtype=np.uint8)
    for i, entry in enumerate(entries):
        pixels, _ = _decode(entry, side, color, limits)
        if pixels.ndim == 3 and rgb_out is None:  # first colour image: promote to RGB
            assert grey_out is not None
            check_decoded_bytes(n, 3, side, what, limits)
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
    return split_arrays(x, y, class_names, source, test_fraction, seed)


def load_zip_images(path: Path, image_size: int | None, color: str | None, limits: Limits,
                     test_fraction: float, seed: int) -> Arrays:
    what = path.name
    with open_zip(path, what, limits, f"a .zip of images ({ACCEPTED_LAYOUTS})") as zf:
        infos = check_zip(zf, what, limits)
        entries = _zip_entries(zf, infos, what)
        return _load_images(entries, what, f"zip of images {path}", image_size, color, limits, test_fraction, seed)


def load_folder(path: Path, image_size: int | None, color: str | None, limits: Limits,
                 test_fraction: float, seed: int) -> Arrays:
    entries = _folder_entries(path, limits)
    return _load_images(entries, str(path), f"folder of images {path}", image_size, color, limits,
                        test_fraction, seed)


def image_from_bytes(blob: bytes, name: str, side: int, channels: int, limits: Limits = Limits()) -> np.ndarray:
    """One uploaded image (PNG, JPEG, BMP, GIF or WebP) as uint8 ``[channels, side, side]``: centre-cropped to a
    square and resized, grey or RGB as asked, with the same header and pixel checks as a folder of images."""
    if len(blob) > limits.max_file_bytes:
        raise DataError(f"{name} is {len(blob):,} bytes, over the limit of {limits.max_file_bytes:,} bytes")
    entry = _ImageEntry(name, (name,), lambda: io.BytesIO(blob), len(blob))
    pixels, _ = _decode(entry, side, "grey" if channels == 1 else "rgb", limits)
    return pixels[None] if pixels.ndim == 2 else np.ascontiguousarray(pixels.transpose(2, 0, 1))
