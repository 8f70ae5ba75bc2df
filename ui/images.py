"""Pictures for the pages: crisp grids (nearest-neighbour upscaling), PNG, GIF and npz bytes.

``png(key, make)`` is how pages show a computed picture: Streamlit encodes an array handed to ``st.image``
again on every rerun (a few ms per picture, per click, per session); here each picture is encoded once per
``key`` for every session of the server.
"""
from __future__ import annotations

import base64
import io
from typing import Callable

import numpy as np
import streamlit as st
from PIL import Image

from vae.latent import image_grid

TARGET_TILE_PX = 84   # small digits are upscaled by a whole factor to about this size


def scale_for(side: int, target: int = TARGET_TILE_PX) -> int:
    return max(1, round(target / max(1, side)))


def grid(images: np.ndarray, nrow: int | None = None, *, target: int = TARGET_TILE_PX, pad: int = 1) -> np.ndarray:
    """Tile float images [N, C, H, W] in [0, 1] into one crisp uint8 picture."""
    images = np.asarray(images)
    return image_grid(images, nrow, pad=pad, scale=scale_for(images.shape[-1], target), pad_value=0.5)


def strip(images: np.ndarray, *, target: int = TARGET_TILE_PX) -> np.ndarray:
    """Images side by side in one row."""
    return grid(images, len(images), target=target)


def one(image: np.ndarray, *, target: int = 168) -> np.ndarray:
    """One image [C, H, W] upscaled crisply."""
    return grid(np.asarray(image)[None], 1, target=target, pad=0)


def float_from_uint8(x) -> np.ndarray:
    """uint8 tensor/array [N, C, H, W] -> float32 in [0, 1]."""
    return np.asarray(x, dtype=np.float32) / 255.0


def recon_pair(inputs: np.ndarray, recons: np.ndarray, *, target: int = TARGET_TILE_PX) -> np.ndarray:
    """The picture of a training snapshot: uint8 inputs [N, C, H, W] in the top row, their uint8 reconstructions
    [N, C, H, W] below, as one crisp grid. The Train page's live strip and the Compare page's replay both draw
    a job's ``live.npz`` / ``snapshots/epoch-NNNN.npz`` through here, so the two can never scale pixels
    differently (``grid`` takes floats in [0, 1]; a uint8 handed to it straight saturates every pixel >= 1)."""
    inputs, recons = np.asarray(inputs), np.asarray(recons)
    for name, a in (("inputs", inputs), ("recons", recons)):
        if a.dtype != np.uint8 or a.ndim != 4:
            raise ValueError(f"{name} must be uint8 [N, C, H, W], got {a.dtype} {a.shape}")
    return grid(np.concatenate([float_from_uint8(inputs), float_from_uint8(recons)]), len(inputs), target=target)


PNG_LEVEL = 1   # zlib level: a 436-px manifold grid encodes in 8 ms instead of 18 (level 6) and is 7 % larger


def png_bytes(picture: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(picture)).save(buf, format="PNG", compress_level=PNG_LEVEL)
    return buf.getvalue()


@st.cache_data(show_spinner=False, max_entries=2048)
def _png(key: tuple, _make: Callable[[], np.ndarray]) -> bytes:
    return png_bytes(_make())


def png(key: tuple, make: Callable[[], np.ndarray]) -> bytes:
    """PNG bytes of the picture ``make()`` returns, made once per ``key`` (which must name everything the picture
    depends on: the run's key, the data key, the settings)."""
    return _png(key, make)


def png_b64(picture: np.ndarray) -> str:
    return base64.b64encode(png_bytes(picture)).decode("ascii")


def gif_bytes(frames: np.ndarray, *, target: int = 168, ms: int = 120, bounce: bool = True) -> bytes:
    """An animated GIF of float frames [T, C, H, W], looping (there and back when ``bounce``)."""
    pics = [one(f, target=target) for f in frames]
    if bounce and len(pics) > 2:
        pics = pics + pics[-2:0:-1]
    ims = [Image.fromarray(p).convert("P" if p.ndim == 3 else "L") for p in pics]
    buf = io.BytesIO()
    ims[0].save(buf, format="GIF", save_all=True, append_images=ims[1:], duration=ms, loop=0, disposal=2)
    return buf.getvalue()


def npz_bytes(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: np.asarray(v) for k, v in arrays.items() if v is not None})
    return buf.getvalue()
