"""Helpers shared by the vae.data tests (test_data_builtin.py, test_data_files.py, test_data_images.py)."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from vae.data import DataError


def isolate_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Point the cache and data folders at empty folders under ``tmp_path`` -> {"cache": ..., "data": ...}."""
    dirs = {"cache": tmp_path / "cache", "data": tmp_path / "data"}
    monkeypatch.setenv("VAE_LAB_CACHE_DIR", str(dirs["cache"]))
    monkeypatch.setenv("VAE_LAB_DATA_DIR", str(dirs["data"]))
    return dirs


def expect_error(fn: Callable[[], object], *parts: str) -> str:
    """Run ``fn``, require a one-line DataError containing every part; return its message."""
    with pytest.raises(DataError) as info:
        fn()
    message = str(info.value)
    assert "\n" not in message and message.strip() == message
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"
    return message


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``folder`` with its size and mtime."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


def write_zip(path: Path, entries: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, payload in entries.items():
            zf.writestr(zipfile.ZipInfo(name), payload, compress_type=compression)
    return path

