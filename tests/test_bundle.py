"""Export: the run zip the upload accepts, the codes CSV, the map PNG, the Embedding Projector folder,
and ``python -m vae export``."""
from __future__ import annotations

import csv
import io
import json
import zipfile

import numpy as np
import pytest
import torch
from app_support import ROOT
from PIL import Image

from vae import bundle, load_run
from vae.cli import main

DEMO = ROOT / "assets" / "runs" / "mnist-2d"


def test_run_zip_is_what_the_upload_accepts_and_loads_the_same_weights(tmp_path):
    from ui.uploads import collect_run_files
    blob = bundle.run_zip(DEMO)
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        assert sorted(zf.namelist()) == [f"mnist-2d/{n}" for n in ("config.json", "metrics.json", "model.safetensors")]
    got = collect_run_files([("mnist-2d.zip", blob)])
    for name, data in got.items():
        (tmp_path / name).write_bytes(data)
        assert data == (DEMO / name).read_bytes()
    a, b = load_run(DEMO), load_run(tmp_path)
    for (ka, va), (kb, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)


def test_run_zip_of_a_folder_without_weights_says_what_is_missing(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="missing model.safetensors"):
        bundle.run_zip(tmp_path)


def test_latents_csv_round_trips_codes_and_labels():
    rng = np.random.default_rng(0)
    mu, lv = rng.normal(size=(7, 3)).astype(np.float32), rng.normal(size=(7, 3)).astype(np.float32)
    labels = np.array([0, 1, 2, 0, 1, 2, 1])
    rows = list(csv.reader(io.StringIO(bundle.latents_csv(mu, lv, labels, ["cat", "dog", "eel"]))))
    assert rows[0] == ["index", "label", "class", "mu_0", "mu_1", "mu_2", "logvar_0", "logvar_1", "logvar_2"]
    body = rows[1:]
    assert [int(r[0]) for r in body] == list(range(7))
    assert [r[2] for r in body] == ["cat", "dog", "eel", "cat", "dog", "eel", "dog"]
    np.testing.assert_allclose(np.array([[float(v) for v in r[3:6]] for r in body]), mu, rtol=1e-5)
    np.testing.assert_allclose(np.array([[float(v) for v in r[6:9]] for r in body]), lv, rtol=1e-5)
    unlabeled = list(csv.reader(io.StringIO(bundle.latents_csv(mu, lv))))
    assert unlabeled[0][:2] == ["index", "mu_0"] and len(unlabeled) == 8


def test_map_png_draws_each_class_in_its_colour():
    pts = np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    png = bundle.map_png(pts, np.array([0, 1, 2]), ["a", "b", "c"], size=300)
    img = Image.open(io.BytesIO(png)).convert("RGB")
    assert img.size[1] == 300 and img.size[0] > 300  # a legend to the right
    colours = {c for _, c in img.getcolors(1 << 16)}
    for k in range(3):
        rgb = tuple(int(bundle.PALETTE[k][i:i + 2], 16) for i in (1, 3, 5))
        assert rgb in colours, f"class {k} not drawn"
    assert tuple(int(bundle.PALETTE[3][i:i + 2], 16) for i in (1, 3, 5)) not in colours, "no fourth class"


def test_projector_folder_holds_codes_metadata_and_a_sprite_tile_per_image(tmp_path):
    rng = np.random.default_rng(1)
    n, side = 10, 6
    mu = rng.normal(size=(n, 4)).astype(np.float32)
    images = rng.uniform(size=(n, 1, side, side)).astype(np.float32)
    labels = np.arange(n) % 3
    bundle.write_projector(tmp_path, mu, images, labels, ["x", "y", "z"])
    tensors = np.loadtxt(tmp_path / "tensors.tsv", delimiter="\t", ndmin=2)
    np.testing.assert_allclose(tensors, mu, rtol=1e-5, atol=1e-6)
    meta = (tmp_path / "metadata.tsv").read_text().splitlines()
    assert meta[0] == "index\tlabel" and meta[1:] == [f"{i}\t{'xyz'[i % 3]}" for i in range(n)]
    sheet = np.asarray(Image.open(tmp_path / "sprite.png"))
    per_row = 4  # ceil(sqrt(10))
    assert sheet.shape == (per_row * side, per_row * side)
    r, c = divmod(7, per_row)
    tile = sheet[r * side:(r + 1) * side, c * side:(c + 1) * side]
    np.testing.assert_array_equal(tile, (images[7, 0] * 255).round().astype(np.uint8))
    pbtxt = (tmp_path / "projector_config.pbtxt").read_text()
    assert pbtxt.count(f"single_image_dim: {side}") == 2 and 'metadata_path: "metadata.tsv"' in pbtxt
    cfg = json.loads((tmp_path / "projector_config.json").read_text())["embeddings"][0]
    assert cfg["tensorShape"] == [n, 4] and cfg["sprite"]["singleImageDim"] == [side, side]


def test_a_sprite_too_large_for_the_projector_shrinks_its_thumbnails(monkeypatch):
    monkeypatch.setattr(bundle, "MAX_SPRITE_PX", 40)
    png, side = bundle.sprite(np.ones((25, 1, 10, 10), np.float32))  # 5 per row x 10 px = 50 > 40
    assert side == 8
    assert Image.open(io.BytesIO(png)).size == (40, 40)


def test_cli_export_writes_every_file_and_refuses_a_file_as_target(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["export", str(DEMO), "--to", str(out), "--n", "50"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["images"] == 50 and res["data"] == "mnist5k"
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert names == ["latents.csv", "map.png", "mnist-2d.zip", "projector/metadata.tsv",
                     "projector/projector_config.json", "projector/projector_config.pbtxt", "projector/sprite.png",
                     "projector/tensors.tsv"]
    # the CSV holds the run's own codes for the first 50 test images
    run = load_run(DEMO)
    from vae.data import load_dataset
    test = load_dataset("mnist5k").test
    mu = run.encode(test.x[:50], test.y[:50])["mu"]
    rows = list(csv.reader(open(out / "latents.csv")))[1:]
    np.testing.assert_allclose(np.array([[float(r[3]), float(r[4])] for r in rows]), mu, rtol=1e-4, atol=1e-5)
    assert [int(r[1]) for r in rows] == test.y[:50].tolist()
    # --no-data: only the zip; a file as --to: one line, exit 2, nothing written
    assert main(["export", str(DEMO), "--to", str(tmp_path / "zip-only"), "--no-data"]) == 0
    assert [p.name for p in (tmp_path / "zip-only").iterdir()] == ["mnist-2d.zip"]
    capsys.readouterr()
    (tmp_path / "afile").write_text("mine")
    assert main(["export", str(DEMO), "--to", str(tmp_path / "afile")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a file" in err[0]
    assert (tmp_path / "afile").read_text() == "mine"
