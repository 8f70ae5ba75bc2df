"""Zip safety: every entry of a user's archive is checked before anything is read from it."""

from __future__ import annotations

import re
import stat
import zipfile
from pathlib import Path

from ..util import os_reason
from .types import DataError, Limits

# Zip entries smaller than this are not held to the ratio limit: a tiny, very compressible entry
# (a label array, a blank image) cannot hurt, while total declared size is capped separately.
_RATIO_MIN_BYTES = 1 << 20

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


def check_zip(zf: zipfile.ZipFile, what: str, limits: Limits) -> list[zipfile.ZipInfo]:
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


def open_zip(path: Path, what: str, limits: Limits, accepted: str) -> zipfile.ZipFile:
    size = path.stat().st_size
    if size > limits.max_file_bytes:
        raise DataError(f"{what}: {size:,} bytes on disk, over the limit of {limits.max_file_bytes:,} "
                        f"(Limits.max_file_bytes)")
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise DataError(f"{what}: not a valid zip archive ({exc}); accepted: {accepted}") from exc
    except OSError as exc:
        raise DataError(f"{what}: cannot be read ({os_reason(exc)})") from exc
