"""MNIST-family IDX files (``mnist``, ``fashion-mnist``, ``kmnist``): finding, parsing and downloading them.

Files are read from torchvision's layout (``<data_dir>/<Folder>/raw/...``) or from the download
folder under :func:`~vae.data.cache.cache_dir`; decoded arrays go to the ``.npy`` cache.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import math
import socket
import threading
import urllib.parse
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from ..util import atomic_write_bytes
from .cache import cache_dir, cache_paths, file_key, load_cached, save_cached, valid_xy
from .split import Arrays
from .types import DataError, Limits

_DOWNLOAD_TIMEOUT_S = 10.0
_DNS_TIMEOUT_S = 5.0
_MAX_DOWNLOAD_BYTES = 128 << 20
_READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class _IdxSet:
    folder: str
    classes: tuple[str, ...]


IDX_SETS: dict[str, _IdxSet] = {
    "mnist": _IdxSet("MNIST", tuple(str(i) for i in range(10))),
    "fashion-mnist": _IdxSet("FashionMNIST", ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                                              "Shirt", "Sneaker", "Bag", "Ankle boot")),
    "kmnist": _IdxSet("KMNIST", ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")),
}
_IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
              "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def find_idx_files(folder: Path) -> list[Path] | None:
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
        raise DataError(f"{path}: truncated or corrupt gzip file ({exc}); "
                        f"delete it so it can be fetched again") from exc
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
        if labels.size and labels.max() >= len(IDX_SETS[name].classes):
            raise DataError(f"{name}: {lbl_path} has label {int(labels.max())}; expected 0-"
                            f"{len(IDX_SETS[name].classes) - 1}")
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
    """Download ``url`` to ``dest`` atomically (short timeouts, size cap, md5 check).

    The body (at most ``_MAX_DOWNLOAD_BYTES``) is held in memory and written with
    :func:`vae.util.atomic_write_bytes` only once complete and verified.
    """
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise OSError(f"unsupported URL {url}")
    reason = _resolves(parsed.hostname, _DNS_TIMEOUT_S)
    if reason:
        raise OSError(reason)
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.md5()
    body = io.BytesIO()
    request = urllib.request.Request(url, headers={"User-Agent": "vae-lab"})
    with urllib.request.urlopen(request, timeout=_DOWNLOAD_TIMEOUT_S) as response:
        while chunk := response.read(_READ_CHUNK):
            if body.tell() + len(chunk) > _MAX_DOWNLOAD_BYTES:
                raise OSError(f"{url} is larger than {_MAX_DOWNLOAD_BYTES:,} bytes")
            digest.update(chunk)
            body.write(chunk)
    if md5 and digest.hexdigest() != md5:
        raise OSError(f"{url} has the wrong checksum")
    atomic_write_bytes(dest, body.getvalue())


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


def load_idx_dataset(name: str, data_dir: Path, limits: Limits, download: bool) -> Arrays:
    spec = IDX_SETS[name]
    user_folder = data_dir / spec.folder / "raw"
    download_folder = cache_dir() / "downloads" / spec.folder / "raw"
    files = find_idx_files(user_folder) or find_idx_files(download_folder)
    if files is None:
        if download:
            try:
                _download_idx(spec.folder, download_folder)
                files = find_idx_files(download_folder)
                note = "download failed: files still missing" if files is None else ""
            except OSError as exc:
                note = f"download failed: {exc}"
        else:
            note = "download disabled"
        if files is None:
            raise DataError(f"{name} not found: expected {', '.join(_IDX_FILES)} in {user_folder} ({note}); "
                            f"set --data-dir or VAE_LAB_DATA_DIR")
    parts = ("train_x", "train_y", "test_x", "test_y")
    paths = cache_paths(name, file_key(name, *files), parts)
    arrays = load_cached(paths)
    if (arrays is None or not valid_xy(arrays["train_x"], arrays["train_y"])
            or not valid_xy(arrays["test_x"], arrays["test_y"])):
        arrays = _parse_idx_set(name, files, limits)
        save_cached(paths, arrays, name)
    return Arrays(arrays["train_x"], arrays["train_y"], arrays["test_x"], arrays["test_y"],
                   list(spec.classes), f"{spec.folder} IDX files in {files[0].parent}", fixed_order=True)
