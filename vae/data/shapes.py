"""Binary sprites in the manner of dSprites (Matthey et al. 2017): a white square, ellipse or heart on black.

dSprites publishes its factor grid (3 shapes, 6 scales linearly in [0.5, 1], 40 orientations in [0, 2 pi],
32 x and 32 y positions in [0, 1]; values chosen as "the smallest step changes while ensuring that all pixel
outputs were different") but not its renderer, so the geometry below is ours, chosen to keep those
properties on a 64 x 64 canvas:

* position: the sprite's centre is at ``S/4 + v * S * 31/64`` pixels for a position value ``v`` in [0, 1]
  (16 + 31 v on 64 pixels), so one step of the 32 is exactly one pixel and the centre spans the middle half
  of the image; x grows to the right, y downwards (image rows);
* size at scale 1 (64 pixels): square 20 x 20 pixels, ellipse 26 x 13 (long axis along x at orientation 0),
  heart about 24 x 24 (the curve (x^2 + y^2 - 1)^3 = x^2 y^3, point down); each fits inside the image at any
  position and orientation;
* orientation: counter-clockwise as displayed, about the sprite's centre;
* pixels: each pixel is split into 4 x 4 samples and is white (255) when at least half of them fall inside
  the shape, black (0) otherwise.

Because positions move by whole pixels, an image is one of the ``shapes x scales x orientations`` sprites
(rendered once, analytically) shifted into place: the full 737,280-image grid is a gather, not 737,280
renderings. ``shapes32`` uses the same geometry at half the resolution (its positions are every second one
of the 32, so a step is again one pixel). There the squares of scales 0.5, 0.7 and 0.9 are 5, 7 and 9 pixels
wide, centred on a pixel boundary: their edge pixels are half covered and count as inside, their corner pixels
(a quarter covered) do not.
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .grid import FactorGrid

_SUPERSAMPLE = 4
_HALF_SQUARE = 10.0            # pixels at 64 x 64 and scale 1
_ELLIPSE_AXES = (13.0, 6.5)    # semi-axes, pixels at 64 x 64 and scale 1
_HEART_UNIT = 10.5             # pixels per unit of the heart curve at 64 x 64 and scale 1
_HEART_OFFSET = 0.118          # the curve spans y in [-1, 1.236]; this centres its bounding box


def _inside(shape: str, u: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Whether points (u right, w up), in pixels at 64 x 64 and scale 1, are inside ``shape`` at orientation 0."""
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(w)) <= _HALF_SQUARE
    if shape == "ellipse":
        a, b = _ELLIPSE_AXES
        return (u / a) ** 2 + (w / b) ** 2 <= 1.0
    if shape == "heart":
        x, y = u / _HEART_UNIT, w / _HEART_UNIT - _HEART_OFFSET
        return (x * x + y * y - 1.0) ** 3 - x * x * y ** 3 <= 0.0
    raise ValueError(f"unknown sprite shape {shape!r}; accepted: square, ellipse, heart")


def _sprite(shape: str, scale: float, angle: float, side: int, size: int) -> np.ndarray:
    """One sprite centred on a ``side`` x ``side`` canvas (centre at the canvas' middle): bool ``[side, side]``."""
    ss = _SUPERSAMPLE
    offsets = (np.arange(side * ss) + 0.5) / ss - side / 2            # sample positions relative to the centre
    dx, dy = np.meshgrid(offsets, offsets)                             # dy grows downwards
    unit = scale * size / 64.0                                         # pixels per "pixel at 64, scale 1"
    x, y = dx / unit, -dy / unit                                       # y up
    c, s = np.cos(angle), np.sin(angle)
    u, w = c * x + s * y, -s * x + c * y                               # rotate the point back by the angle
    hits = _inside(shape, u, w).reshape(side, ss, side, ss).sum(axis=(1, 3))
    return hits * 2 >= ss * ss


def centre_shift(value: float, size: int) -> int:
    """Pixels from the first position to the centre of position ``value`` (in [0, 1]) on a ``size`` canvas."""
    shift = value * size * 31 / 64
    if abs(shift - round(shift)) > 1e-6:
        raise ValueError(f"position {value} does not fall on a whole pixel at {size} x {size}")
    return int(round(shift))


@functools.lru_cache(maxsize=4)
def _canvases(grid: FactorGrid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every sprite of ``grid`` on a padded canvas, and each position's pixel shift.

    Returns:
        canvases: uint8 ``[shapes * scales * orientations, S + P - 1, S + P - 1]`` (P = S / 2 possible shifts)
            with the sprite centred at ``P - 1 + S / 4``: the window starting at ``(P - 1 - dy, P - 1 - dx)``
            is the image with the centre shifted by ``(dx, dy)`` pixels from the first position.
        x_shift, y_shift: int64 ``[K]`` pixel shift of each x and y position index.
    """
    size = grid.image_size
    shapes, scales, angles, xs, ys = grid.values
    x_shift = np.array([centre_shift(v, size) for v in xs], dtype=np.int64)
    y_shift = np.array([centre_shift(v, size) for v in ys], dtype=np.int64)
    reach = size // 2                                                  # shifts 0 .. reach - 1
    if max(x_shift.max(), y_shift.max()) >= reach:
        raise ValueError(f"{grid.name}: positions need shifts beyond {reach - 1} pixels")
    side = size // 2                                                   # the sprite's own canvas (fits scale 1)
    big = size + reach - 1
    top = reach - 1 + size // 4 - side // 2
    out = np.zeros((len(shapes), len(scales), len(angles), big, big), dtype=np.uint8)
    for i, shape in enumerate(shapes):
        for j, scale in enumerate(scales):
            for k, angle in enumerate(angles):
                out[i, j, k, top:top + side, top:top + side] = _sprite(shape, scale, angle, side, size) * 255
    return out.reshape(-1, big, big), x_shift, y_shift


def render_sprites(grid: FactorGrid, factors: np.ndarray) -> np.ndarray:
    """Binary sprites for factor indices ``[N, 5]`` (shape, scale, orientation, x, y) -> uint8 ``[N, 1, S, S]``."""
    canvases, x_shift, y_shift = _canvases(grid)
    size = grid.image_size
    n_shape, n_scale, n_angle = grid.sizes[:3]
    sprite = (factors[:, 0] * n_scale + factors[:, 1]) * n_angle + factors[:, 2]
    windows = sliding_window_view(canvases, (size, size), axis=(1, 2))   # [n, P, P, S, S], a view
    last = size // 2 - 1
    return windows[sprite, last - y_shift[factors[:, 4]], last - x_shift[factors[:, 3]]][:, None]
