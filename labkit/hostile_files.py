"""Bad and hostile inputs, one per case the data loader must refuse; shared by ``bench/bad_inputs_cli.py``
(``from hostile_files import cases``) and the CLI and upload tests (``from labkit.hostile_files import cases``).
Each builder writes into ``folder`` and returns (path, extra CLI args)."""
from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image


def _png(side: int = 12, value: int = 128) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((side, side), value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _zip(path: Path, entries: dict[str, bytes], symlink: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return path


def _npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def low_entropy(n: int) -> bytes:
    """Bytes that deflate about 2x: a big archive that is not caught by the ratio check."""
    return (np.random.default_rng(1).integers(0, 16, n, dtype=np.uint8)).tobytes()


def cases(folder: Path) -> dict[str, tuple[Path, list[str], str]]:
    """name -> (data path, extra train args, a word the error line must contain)."""
    folder.mkdir(parents=True, exist_ok=True)
    ok = np.random.default_rng(0).integers(0, 256, (10, 12, 12), dtype=np.uint8)
    many = folder / "many"
    many.mkdir(exist_ok=True)
    for i in range(12):
        (many / f"{i}.png").write_bytes(_png())
    big = io.BytesIO()
    Image.fromarray(np.zeros((200, 200), np.uint8)).save(big, format="PNG")
    return {
        "wrong shape": (_npz(folder / "shape.npz", x=np.zeros((10, 12), np.uint8)), [], "shape"),
        "wrong dtype": (_npz(folder / "dtype.npz", x=ok.astype(np.complex64)), [], "dtype"),
        "NaN": (_npz(folder / "nan.npz", x=np.where(ok > 128, np.nan, 0.5).astype(np.float32)), [], "NaN"),
        "Inf": (_npz(folder / "inf.npz", x=np.where(ok > 128, np.inf, 0.5).astype(np.float32)), [], "infinite"),
        "empty": (_npz(folder / "empty.npz", x=np.zeros((0, 12, 12), np.uint8)), [], "empty"),
        "labels not matching images": (_npz(folder / "labels.npz", x=ok, y=np.zeros(7, np.int64)), [], "label"),
        "object array (pickle)": (_npz(folder / "pickle.npz", x=np.array([{"a": 1}] * 3, dtype=object)), [], "object"),
        "not an npz": ((folder / "garbage.npz").resolve() if (folder / "garbage.npz").write_bytes(b"hello") else None,
                       [], "zip"),
        "too many files": (many, ["--max-files", "5"], "files"),
        "entry leaves the folder": (_zip(folder / "traversal.zip", {"../evil.png": _png(), "a.png": _png()}), [],
                                    "leaves"),
        "absolute path entry": (_zip(folder / "absolute.zip", {"/tmp/evil.png": _png(), "a.png": _png()}), [],
                                "leaves"),
        "symlink entry": (_zip(folder / "symlink.zip", {"a.png": _png()}, symlink="link.png"), [], "link"),
        "zip bomb (ratio)": (_zip(folder / "bomb.zip", {"a.png": _png(), "b.png": b"\0" * (64 << 20)}), [], "ratio"),
        "zip bomb (declared size)": (_zip(folder / "big.zip", {"a.png": _png(), "b.png": low_entropy(3 << 20)}),
                                     ["--max-uncompressed-mb", "1"], "uncompressed"),
        "image over the pixel cap": (_zip(folder / "huge.zip", {"a.png": big.getvalue()}),
                                     ["--max-image-pixels", "10000"], "pixel"),
        "file that is not an image": (_zip(folder / "notimage.zip", {"a.png": _png(), "b.png": b"not a png at all"}),
                                      [], "image"),
    }
