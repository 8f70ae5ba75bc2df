"""Tests for vae.data: the user's zips and folders of images (layouts, decoding, hostile archives and files)."""

from __future__ import annotations

import io
import os
import stat
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from data_helpers import expect_error, isolate_dirs, snapshot, write_zip
from PIL import Image

from vae.data import DataSplit, Limits, load_dataset
from vae.data import images as data_images


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Every test gets its own empty cache and data folders (never the user's ~/.cache)."""
    return isolate_dirs(tmp_path, monkeypatch)


def png_bytes(arr: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt)
    return buf.getvalue()


def grey(value: int, size: int = 12, h: int | None = None) -> np.ndarray:
    return np.full((h or size, size), value, dtype=np.uint8)


def write_files(root: Path, files: dict[str, bytes]) -> Path:
    for name, payload in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(payload)
    return root


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
    monkeypatch.setattr(data_images, "_decode", lambda *a, **k: decoded.append(1) or pytest.fail("decoded"))
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
    expect_error(lambda: load_dataset(str(path), limits=Limits(max_files=3)), "many.zip", "5 entries",
                 "Limits.max_files")
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
