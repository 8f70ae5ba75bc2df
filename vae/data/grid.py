"""The factor grid of a generated data set: its factors' names and values (``vae.data.factors`` builds the sets)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class FactorGrid:
    """The factors of a generated data set: names, values and the image they render to.

    Attributes:
        name: The data set's name (a key of :data:`vae.data.DATASETS`).
        names: One human-readable name per factor, e.g. ``("shape", "scale", ...)``.
        values: ``values[f][k]`` is the value of factor ``f`` at index ``k`` (a float, or a string for a
            categorical factor such as the shape).
        image_size: Side S of the square images.
        channels: 1 (grey) or 3 (RGB).
        label_factor: The factor whose index is the class label ``y``.
    """

    name: str
    names: tuple[str, ...]
    values: tuple[tuple[Any, ...], ...]
    image_size: int
    channels: int
    label_factor: int = 0

    @property
    def sizes(self) -> tuple[int, ...]:
        """Number of values of each factor, ``[F]``."""
        return tuple(len(v) for v in self.values)

    def __len__(self) -> int:
        return math.prod(self.sizes)

    def unravel(self, flat: np.ndarray) -> np.ndarray:
        """Flat grid positions ``[N]`` (row-major, the last factor fastest) -> factor indices int64 ``[N, F]``."""
        return np.stack(np.unravel_index(np.asarray(flat, dtype=np.int64), self.sizes), axis=1).astype(np.int64)

    def ravel(self, factors: np.ndarray) -> np.ndarray:
        """Factor indices ``[N, F]`` -> flat grid positions int64 ``[N]``."""
        f = self.check(factors)
        return np.ravel_multi_index(tuple(f.T), self.sizes).astype(np.int64)

    def check(self, factors: np.ndarray) -> np.ndarray:
        """``factors`` as int64 ``[N, F]`` with every index in range, else ValueError (one line)."""
        f = np.asarray(factors)
        if f.ndim != 2 or f.shape[1] != len(self.sizes) or not np.issubdtype(f.dtype, np.integer):
            raise ValueError(f"{self.name}: factors must be integers [N, {len(self.sizes)}], got {f.dtype} "
                             f"{tuple(f.shape)}")
        if f.size and ((f < 0).any() or (f >= np.asarray(self.sizes)).any()):
            raise ValueError(f"{self.name}: a factor index is out of range; accepted: 0 <= index < {self.sizes}")
        return f.astype(np.int64, copy=False)

    def class_names(self) -> list[str]:
        """Names of the classes of ``y`` (the label factor's values as text)."""
        return [str(v) for v in self.values[self.label_factor]]

    def summary(self) -> str:
        """One line: ``shape 3, scale 6, ...``."""
        return ", ".join(f"{n} {k}" for n, k in zip(self.names, self.sizes))
