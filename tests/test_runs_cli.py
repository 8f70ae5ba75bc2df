"""Run folders (round trip, refusal of bad files) and the command line end to end."""
import json
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import blobs
from safetensors.torch import save_file

from vae.config import ConfigError, ModelConfig, RunConfig, TrainConfig
from vae.models import VAE
from vae.runs import RunError, list_runs, load_run, save_run

ROOT = Path(__file__).resolve().parents[1]


def small_run(tmp_path, **model_kw) -> tuple[Path, VAE, RunConfig]:
    cfg = RunConfig(model=ModelConfig(**{"image_size": 8, "latent_dim": 2, "hidden": (16,), **model_kw}))
    torch.manual_seed(0)
    model = VAE(cfg.model)
    path = save_run(tmp_path / "run", model, cfg, {"final": {"neg_elbo": 1.5, "kl": float("nan")}})
    return path, model, cfg


@pytest.mark.parametrize("kw", [{}, {"arch": "conv", "hidden": (4, 8), "fc_dim": 8},
                                {"likelihood": "gaussian", "learn_sigma": True},
                                {"conditional": True, "num_classes": 3}])
def test_round_trip_is_exact(tmp_path, kw):
    path, model, cfg = small_run(tmp_path, **kw)
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "metrics.json", "model.safetensors"]
    run = load_run(path)
    assert run.config == cfg
    a, b = model.state_dict(), run.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert run.metrics.final.neg_elbo == 1.5 and run.metrics.final.kl is None      # NaN is stored as null
    assert json.loads((path / "metrics.json").read_text())["final"].get("kl") is None
    assert not run.model.training
    assert list_runs(tmp_path) == [path]


def test_no_temporary_files_left(tmp_path):
    path, _, _ = small_run(tmp_path)
    save_run(path, VAE(RunConfig().model.__class__(image_size=8, latent_dim=2, hidden=(16,))), load_run(path).config)
    assert not [p for p in path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_run_files_are_created_with_the_umask_like_any_file(tmp_path, umask):
    """A run folder on shared storage (app replicas, a cluster's jobs) is readable as the umask allows: the
    temporary-file-then-rename writes used to leave every file 0600."""
    old = os.umask(umask)
    try:
        path, _, _ = small_run(tmp_path)
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in path.iterdir()}
    assert modes == {name: 0o666 & ~umask for name in ("config.json", "metrics.json", "model.safetensors")}


def test_refuses_non_run_folder(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "notes.txt").write_text("mine")
    with pytest.raises(RunError, match="not a run"):
        save_run(tmp_path / "x", VAE(ModelConfig(image_size=8, hidden=(4,))), RunConfig())
    assert (tmp_path / "x" / "notes.txt").read_text() == "mine"


def _tamper(path: Path, tensors):
    save_file(tensors, str(path / "model.safetensors"))


def test_refuses_bad_weights(tmp_path):
    path, model, _ = small_run(tmp_path)
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    k0 = next(iter(sd))
    cases = {
        "NaN": {**sd, k0: torch.full_like(sd[k0], float("nan"))},
        "shape": {**sd, k0: torch.zeros(3, 3)},
        "missing": {k: v for k, v in sd.items() if k != k0},
        "unexpected": {**sd, "evil": torch.zeros(1)},
        "dtype": {**sd, k0: sd[k0].double()},
    }
    for what, tensors in cases.items():
        _tamper(path, tensors)
        with pytest.raises(RunError, match=what):
            load_run(path)


def test_refuses_garbage_files(tmp_path):
    path, _, _ = small_run(tmp_path)
    (path / "model.safetensors").write_bytes(b"\x80\x04\x95pickle-ish bytes")
    with pytest.raises(RunError, match="safetensors"):
        load_run(path)
    header = json.dumps({"w": {"dtype": "F32", "shape": [1000000000], "data_offsets": [0, 4000000000]}}).encode()
    (path / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 8)
    with pytest.raises(RunError, match="safetensors"):
        load_run(path)
    path2, _, _ = small_run(tmp_path / "b")
    (path2 / "config.json").write_text("{not json")
    with pytest.raises(RunError, match="JSON"):
        load_run(path2)
    (path2 / "config.json").write_text(json.dumps({"model": {"latent_dim": 2, "evil": 1}}))
    with pytest.raises(RunError, match="unknown keys"):
        load_run(path2)
    (path2 / "config.json").write_text(json.dumps({"model": {"latent_dim": "2"}}))
    with pytest.raises(RunError, match="integer"):
        load_run(path2)
    with pytest.raises(RunError, match="not a run folder"):
        load_run(tmp_path / "nope")


def test_config_json_round_trip_and_strictness():
    cfg = RunConfig(model=ModelConfig(hidden=(8, 4), conditional=True, num_classes=10),
                    train=TrainConfig(beta=4.0, binarize=True))
    assert RunConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(ConfigError, match="finite"):
        RunConfig.from_dict({"train": {"lr": float("nan")}})
    with pytest.raises(ConfigError, match="true or false"):
        RunConfig.from_dict({"train": {"binarize": 1}})


# ---------------------------------------------------------------- the command line, end to end

def vae_cli(*args, cwd=None, env_extra=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "vae", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    data = blobs(80, side=12, classes=3)
    p = d / "tiny.npz"
    np.savez(p, x=data.x[:, 0].numpy(), y=data.y.numpy())
    return p


@pytest.fixture(scope="module")
def trained(tiny_npz, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "r1"
    r = vae_cli("train", "--data", tiny_npz, "--epochs", 2, "--batch-size", 16, "--hidden", "32",
                "--decoder-hidden", "8,24", "--latent-dim", 2, "--threads", 1, "--out", out)
    assert r.returncode == 0, r.stderr
    return out, r


def test_cli_train_eval_sample(trained, tmp_path):
    out, r = trained
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["run_dir"] == str(out) and summary["status"] == "completed"
    # a progress bar with elapsed<remaining (the ETA) goes to stderr: "12/12 [00:01<00:00, ..."
    assert re.search(r"\d+/\d+ \[\d\d:\d\d<\d\d:\d\d", r.stderr), r.stderr[-300:]
    assert (out / "model.safetensors").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["history"]["epochs"]) == 2
    assert json.loads((out / "config.json").read_text())["model"]["decoder_hidden"] == [8, 24]
    e = vae_cli("eval", out, "--iw-samples", 8)
    assert e.returncode == 0, e.stderr
    res = json.loads(e.stdout.strip().splitlines()[-1])
    for k in ("neg_elbo", "recon", "kl", "bits_per_dim", "active_units", "n_test", "nll_iw"):
        assert k in res, k
    assert res["n_test"] == 8
    assert res["neg_elbo"] == pytest.approx(metrics["final"]["neg_elbo"], rel=1e-6), "eval repeats train's final"
    png = tmp_path / "s.png"
    s = vae_cli("sample", out, "--n", 9, "--out", png)
    assert s.returncode == 0, s.stderr
    from PIL import Image
    im = Image.open(png)
    assert im.size == (2 * (3 * 13 + 1), 2 * (3 * 13 + 1))


def test_cli_datasets_lists_default():
    r = vae_cli("datasets")
    assert r.returncode == 0, r.stderr
    assert "mnist5k" in r.stdout and "fashion-mnist" in r.stdout


def _bad(r):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "Traceback" not in r.stderr
    return lines[0]


def test_cli_bad_inputs_exit_2_and_write_nothing(tmp_path, tiny_npz, trained):
    work = tmp_path / "work"
    work.mkdir()
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.full((4, 8, 8), np.nan, np.float32))
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip")
    out = work / "out"
    cases = [
        (["train", "--data", bad, "--out", out], "NaN"),
        (["train", "--data", garbage, "--out", out], ""),
        (["train", "--data", "no-such-set", "--out", out], "mnist"),
        (["train", "--data", tiny_npz, "--latent-dim", 0, "--out", out], "--latent-dim must be 1..128, got 0"),
        (["train", "--data", tiny_npz, "--epochs", "x", "--out", out], "epochs"),
        (["train", "--data", tiny_npz, "--hidden", "a,b", "--out", out], "hidden"),
        (["train", "--data", tiny_npz, "--decoder-hidden", "wide", "--out", out], "decoder-hidden"),
        (["train", "--data", "mnist", "--data-dir", tmp_path / "empty", "--out", out], "train-images-idx3-ubyte"),
        (["eval", tmp_path / "missing-run"], "run folder"),
        (["sample", trained[0], "--out", work / "x.jpg"], ".png"),
        (["bogus"], "invalid choice"),
    ]
    for args, needle in cases:
        msg = _bad(vae_cli(*args, cwd=work, env_extra={"VAE_LAB_CACHE_DIR": str(tmp_path / "cache")}))
        assert needle in msg, (args, msg)
    assert list(work.iterdir()) == [], "nothing may be written on bad input"


def test_every_bad_data_input_through_the_cli(tmp_path, capsys):
    """Each bad input the issue lists, through the command line's main(): exit 2, one line, nothing written."""
    from labkit.hostile_files import cases
    from vae.cli import main
    out = tmp_path / "work" / "run"
    (tmp_path / "work").mkdir()
    table = cases(tmp_path / "in")
    assert len(table) >= 15
    for name, (path, extra, word) in table.items():
        code = main(["train", "--data", str(path), "--out", str(out), "--epochs", "1", "--quiet", *extra])
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert code == 2, (name, captured.err)
        assert len(lines) == 1 and lines[0].startswith("error: "), (name, captured.err)
        assert word.lower() in lines[0].lower(), (name, lines[0])
        assert captured.out == ""
    assert list((tmp_path / "work").iterdir()) == [], "a refused input writes nothing"
