"""The run doctor, on recorded histories and on real runs.

Recorded (tests/data/doctor/*.json, made by record.py there): one real run per trouble, kept as it ended on
the machine that recorded it, including the endings a too-high learning rate has on other CPUs (spikes, NaN,
every dimension shut, or a quiet run that learned little). The detectors are checked on every ending here, on
any machine. Real runs (mnist5k, 2,000 images, a small MLP) are trained only for the troubles whose symptom
has a wide margin on any CPU and thread count; ``VAE_LAB_TEST_SEEDS=0,1,2`` repeats them over seeds.
"""
import json
import math
import os
from pathlib import Path

import pytest
import torch

from vae.cli import build_parser, main
from vae.cli.train import args_for, config_from_args
from vae.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from vae.data import ImageData, load_dataset
from vae.evaluate import evaluate
from vae.record import EpochRecord, Final, History, Metrics, StepRecord
from vae.runs import save_run
from vae.train import fit
from vae.usecases import doctor

FIXTURES = Path(__file__).resolve().parent / "data" / "doctor"
SEEDS = [int(s) for s in os.environ.get("VAE_LAB_TEST_SEEDS", "0").split(",")]

#: recorded case -> the findings it must produce (a superset is allowed except for the healthy run)
RECORDED = {
    "healthy": set(),
    "collapse": {"posterior_collapse"},
    "nan": {"non_finite"},
    "blurry": {"blurry"},
    "kl_blowup": {"kl_explosion"},
    "lr_spiky": {"lr_too_high"},
    "lr_collapsed": {"posterior_collapse", "lr_too_high"},
    "lr_quiet": {"lr_too_high"},
    "kl_collapsing": {"posterior_collapse"},
}


def recorded(name: str) -> tuple[RunConfig, dict]:
    rec = json.loads((FIXTURES / f"{name}.json").read_text())
    return RunConfig.from_dict(rec["config"]), rec["metrics"]


def lowers_lr(findings: list[dict], cfg: RunConfig) -> bool:
    return any(f["suggested_changes"].get("train", {}).get("lr", cfg.train.lr) < cfg.train.lr for f in findings)


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_recorded_run(name):
    cfg, metrics = recorded(name)
    found = doctor.diagnose(metrics, cfg)
    codes = {f["code"] for f in found}
    if name == "healthy":
        assert found == [], [(f["code"], f["title"]) for f in found]
        return
    assert RECORDED[name] <= codes, f"{name}: expected {RECORDED[name]}, found {codes}"
    for f in found:                      # evidence that can be drawn, a change that validates
        ev = f["evidence"]
        assert all(len(ys) == len(ev["x"]) for ys in ev["series"].values()), f["code"]
        assert doctor.apply_changes(cfg, f["suggested_changes"]) != cfg
    if name.startswith("lr_") or name in ("nan", "kl_collapsing"):
        assert lowers_lr(found, cfg), f"{name}: no finding lowers the learning rate {cfg.train.lr}"


def test_a_quiet_run_at_a_far_too_high_rate_is_caught():
    """The run the old doctor passed as healthy: no spike, no NaN, 12 nats better than ignoring z."""
    cfg, metrics = recorded("lr_quiet")
    final = metrics["final"]
    assert final["kl"] / cfg.model.latent_dim < doctor.WEAK_KL_PER_DIM          # the recording shows the symptom
    f = next(f for f in doctor.diagnose(metrics, cfg) if f["code"] == "lr_too_high")
    weak = f["evidence"]["facts"]["learned_little"]
    assert weak["kl_per_dim"] < 0.5 and weak["gain"] < 0.1, weak
    assert f["evidence"]["facts"]["loss_spikes"] < doctor.SPIKE_MIN_COUNT       # caught without any spike
    assert "learned little" in f["advice"] and f["suggested_changes"]["train"]["lr"] <= cfg.train.lr / 10


def test_kl_collapsing_during_training_is_caught():
    cfg, metrics = recorded("kl_collapsing")
    f = next(f for f in doctor.diagnose(metrics, cfg) if f["code"] == "posterior_collapse")
    facts = f["evidence"]["facts"]
    assert facts["collapsing_in_training"] and facts["peak_test_kl"] > 4 * facts["kl_nats"]
    assert facts["active_units"] / facts["latent_dim"] >= doctor.COLLAPSE_ACTIVE_FRACTION  # the old rule missed it
    assert "earlier in training" in f["title"]


def test_a_high_rate_that_learned_well_is_not_blamed():
    """The healthy recording, relabelled as trained at 15x the usual rate: nothing in it looks wrong."""
    cfg, metrics = recorded("healthy")
    fast = RunConfig(model=cfg.model, train=TrainConfig(**{**cfg.to_dict()["train"], "lr": 0.03}), data=cfg.data)
    assert doctor.lr_far_too_high(fast.train)
    assert doctor.diagnose(metrics, fast) == []


def test_the_shipped_demo_runs_are_healthy():
    root = Path(__file__).resolve().parents[1] / "assets" / "runs"
    for run in sorted(root.iterdir()):
        cfg = RunConfig.from_json((run / "config.json").read_text())
        found = doctor.diagnose(json.loads((run / "metrics.json").read_text()), cfg)
        assert found == [], (run.name, [(f["code"], f["title"]) for f in found])


def test_the_checks_read_a_record_built_in_python():
    """Each check reads the typed record (attributes, a step's figures), not a dict in the layout of metrics.json."""
    cfg = RunConfig(model=ModelConfig(latent_dim=8), train=TrainConfig(epochs=4, lr=1e-3))
    steps = [StepRecord(epoch=1, global_step=i + 1, figures={"loss": 100.0, "recon": 98.0, "kl": 2.0}, grad_norm=1.0,
                        lr=1e-3) for i in range(3)]
    steps.append(StepRecord(epoch=1, global_step=4, figures={"loss": math.nan, "kl": 2.0}, grad_norm=math.inf))
    failed = Metrics(status="failed", message="loss is nan at step 4", history=History(steps=steps))
    f = doctor.check_non_finite(failed, cfg)
    assert f["code"] == "non_finite" and f["evidence"]["facts"]["non_finite_steps"] == [4]
    assert f["evidence"]["facts"]["status"] == "failed" and "loss is nan at step 4" in f["advice"]
    assert f["evidence"]["x"] == [1.0, 2.0, 3.0, 4.0]
    assert f["evidence"]["series"] == {"loss": [100.0, 100.0, 100.0, None], "grad_norm": [1.0, 1.0, 1.0, None]}
    assert [f["code"] for f in doctor.diagnose(failed, cfg)] == ["non_finite"]

    epochs = [EpochRecord(epoch=e, train={"loss": 160.0}, test={"kl": kl, "recon": 150.0}, active_units=a)
              for e, kl, a in ((1, 6.0, 5), (2, 4.0, 3), (3, 0.2, 0))]
    collapsed = Metrics(history=History(epochs=epochs),
                        final=Final(neg_elbo=150.2, kl=0.2, kl_per_dim=[0.025] * 8, active_units=0))
    f = doctor.check_posterior_collapse(collapsed, cfg)
    facts = f["evidence"]["facts"]
    assert f["severity"] == "error" and facts["active_units"] == 0 and facts["kl_nats"] == 0.2
    assert facts["collapsing_in_training"] and facts["peak_test_kl"] == 6.0
    assert f["evidence"]["epochs"] == {"x": [1.0, 2.0, 3.0], "kl": [6.0, 4.0, 0.2], "active_units": [5.0, 3.0, 0.0]}
    assert f["evidence"]["series"]["kl_per_dim"] == [0.025] * 8
    assert doctor.diagnose(collapsed, cfg) == doctor.diagnose(collapsed.to_dict(), cfg)


def test_the_blur_advice_suggests_only_what_the_run_does_not_have():
    """A Bernoulli run blurred by a large beta is told to lower beta, not to use the Bernoulli it already uses (a new
    user's walk-through); a Gaussian one with a fixed sigma is told to switch likelihood or learn sigma."""
    bern = doctor.check_blurry(Metrics(), RunConfig(model=ModelConfig(latent_dim=8), train=TrainConfig(beta=50.0)))
    assert bern["suggested_changes"] == {"train": {"beta": 1.0}}
    assert "Set beta = 1." in bern["advice"] and "Bernoulli" not in bern["advice"], bern["advice"]
    gauss = doctor.check_blurry(Metrics(), RunConfig(model=ModelConfig(likelihood="gaussian", gaussian_sigma=0.5)))
    assert gauss["suggested_changes"] == {"model": {"likelihood": "bernoulli"}}
    assert "Use a Bernoulli likelihood" in gauss["advice"] and "beta" not in gauss["advice"].split(". ")[-1]


def test_diagnose_adds_the_zero_point_without_changing_the_callers_record():
    """A record without the mean-image nats gets them from the test images; the caller's Metrics stays as it was."""
    cfg = RunConfig(model=ModelConfig(latent_dim=8), train=TrainConfig(lr=0.05, batch_size=128))
    x = torch.randint(0, 256, (16, 1, 28, 28), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    quiet = Metrics(final=Final(neg_elbo=1e6, kl=1.0, kl_per_dim=[0.125] * 8, active_units=8))
    assert doctor.learned_little(quiet, cfg) == {"kl_per_dim": 0.125}
    f = next(f for f in doctor.diagnose(quiet, cfg, test=ImageData(x, None)) if f["code"] == "lr_too_high")
    weak = f["evidence"]["facts"]["learned_little"]
    assert weak["kl_per_dim"] == 0.125 and weak["gain"] < 0, weak      # worse than the model that ignores z
    assert quiet.final.mean_image_nats is None


# ------------------------------------------------------------------------------------------- real runs

# threads as the environment sets them (OMP_NUM_THREADS): a different reduction order is a different trajectory
BASE_TRAIN = {"batch_size": 32, "epochs": 3, "lr": 1e-3, "lr_warmup": 0.0, "threads": torch.get_num_threads()}
#: troubles whose symptom has a wide margin on any CPU: (model changes, train changes)
REAL = {
    "healthy": ({}, {}),
    "collapse": ({}, {"beta": 60.0}),                               # KL ~0 whatever the trajectory
    "nan": ({}, {"lr": 5.0, "lr_schedule": "constant"}),            # 5,000x the usual rate
    "lr_far": ({}, {"lr": 0.05, "lr_schedule": "constant"}),        # every ending is caught (see RECORDED)
    "blurry": ({"likelihood": "gaussian", "gaussian_sigma": 1.0}, {}),
    "kl_blowup": ({"latent_dim": 4}, {"beta": 0.0, "lr": 5e-3, "lr_schedule": "constant"}),
}


@pytest.fixture(scope="module")
def data():
    return load_dataset("mnist5k", max_train=2000, max_test=300)


_cache: dict = {}


def run_case(name, seed, data):
    if (name, seed) not in _cache:
        mk, tk = REAL[name]
        cfg = RunConfig(model=ModelConfig(**{"latent_dim": 8, "hidden": (256, 128), **mk}),
                        train=TrainConfig(**{**BASE_TRAIN, **tk, "seed": seed}))
        r = fit(cfg, data)
        final = evaluate(r.model, data.test)
        metrics = {"status": r.status, "message": r.message, "history": r.history, "final": final}
        text = json.dumps(metrics, default=float).replace("-Infinity", "null").replace("Infinity", "null")
        _cache[name, seed] = (cfg, json.loads(text.replace("NaN", "null")), r.model)
    return _cache[name, seed]


def codes(name, seed, data):
    cfg, metrics, model = run_case(name, seed, data)
    return {f["code"]: f for f in doctor.diagnose(metrics, cfg, model=model, test=data.test)}


@pytest.mark.parametrize("seed", SEEDS)
def test_quiet_on_a_healthy_run(data, seed):
    found = codes("healthy", seed, data)
    assert found == {}, f"healthy run flagged: {[(c, f['title']) for c, f in found.items()]}"


@pytest.mark.parametrize("seed", SEEDS)
def test_posterior_collapse_from_a_huge_beta(data, seed):
    f = codes("collapse", seed, data)["posterior_collapse"]
    assert f["severity"] == "error"
    assert f["evidence"]["facts"]["active_units"] <= 1 and f["evidence"]["facts"]["kl_nats"] < 1.0
    assert len(f["evidence"]["series"]["kl_per_dim"]) == 8
    assert f["suggested_changes"]["train"]["beta"] == 1.0
    fixed = doctor.apply_changes(run_case("collapse", seed, data)[0], f["suggested_changes"])
    assert fixed.train.beta == 1.0 and fixed.train.free_bits > 0


@pytest.mark.parametrize("seed", SEEDS)
def test_non_finite_loss(data, seed):
    cfg, metrics, _ = run_case("nan", seed, data)
    assert metrics["status"] == "failed"
    found = codes("nan", seed, data)
    assert list(found)[0] == "non_finite" and found["non_finite"]["severity"] == "error"
    assert found["non_finite"]["suggested_changes"]["train"]["grad_clip"] > 0


@pytest.mark.parametrize("seed", SEEDS)
def test_a_far_too_high_rate_is_never_passed_as_healthy(data, seed):
    cfg, _, _ = run_case("lr_far", seed, data)
    found = codes("lr_far", seed, data)
    assert found, "a run at 100x the usual learning rate passed as healthy"
    assert lowers_lr(list(found.values()), cfg), list(found)


@pytest.mark.parametrize("seed", SEEDS)
def test_blurry_from_a_wide_gaussian(data, seed):
    found = codes("blurry", seed, data)
    assert "blurry" in found, list(found)
    f = found["blurry"]
    assert f["evidence"]["facts"]["sharpness_ratio"] < 0.8
    assert f["suggested_changes"]["model"] == {"likelihood": "bernoulli"}


@pytest.mark.parametrize("seed", SEEDS)
def test_kl_explosion_without_a_kl_penalty(data, seed):
    found = codes("kl_blowup", seed, data)
    assert "kl_explosion" in found, list(found)
    assert found["kl_explosion"]["evidence"]["facts"]["kl_per_dim"] > doctor.KL_PER_DIM_MAX
    assert found["kl_explosion"]["suggested_changes"]["train"]["beta"] == 1.0


def test_cli_doctor_on_a_saved_run(data, tmp_path, capsys):
    cfg, metrics, model = run_case("collapse", SEEDS[0], data)
    cfg = RunConfig(model=cfg.model, train=cfg.train, data=DataConfig(name="mnist5k", max_train=2000, max_test=300))
    save_run(tmp_path / "run", model, cfg, metrics)
    assert main(["doctor", str(tmp_path / "run")]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["healthy"] is False and out["findings"][0]["code"] == "posterior_collapse"
    cmd = out["findings"][0]["command"]
    assert cmd.startswith("python -m vae train ")
    rebuilt = config_from_args(build_parser().parse_args(cmd.split()[3:]), data)
    assert rebuilt.train.beta == 1.0 and rebuilt.train.free_bits == 0.5 and rebuilt.train.warmup_epochs > 0
    assert rebuilt.model == cfg.model and rebuilt.data == cfg.data


@pytest.mark.parametrize("cfg", [
    RunConfig(),
    RunConfig(model=ModelConfig(arch="conv", latent_dim=2, fc_dim=128, activation="elu"),
              train=TrainConfig(epochs=3, batch_size=64, lr=1e-3, beta=4.0, warmup_epochs=1.5, free_bits=0.25,
                                grad_clip=5.0, weight_decay=1e-5, seed=7, binarize=True, threads=1,
                                time_budget=30.0, output_bias_init=False, eval_every_epoch=False,
                                lr_schedule="constant", lr_warmup=0.0, lr_min_factor=0.1),
              data=DataConfig(name="mnist5k", test_fraction=0.25, split_seed=2, max_train=1000, max_test=100)),
    RunConfig(model=ModelConfig(latent_dim=16, hidden=(512, 256), decoder_hidden=(), likelihood="gaussian",
                                gaussian_sigma=0.2, learn_sigma=True, conditional=True, num_classes=10)),
], ids=["default", "conv-everything-set", "mlp-gaussian-cvae"])
def test_args_for_is_the_inverse_of_the_options(cfg, data):
    """``args_for`` (what the doctor prints and the app could launch) rebuilds exactly the config."""
    args = build_parser().parse_args(["train", *args_for(cfg)])
    assert config_from_args(args, data) == cfg


def test_the_suggested_command_keeps_every_setting_of_the_run():
    """A time-budget run's suggested re-run keeps its budget, test share, split seed and the rest."""
    cfg = RunConfig(model=ModelConfig(latent_dim=8, hidden=(256, 128)),
                    train=TrainConfig(time_budget=60.0, lr=0.03, batch_size=32, lr_schedule="constant", epochs=30),
                    data=DataConfig(name="mnist5k", test_fraction=0.2, split_seed=3))
    fixed = doctor.apply_changes(cfg, {"train": {"lr": 0.003}})
    args = args_for(fixed)
    for flag, value in (("--time-budget", "60.0"), ("--test-fraction", "0.2"), ("--split-seed", "3"),
                        ("--lr", "0.003"), ("--hidden", "256,128"), ("--epochs", "30")):
        assert args[args.index(flag) + 1] == value, (flag, args)


def test_cli_doctor_bad_folder(tmp_path, capsys):
    assert main(["doctor", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:")
