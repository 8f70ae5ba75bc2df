"""The run doctor: each problem caught on a run made to have it, silence on a healthy run.

Runs are real (mnist5k, 2,000 training images, a small MLP, a few hundred steps) so the checks
are tested against the histories ``vae.train`` actually writes, not hand-made numbers.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vae import doctor
from vae.cli import main
from vae.config import ModelConfig, RunConfig, TrainConfig
from vae.data import load_dataset
from vae.evaluate import evaluate
from vae.runs import save_run
from vae.train import fit

ROOT = Path(__file__).resolve().parents[1]
# no learning-rate warm-up: it would tame the lr_high case
BASE_TRAIN = {"batch_size": 32, "epochs": 3, "lr": 2e-3, "lr_warmup": 0.0, "threads": 1, "seed": 0}
CASES = {
    "healthy": ({}, {}),
    "collapse": ({}, {"beta": 60.0}),
    "lr_high": ({}, {"lr": 0.03, "lr_schedule": "constant"}),
    "nan": ({}, {"lr": 5.0, "lr_schedule": "constant"}),
    "blurry": ({"likelihood": "gaussian", "gaussian_sigma": 1.0}, {}),
    "kl_blowup": ({"latent_dim": 4}, {"beta": 0.0, "lr": 5e-3, "lr_schedule": "constant"}),
}


@pytest.fixture(scope="module")
def data():
    return load_dataset("mnist5k", max_train=2000, max_test=300)


_cache: dict = {}


def run_case(name, data):
    if name not in _cache:
        mk, tk = CASES[name]
        cfg = RunConfig(model=ModelConfig(**{"latent_dim": 8, "hidden": (256, 128), **mk}),
                        train=TrainConfig(**{**BASE_TRAIN, **tk}))
        r = fit(cfg, data)
        metrics = {"status": r.status, "message": r.message, "history": r.history,
                   "final": evaluate(r.model, data.test)}
        _cache[name] = (cfg, json.loads(json.dumps(metrics, default=float).replace("NaN", "null")), r.model)
    return _cache[name]


def codes(name, data):
    cfg, metrics, model = run_case(name, data)
    return {f["code"]: f for f in doctor.diagnose(metrics, cfg, model=model, test=data.test)}


def test_quiet_on_a_healthy_run(data):
    found = codes("healthy", data)
    assert found == {}, f"healthy run flagged: {[(c, f['title']) for c, f in found.items()]}"


def test_posterior_collapse_from_a_huge_beta(data):
    f = codes("collapse", data)["posterior_collapse"]
    assert f["severity"] == "error"
    assert f["evidence"]["facts"]["active_units"] <= 1 and f["evidence"]["facts"]["kl_nats"] < 1.0
    assert len(f["evidence"]["series"]["kl_per_dim"]) == 8
    assert f["suggested_changes"]["train"]["beta"] == 1.0
    fixed = doctor.apply_changes(run_case("collapse", data)[0], f["suggested_changes"])
    assert fixed.train.beta == 1.0 and fixed.train.free_bits > 0


def test_lr_too_high(data):
    found = codes("lr_high", data)
    assert "lr_too_high" in found, list(found)
    f = found["lr_too_high"]
    assert f["suggested_changes"]["train"]["lr"] < 0.05
    assert len(f["evidence"]["series"]["loss"]) == len(f["evidence"]["x"]) > 10


def test_non_finite_loss(data):
    cfg, metrics, _ = run_case("nan", data)
    assert metrics["status"] == "failed"
    found = codes("nan", data)
    assert list(found)[0] == "non_finite" and found["non_finite"]["severity"] == "error"
    assert found["non_finite"]["suggested_changes"]["train"]["grad_clip"] > 0


def test_blurry_from_a_wide_gaussian(data):
    found = codes("blurry", data)
    assert "blurry" in found, list(found)
    f = found["blurry"]
    assert f["evidence"]["facts"]["sharpness_ratio"] < 0.8
    assert f["suggested_changes"]["model"] == {"likelihood": "bernoulli"}


def test_kl_explosion_without_a_kl_penalty(data):
    found = codes("kl_blowup", data)
    assert "kl_explosion" in found, list(found)
    assert found["kl_explosion"]["evidence"]["facts"]["kl_per_dim"] > doctor.KL_PER_DIM_MAX
    assert found["kl_explosion"]["suggested_changes"]["train"]["beta"] == 1.0


def test_cli_doctor_on_a_saved_run(data, tmp_path, capsys):
    cfg, metrics, model = run_case("collapse", data)
    cfg = RunConfig(model=cfg.model, train=cfg.train, data=cfg.data.__class__(name="mnist5k", max_train=2000,
                                                                                  max_test=300))
    save_run(tmp_path / "run", model, cfg, metrics)
    assert main(["doctor", str(tmp_path / "run")]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["healthy"] is False and out["findings"][0]["code"] == "posterior_collapse"
    cmd = out["findings"][0]["command"]
    assert cmd.startswith("python -m vae train") and "--beta 1" in cmd and "--free-bits 0.5" in cmd


def test_cli_doctor_bad_folder(tmp_path, capsys):
    assert main(["doctor", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:")
