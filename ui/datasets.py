"""Data sets for the pages, loaded once per process (``st.cache_resource``) and shared.

The shared ``DataSplit`` is read-only by convention: training slices and permutes copies,
the pages only read.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace

import streamlit as st

from vae import tracking
from vae.config import DataConfig
from vae.data import DataError, DataSplit, ImageData, list_datasets, load_dataset
from vae.runs import Run

from . import settings


@dataclass(frozen=True)
class DataKey(DataConfig):
    """A ``DataConfig`` as the key of the process-wide data cache (its text is its repr, fields and all)."""

    @classmethod
    def of(cls, d: DataConfig) -> "DataKey":
        return cls(**{f.name: getattr(d, f.name) for f in fields(DataConfig)})

    def __str__(self) -> str:
        return repr(self)


# Built-in sets too big to hold whole in the web server: the full dSprites grid is 737,280 images, about 3 GB. The
# server renders at most PART of its images for one key (generated sets render only the images a key keeps: a page's
# test images); the command line trains it.
NOT_IN_APP = {"shapes": "the full shapes grid (737,280 images, about 3 GB in the server's memory) is trained from "
                        "the command line (python -m vae train --data shapes); shapes32 is the same grid at 32×32"}
PART = 10_000


def in_part(key: DataKey) -> DataKey:
    """``key`` as the server may load it: for a set in ``NOT_IN_APP``, one training image and at most ``PART`` test
    images (the pages show test images only)."""
    if key.name not in NOT_IN_APP:
        return key
    return replace(key, max_train=1, max_test=min(key.max_test or PART, PART))


def load(key: DataKey, download: bool = False) -> DataSplit:
    """Raises ``DataError`` (one line) for a missing or bad data set, a path outside ``settings.data_roots()``
    (a run's config is a file a student may have written), or the whole of a set in ``NOT_IN_APP``. ``download``
    lets the IDX data sets (mnist, fashion-mnist, kmnist) fetch their files when missing."""
    if key.name in NOT_IN_APP and in_part(key) != key:
        raise DataError(NOT_IN_APP[key.name])
    return _load(key, download)


@st.cache_resource(show_spinner="Loading the data set…", max_entries=6)
def _load(key: DataKey, download: bool) -> DataSplit:
    return load_dataset(key.name, image_size=key.image_size, color=key.color, test_fraction=key.test_fraction,
                        seed=key.split_seed, max_train=key.max_train, max_test=key.max_test, download=download,
                        roots=settings.data_roots())


@st.cache_data(show_spinner=False, ttl=60)
def builtins() -> list[dict]:
    """Built-in data sets with whether each loads offline."""
    return list_datasets()


_SERVER_PATH = re.compile(r"(?<![\w.~-])(?:[A-Za-z]:)?[/\\][^\s,;()'\"]*")


def server_paths_hidden(message: str) -> str:
    """A core error's one line for a browser: every absolute path in it (the server's folders) as "the data folder"."""
    return _SERVER_PATH.sub("the data folder", message)


def for_run(run: Run) -> tuple[ImageData | None, DataKey | None, str | None]:
    """The test images for ``run``: its own data set, else MNIST-like digits of the same shape.

    Returns (test images, the key they were loaded by, a one-line note or None). The images
    are None when nothing fits; the note says why.
    """
    m = run.config.model
    if run.config.kind == "tracked":
        return _tracked(run)
    key = in_part(DataKey.of(run.config.data))
    note = None
    try:
        split = load(key)
    except DataError as e:
        split = None
        note = f"This run's data set is not available here ({server_paths_hidden(str(e))})."
    if split is not None and (split.channels, split.image_size) != (m.channels, m.image_size):
        split, note = None, f"This run's data set now has {split.channels}x{split.image_size}px images, not " \
                            f"{m.channels}x{m.image_size}px."
    if split is None and (m.channels, m.image_size) == (1, 28):
        key = DataKey("mnist5k")
        try:
            split = load(key)
            note = (note or "") + " Showing the built-in MNIST test digits instead."
        except DataError:
            split = None
    if split is None:
        return None, None, note
    test = split.test
    if m.conditional and (test.y is None or int(test.y.max()) >= m.num_classes):
        return None, None, "This conditional run needs labelled test images with its classes."
    return test, key, note


def _tracked(run: Run) -> tuple[ImageData | None, DataKey | None, str | None]:
    """A tracked run (``vae.track``) was tested on its user's own images: those, read from its folder when it holds
    them; else, for a 28x28 grey model, the built-in MNIST digits, said so; else none, said so."""
    m = run.config.model
    path = None if run.path is None else run.path / tracking.TEST_IMAGES
    if path is not None and path.is_file():
        try:
            return (_read_tracked(str(run.path), path.stat().st_mtime, m.channels, m.image_size),
                    DataKey(f"tracked:{run.path.name}"), None)
        except (ValueError, OSError) as e:
            return None, None, f"This run's test images cannot be read ({e})."
    why = "This run was logged with vae.track and its folder holds no test images"
    if (m.channels, m.image_size) == (1, 28):
        try:
            return load(DataKey("mnist5k")).test, DataKey("mnist5k"), f"{why}: showing the built-in MNIST test " \
                "digits instead, not the images it was logged with."
        except DataError:
            pass
    return None, None, f"{why}, and no built-in data set has its {m.channels}x{m.image_size}px images."


@st.cache_resource(show_spinner=False, max_entries=6)
def _read_tracked(run_dir: str, mtime: float, channels: int, size: int) -> ImageData:
    return tracking.read_test_images(run_dir, channels, size)


def noted_test_images(run: Run) -> tuple[ImageData | None, DataKey | None]:
    """``for_run`` for a page: the note, if any, is shown as a caption where the page is drawing."""
    test, key, note = for_run(run)
    if note:
        st.caption(note)
    return test, key
