"""Tests for vae.data: the user's npz files and arrays (layouts, values, labels, splits, hostile inputs)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from data_helpers import expect_error, isolate_dirs, write_zip

from vae.data import Limits, load_dataset, validate_images


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Every test gets its own empty cache and data folders (never the user's ~/.cache)."""
    return isolate_dirs(tmp_path, monkeypatch)


def save_npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


# ---------------------------------------------------------------------------------------------
# npz files
# ---------------------------------------------------------------------------------------------


def _base_images(n: int = 10, side: int = 12) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, side, side), dtype=np.uint8)


@pytest.mark.parametrize(
    ("make", "channels"),
    [
        (lambda b: b, 1),                                                 # [N,H,W]
        (lambda b: b[..., None], 1),                                      # [N,H,W,1]
        (lambda b: b[:, None], 1),                                        # [N,1,H,W]
        (lambda b: np.stack([b, 255 - b, b // 2], axis=-1), 3),           # [N,H,W,3]
        (lambda b: np.stack([b, 255 - b, b // 2], axis=1), 3),            # [N,3,H,W]
        (lambda b: np.stack([b, 255 - b, b // 2, np.zeros_like(b)], axis=-1), 3),  # RGBA, alpha dropped
    ],
)
def test_npz_layouts(tmp_path: Path, make: Callable[[np.ndarray], np.ndarray], channels: int) -> None:
    base = _base_images()
    path = save_npz(tmp_path / "d.npz", x=make(base))
    split = load_dataset(str(path), test_fraction=0.2)
    assert split.channels == channels and split.image_size == 12
    assert (len(split.train), len(split.test)) == (8, 2)
    assert not split.has_labels and split.class_names is None and split.num_classes == 0
    assert split.name == str(path)
    got = torch.cat([split.train.x, split.test.x])[:, 0].numpy()
    assert {bytes(r) for r in got.reshape(10, -1)} == {bytes(r) for r in base.reshape(10, -1)}


def test_npz_float_bool_and_int_values(tmp_path: Path) -> None:
    base = _base_images(4)
    as_float = save_npz(tmp_path / "f.npz", x=base.astype(np.float32) / 255.0, x_test=base[:1].astype(np.float64) / 255)
    split = load_dataset(str(as_float))
    assert torch.equal(split.train.x[:, 0], torch.from_numpy(base))
    bools = save_npz(tmp_path / "b.npz", x=base > 127, x_test=base[:2] > 127)
    split = load_dataset(str(bools))
    assert set(split.train.x.unique().tolist()) == {0, 255}
    assert torch.equal(split.train.x[:, 0], torch.from_numpy((base > 127).astype(np.uint8) * 255))
    ints = save_npz(tmp_path / "i.npz", x=base.astype(np.int64), x_test=base[:1].astype(np.int16))
    assert torch.equal(load_dataset(str(ints)).train.x[:, 0], torch.from_numpy(base))
    halfway = save_npz(tmp_path / "h.npz", x=np.full((2, 8, 8), 0.5, np.float32), x_test=np.zeros((1, 8, 8)))
    assert int(load_dataset(str(halfway)).train.x[0, 0, 0, 0]) == 128  # round(0.5 * 255)


def test_npz_labels_and_explicit_test_split(tmp_path: Path) -> None:
    base = _base_images(20)
    y = np.arange(20) % 4
    path = save_npz(tmp_path / "l.npz", x=base, y=y.astype(np.float32), x_test=base[:5],
                    y_test=np.array([0, 1, 2, 3, 5]))
    split = load_dataset(str(path))
    assert split.has_labels and split.num_classes == 6 and split.class_names == [str(i) for i in range(6)]
    assert torch.equal(split.train.x[:, 0], torch.from_numpy(base)), "explicit split keeps the order"
    assert split.train.y.tolist() == y.tolist() and split.test.y.tolist() == [0, 1, 2, 3, 5]
    assert split.train.y.dtype == torch.int64
    assert "own test split" in split.source


def test_npz_random_split_is_stratified_and_seeded(tmp_path: Path) -> None:
    base = _base_images(40)
    path = save_npz(tmp_path / "s.npz", x=base, y=np.arange(40) % 2, class_names=np.array(["even", "odd"]))
    a = load_dataset(str(path), seed=1, test_fraction=0.25)
    b = load_dataset(str(path), seed=1, test_fraction=0.25)
    c = load_dataset(str(path), seed=2, test_fraction=0.25)
    assert a.class_names == ["even", "odd"]
    assert torch.bincount(a.test.y).tolist() == [5, 5]
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.y, b.test.y)
    assert not torch.equal(a.train.x, c.train.x)


def test_npz_tiny_data_sets(tmp_path: Path) -> None:
    one = load_dataset(str(save_npz(tmp_path / "one.npz", x=_base_images(1))))
    assert len(one.train) == 1 and len(one.test) == 1 and torch.equal(one.train.x, one.test.x)
    two = load_dataset(str(save_npz(tmp_path / "two.npz", x=_base_images(2))), test_fraction=0.01)
    assert (len(two.train), len(two.test)) == (1, 1)


def test_npz_resize_and_colour(tmp_path: Path) -> None:
    path = save_npz(tmp_path / "big.npz", x=np.full((3, 100, 100), 200, np.uint8))
    expect_error(lambda: load_dataset(str(path)), "big.npz", "100x100", "8-64")
    split = load_dataset(str(path), image_size=16, color="rgb")
    assert split.train.x.shape[1:] == (3, 16, 16) and int(split.train.x.min()) == 200 == int(split.train.x.max())
    rgb = save_npz(tmp_path / "rgb.npz", x=np.zeros((3, 8, 8, 3), np.uint8) + np.array([255, 0, 0], np.uint8))
    grey_split = load_dataset(str(rgb), color="grey")
    assert grey_split.channels == 1 and int(grey_split.train.x[0, 0, 0, 0]) == 76  # PIL luma of pure red


@pytest.mark.parametrize(
    ("arrays", "parts"),
    [
        ({"x": np.zeros((10, 28), np.uint8)}, ("array 'x'", "shape (10, 28)", "[N,H,W]")),
        ({"x": np.zeros((2, 1, 8, 8, 1), np.uint8)}, ("array 'x'", "shape")),
        ({"x": np.zeros((4, 5, 8, 8), np.uint8)}, ("no channel axis",)),
        ({"x": np.zeros((10, 28, 20), np.uint8)}, ("28x20", "not square")),
        ({"x": np.zeros((10, 28, 20, 1), np.uint8)}, ("not square",)),
        ({"x": np.zeros((10, 8, 8), np.complex64)}, ("complex64", "accepted: uint8")),
        ({"x": np.full((2, 8, 8), "a")}, ("dtype <U1", "accepted")),
        ({"x": np.full((2, 8, 8), np.nan, np.float32)}, ("NaN",)),
        ({"x": np.full((2, 8, 8), np.inf)}, ("infinite",)),
        ({"x": np.full((2, 8, 8), 1.5)}, ("outside 0-1", "float 0-1")),
        ({"x": np.full((2, 8, 8), -0.1)}, ("outside 0-1",)),
        ({"x": np.full((2, 8, 8), 300, np.int16)}, ("integer values 300..300", "0-255")),
        ({"x": np.zeros((0, 8, 8), np.uint8)}, ("empty",)),
        ({"x": np.zeros((3, 4, 4), np.uint8)}, ("4x4", "8-64")),
        ({"x": np.zeros((3, 8, 8), np.uint8), "y": np.array([0, 1])}, ("array 'y'", "2 labels", "3 images")),
        ({"x": np.zeros((3, 8, 8), np.uint8), "y": np.array([0, -1, 2])}, ("negative",)),
        ({"x": np.zeros((3, 8, 8), np.uint8), "y": np.array([0, 1.5, 2])}, ("non-integer",)),
        ({"x": np.zeros((3, 8, 8), np.uint8), "y": np.array(["a", "b", "c"])}, ("array 'y'", "dtype")),
        ({"x": np.zeros((3, 8, 8), np.uint8), "y": np.array([0, 1, 10**9])}, ("labels up to",)),
        ({"x": np.array([{}, {}], dtype=object)}, ("array 'x'", "Python objects")),
        ({"images": np.zeros((3, 8, 8), np.uint8)}, ("no array 'x'", "found: images")),
        ({"x": np.zeros((3, 8, 8), np.uint8), "x_test": np.zeros((2, 8, 8), np.uint8),
          "y": np.zeros(3, np.int64)}, ("labels for both splits",)),
        ({"x": np.zeros((3, 8, 8), np.uint8), "y_test": np.zeros(3, np.int64)}, ("no 'x_test'",)),
        ({"x": np.zeros((3, 8, 8), np.uint8), "x_test": np.zeros((2, 9, 9, 9), np.uint8)}, ("array 'x_test'",)),
        ({"x": np.zeros((3, 8, 8), np.uint8), "y": np.array([0, 1, 1]), "class_names": np.array(["a"])},
         ("class_names", "1 name(s)", "one name per class")),
        ({"x": np.zeros((3, 8, 8), np.uint8), "y": np.array([0, 1, 1]), "class_names": np.array([1, 2])},
         ("class_names", "strings")),
    ],
)
def test_npz_bad_inputs(tmp_path: Path, arrays: dict[str, np.ndarray], parts: tuple[str, ...]) -> None:
    path = save_npz(tmp_path / "bad.npz", **arrays)
    expect_error(lambda: load_dataset(str(path)), "bad.npz", *parts)


def test_npz_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "junk.npz"
    path.write_bytes(b"this is not a zip file at all")
    expect_error(lambda: load_dataset(str(path)), "junk.npz", "not a valid zip", "numpy.savez")


def test_npz_too_many_images(tmp_path: Path) -> None:
    path = save_npz(tmp_path / "many.npz", x=np.zeros((10, 8, 8), np.uint8), x_test=np.zeros((3, 8, 8), np.uint8))
    expect_error(lambda: load_dataset(str(path), limits=Limits(max_images=12)), "many.npz", "13", "Limits.max_images")
    assert len(load_dataset(str(path), limits=Limits(max_images=13)).test) == 3


def test_npz_zip_checks(tmp_path: Path) -> None:
    path = tmp_path / "zeros.npz"
    np.savez_compressed(path, x=np.zeros((2000, 32, 32), np.uint8))  # 2 MB of zeros -> ~2 KB
    expect_error(lambda: load_dataset(str(path), limits=Limits(max_uncompressed_bytes=1 << 20)),
                 "zeros.npz", "Limits.max_uncompressed_bytes")
    expect_error(lambda: load_dataset(str(path)), "zeros.npz", "entry 'x.npy'", "Limits.max_ratio", "zip bomb")
    expect_error(lambda: load_dataset(str(path), limits=Limits(max_file_bytes=100)), "Limits.max_file_bytes")
    assert len(load_dataset(str(path), limits=Limits(max_ratio=10_000)).train) == 1800


def test_npz_header_claiming_more_data_than_present(tmp_path: Path) -> None:
    npy = io.BytesIO()
    np.lib.format.write_array_header_1_0(npy, {"descr": "|u1", "fortran_order": False, "shape": (10**7, 28, 28)})
    npy.write(b"\x00" * 100)
    path = write_zip(tmp_path / "liar.npz", {"x.npy": npy.getvalue()}, zipfile.ZIP_STORED)
    expect_error(lambda: load_dataset(str(path)), "liar.npz", "array 'x'", "too short")


def test_validate_images_directly() -> None:
    x, y = validate_images(np.ones((2, 9, 9, 3), np.float32), np.array([1, 0]), what="upload", limits=Limits())
    assert x.shape == (2, 3, 9, 9) and x.dtype == np.uint8 and x.flags.c_contiguous and int(x.max()) == 255
    assert y is not None and y.dtype == np.int64 and y.tolist() == [1, 0]
    x, y = validate_images(np.zeros((2, 100, 100), np.uint8), None, what="upload", limits=Limits(), image_size=20)
    assert x.shape == (2, 1, 20, 20) and y is None
    expect_error(lambda: validate_images(np.zeros((2, 8, 8), np.uint8), None, what="upload",
                                         limits=Limits(max_image_pixels=10)), "upload", "Limits.max_image_pixels")
    expect_error(lambda: validate_images([[1]], None, what="upload", limits=Limits()), "upload", "not an array")
