"""Hostile and broken uploads, built in memory, shared by the AppTest and browser suites.

Each case: (id, file name(s) and bytes, a phrase the page's one error line must contain).
"""
from __future__ import annotations

import io
import json
import pickle
import zipfile

import numpy as np
from PIL import Image


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _zip(entries: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _png(side: int, value: int = 0) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (side, side), value).save(buf, format="PNG")
    return buf.getvalue()


def digit_pngs(n: int = 4) -> dict[str, bytes]:
    return {f"a/{i}.png": _png(16, 40 * i) for i in range(n)}


def data_cases() -> list[tuple[str, str, bytes, str]]:
    """(id, file name, bytes, expected phrase) for the Train page's data upload."""
    nan = np.random.default_rng(0).random((20, 16, 16)).astype(np.float32)
    nan[3, 4, 5] = np.nan
    return [
        ("npz-dtype", "words.npz", _npz(x=np.array([["a"] * 16] * 16 * 20).reshape(20, 16, 16)), "dtype"),
        ("npz-nan", "nan.npz", _npz(x=nan), "NaN"),
        ("npz-not-zip", "text.npz", b"this is not a numpy file at all\n" * 10, "npz"),
        ("zip-traversal", "evil.zip", _zip({"../../evil.png": _png(16), **digit_pngs()}), "leaves the archive"),
        ("zip-bomb", "bomb.zip", _zip({"a/big.png": b"\0" * (8 << 20)}), "zip bomb"),
        ("zip-non-image", "notes.zip", _zip({"notes.txt": b"hello\n" * 100}), "image"),
        ("zip-fake-png", "fake.zip", _zip({"a/fake.png": b"not an image, just text\n" * 20, **digit_pngs()}),
         "not a readable image"),
        ("zip-huge-image", "huge.zip", _zip({"a/huge.png": _png(5000), **digit_pngs()}), "pixels"),
        ("wrong-type", "data.csv", b"1,2,3\n", "unsupported file type"),
        # every image within the per-image cap, together over the app's 256 M pixels: refused from the headers
        ("zip-many-pixels", "many.zip", _zip({f"a/{i}.png": _png(4000) for i in range(20)}, zipfile.ZIP_STORED),
         "max_total_pixels"),
    ]


def _config(latent: int = 2, hidden: list[int] = [4]) -> bytes:  # noqa: B006 (read only)
    return json.dumps({"model": {"arch": "mlp", "image_size": 8, "latent_dim": latent, "hidden": hidden},
                       "train": {}, "data": {"name": "digits8"}}).encode()


class _Evil:
    def __reduce__(self):
        return (print, ("unpickled!",))


def run_cases() -> list[tuple[str, list[tuple[str, bytes]], str]]:
    """(id, [(file name, bytes)], expected phrase) for the sidebar's run upload."""
    pickled = pickle.dumps({"encoder.out.weight": _Evil()})
    return [
        ("garbage-zip", [("run.zip", b"PK\x03\x04 garbage " * 50)], "not a valid zip"),
        ("garbage-weights", [("model.safetensors", bytes(range(256)) * 40), ("config.json", _config())],
         "not a valid safetensors file"),
        ("pickle-as-safetensors", [("model.safetensors", pickled), ("config.json", _config())],
         "not a valid safetensors file"),
        ("zip-traversal", [("run.zip", _zip({"../model.safetensors": b"x", "config.json": _config()}))],
         "leaves the archive"),
        ("zip-bomb", [("run.zip", _zip({"model.safetensors": b"\0" * (8 << 20)}))], "zip bomb"),
        ("zip-extra-file", [("run.zip", _zip({"run/config.json": _config(), "run/evil.py": b"print(1)"}))],
         "unexpected entry"),
        ("config-unknown-key", [("model.safetensors", b"{}"), ("config.json", b'{"model": {}, "hack": 1}')],
         "unknown keys"),
        ("config-not-json", [("model.safetensors", b"x"), ("config.json", b"\x89PNG not json")], "config.json"),
        ("missing-config", [("model.safetensors", b"x")], "missing config.json"),
        # nine hidden layers: over the app's budget (VAE_LAB_MAX_LAYERS 8), refused before anything is built
        ("over-budget", [("model.safetensors", b"x"), ("config.json", _config(hidden=[16] * 9))], "over the budget"),
        ("tracked-run", [("model.safetensors", b"x"), ("config.json", json.dumps(
            {"kind": "tracked", "model": {"arch": "foreign", "image_size": 8, "latent_dim": 2}, "train": {},
             "data": {"name": "digits8"}}).encode())], "not accepted as an upload"),
    ]
