"""``colour-shapes``: a flat, 2-D scene in the spirit of 3D Shapes (Burgess & Kim 2018), 32 x 32 RGB.

3D Shapes renders a 3-D room: a floor, a wall and an object in the middle, with six factors (floor hue,
wall hue, object hue, scale, shape, orientation). This is a 2-D stand-in with the same factors, not a 3-D
rendering:

* the wall fills the picture above a horizon at row 19 of 32, the floor below it;
* the object stands in the middle across the horizon: a square ("cube"), a rounded upright box with a lighter
  top face ("cylinder"), a disc ("sphere") or a lying stadium ("capsule"), its size times the scale; it is lit
  from the left (brightness falls from 1 to 0.7 across it);
* orientation turns the whole scene about the picture's centre (a camera roll of -30 to 30 degrees,
  counter-clockwise as displayed), so it tilts the horizon as well as the object and stays visible on the
  round sphere;
* colours are HSV: wall (hue, 0.55, 0.95), floor (hue, 0.75, 0.65), object (hue, 0.9, 1.0) times its light;
* edges are anti-aliased with 4 x 4 samples per pixel.

Rendering is vectorised over the factors: the floor's coverage depends on the orientation only and the
object's on (shape, scale, orientation), so a picture is two gathers and a blend.
"""

from __future__ import annotations

import colorsys
import functools

import numpy as np

from .grid import FactorGrid

_SUPERSAMPLE = 4
_HORIZON = 19.0        # row of the horizon, 32 x 32 picture, before the roll
_OBJECT_CENTRE = (16.0, 19.0)
_OBJECT_HALF = 6.5     # half the object's size at scale 1, pixels at 32 x 32
_WALL_SV = (0.55, 0.95)
_FLOOR_SV = (0.75, 0.65)
_OBJECT_SV = (0.9, 1.0)


def _samples(size: int, angle_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Scene coordinates (x right, y down) of every sub-pixel sample of a picture rolled by ``angle_deg``."""
    ss = _SUPERSAMPLE
    p = (np.arange(size * ss) + 0.5) / ss * (32.0 / size)
    px, py = np.meshgrid(p, p)
    a = np.deg2rad(angle_deg)
    c, s = np.cos(a), np.sin(a)
    dx, dy = px - 16.0, py - 16.0
    return 16.0 + c * dx - s * dy, 16.0 + s * dx + c * dy


def _coverage(mask: np.ndarray, size: int) -> np.ndarray:
    """Fraction of each pixel's samples that are True: float32 ``[size, size]``."""
    ss = _SUPERSAMPLE
    return mask.reshape(size, ss, size, ss).mean(axis=(1, 3)).astype(np.float32)


def _object(shape: str, x: np.ndarray, y: np.ndarray, half: float) -> tuple[np.ndarray, np.ndarray]:
    """Inside mask and brightness of ``shape`` at scene points relative to the object's centre."""
    light = np.clip(0.85 - 0.15 * x / half, 0.7, 1.0)
    if shape == "square":
        inside = np.maximum(np.abs(x), np.abs(y)) <= half
    elif shape == "cylinder":
        rx, ry = 0.8 * half, 0.3 * half
        body = (np.abs(x) <= rx) & (np.abs(y) <= half)
        top = (x / rx) ** 2 + ((y + half) / ry) ** 2 <= 1.0
        bottom = (x / rx) ** 2 + ((y - half) / ry) ** 2 <= 1.0
        inside = body | top | bottom
        light = np.where(top, 1.0, light)
    elif shape == "sphere":
        inside = x * x + y * y <= (1.1 * half) ** 2
    elif shape == "capsule":
        r, length = 0.6 * half, 0.6 * half
        inside = (np.maximum(np.abs(x) - length, 0.0) ** 2 + y * y) <= r * r
    else:
        raise ValueError(f"unknown scene shape {shape!r}; accepted: square, cylinder, sphere, capsule")
    return inside, light


@functools.lru_cache(maxsize=2)
def _layers(grid: FactorGrid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The picture's parts, premultiplied so that a picture is ``background * (1 - alpha) + object``.

    Returns:
        background: float32 ``[floor hues, wall hues, orientations, 3, S, S]``, wall and floor by coverage.
        alpha: float32 ``[scales, shapes, orientations, S, S]``, the object's coverage of each pixel.
        obj: float32 ``[object hues, scales, shapes, orientations, 3, S, S]``, colour x light x coverage.
    """
    size = grid.image_size
    scales, shapes, angles = grid.values[3], grid.values[4], grid.values[5]
    floor = np.stack([_coverage(_samples(size, a)[1] >= _HORIZON, size) for a in angles])       # [O, S, S]
    alpha = np.zeros((len(scales), len(shapes), len(angles), size, size), np.float32)
    lit = np.zeros_like(alpha)                                                                 # light x coverage
    for k, a in enumerate(angles):
        x, y = _samples(size, a)
        x, y = x - _OBJECT_CENTRE[0], y - _OBJECT_CENTRE[1]
        for i, scale in enumerate(scales):
            for j, shape in enumerate(shapes):
                inside, light = _object(shape, x, y, _OBJECT_HALF * scale)
                alpha[i, j, k] = _coverage(inside, size)
                lit[i, j, k] = _coverage(np.where(inside, light, 0.0), size)
    floor_rgb = hue_rgb(grid.values[0], *_FLOOR_SV)[:, None, None, :, None, None]             # [F, 1, 1, 3, 1, 1]
    wall_rgb = hue_rgb(grid.values[1], *_WALL_SV)[None, :, None, :, None, None]
    cover = floor[None, None, :, None]                                                         # [1, 1, O, 1, S, S]
    background = (wall_rgb + (floor_rgb - wall_rgb) * cover).astype(np.float32)
    obj_rgb = hue_rgb(grid.values[2], *_OBJECT_SV)[:, None, None, None, :, None, None]
    obj = (obj_rgb * lit[None, :, :, :, None]).astype(np.float32)
    return background, alpha, obj


def hue_rgb(hues, saturation: float, value: float) -> np.ndarray:
    """HSV colours ``[K]`` hues in [0, 1) -> float32 RGB ``[K, 3]`` in [0, 1]."""
    return np.array([colorsys.hsv_to_rgb(float(h), saturation, value) for h in hues], dtype=np.float32)


def render_scenes(grid: FactorGrid, factors: np.ndarray, *, chunk: int = 256) -> np.ndarray:
    """Scenes for factor indices ``[N, 6]`` (floor, wall, object hue, scale, shape, orientation).

    Returns uint8 ``[N, 3, S, S]``."""
    background, alpha, obj = _layers(grid)
    size = grid.image_size
    out = np.empty((factors.shape[0], 3, size, size), dtype=np.uint8)
    for i in range(0, factors.shape[0], chunk):       # small steps keep the float temporaries in the CPU's cache
        fl, wa, oh, sc, sh, orient = factors[i:i + chunk].T
        picture = background[fl, wa, orient] * (1.0 - alpha[sc, sh, orient])[:, None] + obj[oh, sc, sh, orient]
        out[i:i + chunk] = np.rint(picture * 255.0)
    return out
