"""Use cases: linear probe, compression, rate-distortion, augmentation, anomaly scores, and their CLI."""
import gzip
import json

import numpy as np
import pytest
import torch

from vae import usecases
from vae.cli import main
from vae.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from vae.data import DataSplit, ImageData, load_dataset
from vae.models import build_model
from vae.runs import load_run, save_run
from vae.train import fit

FAST = {"batch_size": 32, "threads": 1, "lr": 2e-3, "seed": 0}


@pytest.fixture(scope="module")
def data():
    return load_dataset("mnist5k", max_train=1500, max_test=300)


@pytest.fixture(scope="module")
def trained(data):
    cfg = RunConfig(model=ModelConfig(latent_dim=8, hidden=(256, 128)), train=TrainConfig(epochs=3, **FAST),
                    data=DataConfig(name="mnist5k", max_train=1500, max_test=300))
    return cfg, fit(cfg, data)


def test_probe_rows_per_budget(data, trained):
    _, res = trained
    out = usecases.linear_probe(res.model, data, budgets=[30, 100])
    rows = out["rows"]
    assert [r["labels"] for r in rows] == [30, 100]
    for r in rows:
        assert 0.1 < r["pixel_accuracy"] <= 1 and 0.1 < r["latent_accuracy"] <= 1
    assert rows[1]["latent_accuracy"] > 0.25  # a 3-epoch VAE on 1,500 images; chance is 0.1


def test_compression_numbers_are_consistent(data, trained):
    _, res = trained
    out = usecases.compression(res.model, data.test, iw_samples=20, max_images=200)
    assert out["n_images"] == 200 and out["images"].startswith("binarised")
    # the IW bound is tighter than the ELBO, and both beat 1 raw bit per binary pixel
    assert out["iw_bits_per_dim"] <= out["neg_elbo_bits_per_dim"] + 1e-6
    assert out["neg_elbo_bits_per_dim"] < 1.0
    # gzip of packed bits: recompute independently
    from vae.evaluate import fixed_binarized
    xb = fixed_binarized(data.test.x[:200], 0).numpy()
    gz = len(gzip.compress(np.packbits(xb > 127).tobytes(), compresslevel=9))
    assert out["gzip_bits_per_dim"] == pytest.approx(gz * 8 / (200 * 784))
    assert out["png_per_image_bits_per_dim"] > out["png_tiled_bits_per_dim"]  # per-file headers cost


def test_rate_distortion_moves_with_beta(data, tmp_path):
    base = RunConfig(model=ModelConfig(latent_dim=8, hidden=(128,)), train=TrainConfig(epochs=2, **FAST))
    small = DataSplit(data.name, data.source, ImageData(data.train.x[:800], data.train.y[:800]), data.test,
                      data.class_names)
    res = usecases.rate_distortion(small, [0.3, 4.0], base=base, out_root=tmp_path)
    lo, hi = res["points"]
    assert lo["rate_nats"] > hi["rate_nats"] and lo["distortion_nats"] < hi["distortion_nats"]
    assert (tmp_path / "beta-0.3" / "model.safetensors").is_file()


def test_augmentation_reports_both_accuracies(data, tmp_path):
    res = usecases.augmentation(data, labels=50, per_class=20, cvae_epochs=15, threads=1, max_test=200,
                                classifier_steps=150, out=tmp_path / "cvae")
    assert res["labels"] == 50 and res["n_test"] == 200
    assert 0.3 < res["accuracy_without"] <= 1 and 0.1 < res["accuracy_with"] <= 1  # chance is 0.1
    assert res["classifier"].startswith("MLP 784-256-10")
    # no label leaks in: the CVAE (written through the pipeline) saw exactly the 50 labelled images
    cvae = load_run(tmp_path / "cvae")
    assert cvae.metrics.n_train == 50 and cvae.config.model.conditional
    x, y = res["samples"]["x"], res["samples"]["y"]
    assert x.shape == (200, 1, 28, 28) and x.dtype == np.uint8 and np.bincount(y).tolist() == [20] * 10


def test_holdout_class_scores_higher():
    from helpers import tiny_split
    data = tiny_split(n_train=300, n_test=120, side=8, classes=3)
    train = usecases.without_class(data, 2)
    assert (train.train.y != 2).all() and len(train.test.x) == 120
    cfg = RunConfig(model=ModelConfig(image_size=8, latent_dim=2, hidden=(32,)), train=TrainConfig(epochs=20, **FAST))
    model = fit(cfg, train).model
    res = usecases.holdout_anomaly(model, data.test, 2, top=10, reference=train.train, iw_samples=10)
    assert res["auroc"] > 0.9, res["auroc"]
    assert res["auroc_iw_nll"] > 0.9 and res["iw_samples"] == 10
    assert res["auroc_latent_class"] > 0.9, res["auroc_latent_class"]
    assert res["holdout_share_of_top"] >= 0.8
    assert res["mean_score_per_class"]["2"] > max(res["mean_score_per_class"]["0"], res["mean_score_per_class"]["1"])
    assert usecases.holdout_auroc(np.array([0.1, 0.2, 0.9]), np.array([0, 0, 1]), 1) == 1.0
    with pytest.raises(ValueError, match="held-out class must be 0..2"):
        usecases.without_class(data, 7)


def test_latent_class_score_is_the_mixture_density_of_the_codes():
    """Recomputed with numpy from the codes: one full-covariance Gaussian per class, weighted by its share."""
    from helpers import tiny_split

    from vae.data import to_float
    from vae.usecases.anomaly import latent_class_scores
    data = tiny_split(n_train=200, n_test=30, side=8, classes=3)
    torch.manual_seed(0)
    model = build_model(ModelConfig(image_size=8, latent_dim=3, hidden=(16,))).eval()
    got = latent_class_scores(model, data.train, data.test, ridge=1e-4)
    with torch.no_grad():
        ref = model.encode(to_float(data.train.x))[0].double().numpy()
        mu = model.encode(to_float(data.test.x))[0].double().numpy()
    y = data.train.y.numpy()
    dens = np.zeros(len(mu))
    for c in np.unique(y):
        a = ref[y == c]
        cov = np.cov(a.T) + 1e-4 * np.eye(3)
        d = mu - a.mean(0)
        quad = np.einsum("nd,de,ne->n", d, np.linalg.inv(cov), d)
        dens += (len(a) / len(ref)) * np.exp(-0.5 * (quad + np.linalg.slogdet(cov)[1] + 3 * np.log(2 * np.pi)))
    assert np.allclose(got, -np.log(dens), rtol=1e-4, atol=1e-3)
    with pytest.raises(ValueError, match="labelled reference"):
        latent_class_scores(model, ImageData(data.train.x, None), data.test)


def test_cli_probe_compress_anomaly(trained, data, tmp_path, capsys):
    cfg, res = trained
    run = save_run(tmp_path / "run", res.model, cfg, {"history": res.history})
    assert main(["probe", str(run), "--budgets", "50", "--threads", "1"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["rows"][0]["labels"] == 50
    assert main(["compress", str(run), "--n", "50", "--iw-samples", "5"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["n_images"] == 50 and out["iw_samples"] == 5
    png = tmp_path / "top.png"
    assert main(["anomaly", str(run), "--holdout-class", "3", "--top", "5", "--png", str(png)]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(out["top_indices"]) == 5 and 0 <= out["auroc"] <= 1 and png.stat().st_size > 100


@pytest.mark.parametrize("argv,needle", [
    (["rd", "--betas", "a,b", "--out", "x"], "--betas"),
    (["anomaly", "--data", "mnist5k", "--holdout-class", "3"], "--out"),
    (["anomaly", "--data", "mnist5k", "--holdout-class", "12", "--out", "OUT"], "holdout-class"),
    (["probe", "/nonexistent/run"], "not a run folder"),
])
def test_cli_bad_input(tmp_path, capsys, argv, needle):
    argv = [a.replace("OUT", str(tmp_path / "o")) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and needle in err[0], err
