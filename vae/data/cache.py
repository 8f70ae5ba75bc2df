"""Where data lives on disk, and the ``.npy`` cache of decoded arrays (written atomically)."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
from pathlib import Path

import numpy as np

from ..util import atomic_write_bytes

log = logging.getLogger(__name__)

_CACHE_VERSION = "1"


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
# Array cache
# ---------------------------------------------------------------------------------------------


def _save_npy(path: Path, array: np.ndarray) -> None:
    """Write ``array`` as a ``.npy`` file via :func:`vae.util.atomic_write_bytes` (no half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())


def cache_paths(stem: str, key: str, parts: tuple[str, ...]) -> dict[str, Path]:
    folder = cache_dir() / "arrays"
    return {p: folder / f"{stem}-{key}-{p}.npy" for p in parts}


def load_cached(paths: dict[str, Path]) -> dict[str, np.ndarray] | None:
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


def save_cached(paths: dict[str, Path], arrays: dict[str, np.ndarray], stem: str) -> None:
    """Save arrays to the cache (best effort) and remove stale cache files of the same data set."""
    try:
        for part, path in paths.items():
            _save_npy(path, arrays[part])
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


def file_key(*parts: str | Path) -> str:
    """Cache key from a version tag, names and the (path, size, mtime) of files."""
    h = hashlib.sha256(_CACHE_VERSION.encode())
    for part in parts:
        if isinstance(part, Path):
            st = part.stat()
            h.update(f"|{part.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
        else:
            h.update(f"|{part}".encode())
    return h.hexdigest()[:16]


def valid_xy(x: np.ndarray, y: np.ndarray) -> bool:
    return (x.dtype == np.uint8 and x.ndim == 4 and x.shape[1] in (1, 3) and x.shape[2] == x.shape[3]
            and y.dtype == np.int64 and y.ndim == 1 and y.shape[0] == x.shape[0])
