"""vae.record: one typed schema for what a run folder holds, read across versions; the README's table kept in step;
JSON from a stranger refused within limits before anything large is built."""
import json
import re
from pathlib import Path

import numpy as np
import pytest
from app_support import ROOT

from vae.config import ConfigError, RunConfig
from vae.record import FILES, SCHEMA_VERSION, EpochRecord, Metrics, Snapshot, read_snapshot, write_snapshot
from vae.runs import RunError, config_from_bytes, load_run
from vae.safejson import MAX_JSON_DEPTH, JSONError, load_json


def test_the_readme_lists_exactly_the_files_of_the_schema():
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### Run folders"):text.index("## Data sets")]
    listed = re.findall(r"^\| `([^`]+)` \|", section, flags=re.M)
    assert listed == list(FILES), "README's Run folders table and vae.record.FILES differ"


def test_a_version_1_folder_reads_typed_and_writes_back_as_the_current_version():
    """tests/data/metrics_v1.json: a demo run's metrics.json as version 1 wrote it (its history cut to 3 epochs)."""
    raw = json.loads((ROOT / "tests" / "data" / "metrics_v1.json").read_text())
    assert "version" not in raw
    m = Metrics.from_dict(raw)
    assert [e.epoch for e in m.history.epochs] == [1, 2, 3] and m.history.epochs[-1].test["neg_elbo"] > 0
    assert m.final.neg_elbo == raw["final"]["neg_elbo"] and m.kl_per_dim(2) == raw["final"]["kl_per_dim"]
    again = Metrics.from_dict(json.loads(json.dumps(m.to_dict())))
    assert again == m and again.version == SCHEMA_VERSION


def test_version_1_semisup_history_becomes_stages():
    v1 = {"status": "completed", "history": {"epochs": [{"epoch": 1, "train": {"loss": 3.0}}], "steps": []},
          "final": {"neg_elbo": 100.0}, "test_error": 0.05,
          "semisup": {"m2_history": [{"stage": "m2", "epoch": 1, "loss": 2.0, "ce": 0.5, "test_error": 0.1},
                                     {"stage": "joint", "epoch": 1, "loss": 1.0, "ce": 0.2, "test_error": 0.05}]}}
    m = Metrics.from_dict(v1)
    assert [(e.epoch, e.stage) for e in m.history.epochs] == [(1, "m1"), (2, "m2"), (3, "joint")]
    assert m.history.epochs[2].test == {"test_error": 0.05} and m.final.test_error == 0.05


def test_a_wrong_field_reads_as_missing_not_as_a_crash():
    m = Metrics.from_dict({"final": {"neg_elbo": "high", "kl_per_dim": "x"}, "history": {"epochs": [3, None]},
                           "status": 7, "data": {"class_names": [1, 2]}})
    assert m.final.neg_elbo is None and m.final.kl_per_dim is None and m.history.epochs == []
    assert m.data.class_names is None and m.kl_per_dim(2) is None
    assert EpochRecord.from_dict({"epoch": 2, "train": {"loss": float("nan"), "kl": 1}}).train == {"kl": 1.0}


def test_snapshot_round_trip_and_refused_arrays(tmp_path):
    snap = Snapshot(mu=np.zeros((5, 2), np.float32), y=np.arange(5), inputs=np.zeros((3, 1, 8, 8), np.uint8),
                    recons=np.full((3, 1, 8, 8), 153, np.uint8), kl_per_dim=np.ones(2, np.float32))
    write_snapshot(tmp_path / "s.npz", snap)
    back = read_snapshot(tmp_path / "s.npz")
    assert back.pair()[1].max() == 153 and back.mu.shape == (5, 2) and back.logvar is None
    np.savez(tmp_path / "bad.npz", mu=np.zeros(3), recons=np.zeros((3, 1, 8, 8), np.float64))
    bad = read_snapshot(tmp_path / "bad.npz")
    assert bad.mu is None and bad.recons is None, "pictures must be uint8 [K, C, H, W]; codes [N, D] floats"
    assert read_snapshot(tmp_path / "missing.npz") is None


@pytest.mark.parametrize("blob, needle", [
    (b"[" * 10_000 + b"]" * 10_000, f"nested more than {MAX_JSON_DEPTH} levels"),
    (b'{"model": {"latent_dim": ' + b"9" * 5000 + b"}}", "a number of 5,000 characters"),
    (b"\xff\xfe", "not UTF-8"),
    (b'{"model": ', "not valid JSON"),
])
def test_hostile_json_is_one_line_before_python_parses_it(blob, needle):
    with pytest.raises(JSONError, match=re.escape(needle)):
        load_json(blob, "config.json")
    with pytest.raises(RunError) as e:
        config_from_bytes(blob, "upload/config.json")
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_a_config_over_its_size_limit_is_refused_unread():
    with pytest.raises(RunError, match="over the 65,536-byte limit"):
        config_from_bytes(b" " * 70_000 + b"{}", "config.json")
    with pytest.raises(ConfigError, match="nested"):
        RunConfig.from_json("[" * 100 + "]" * 100)


def test_an_old_semisup_folder_gets_its_settings_from_its_metrics(tmp_path):
    import torch

    from vae.config import ModelConfig, SemisupConfig
    from vae.runs import save_run
    from vae.usecases.semisup import build_semisup
    cfg = RunConfig(kind="semisup", model=ModelConfig(image_size=8, latent_dim=4, hidden=(8,), num_classes=3),
                    semisup=SemisupConfig(classifier="code"))     # version 1's classifier read the code
    torch.manual_seed(0)
    path = save_run(tmp_path / "old", build_semisup(cfg), cfg, {})
    raw = json.loads((path / "config.json").read_text())
    raw.pop("semisup")                                   # as version 1 wrote it
    (path / "config.json").write_text(json.dumps(raw))
    metrics = json.loads((path / "metrics.json").read_text())
    metrics.pop("version")
    metrics["semisup"] = {"m2_epochs": 40, "joint_epochs": 0, "labels_requested": 100, "consistency": 0.0}
    Path(path / "metrics.json").write_text(json.dumps(metrics))
    run = load_run(path)
    assert run.config.semisup.m2_epochs == 40 and run.config.semisup.joint_epochs == 0


def test_a_config_over_the_budget_or_beside_the_wrong_weights_is_refused_before_anything_is_built(tmp_path):
    """The attack: a 2 KB config claiming 300 layers of 4,096 (or 40 of them, 2.7 GB of weights) beside an 8-byte
    weights file. Refused from the config and the file's size alone; the server never builds the model."""
    import resource

    from vae.budget import Budget, check, parameter_count
    from vae.config import ModelConfig
    run = tmp_path / "evil"
    run.mkdir()
    (run / "model.safetensors").write_bytes(b"\x00" * 8)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for hidden, needle in (([4096] * 300, "300 layers, over the budget of 16"),
                           ([4096] * 12, "parameters, over the budget of 128,000,000")):
        cfg = RunConfig(model=ModelConfig(hidden=tuple(hidden), decoder_hidden=tuple(hidden[:4])))
        (run / "config.json").write_text(cfg.to_json())
        with pytest.raises(RunError, match=re.escape(needle)):
            load_run(run)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 200, f"peak memory grew by {grown_mb:.0f} MB while refusing"
    small = RunConfig(model=ModelConfig(image_size=8, latent_dim=2, hidden=(16,)))
    (run / "config.json").write_text(small.to_json())
    with pytest.raises(RunError, match="not a valid safetensors file"):
        load_run(run)
    n = parameter_count(small)
    assert check(small) == n and 0 < n < 10_000
    with pytest.raises(ConfigError, match=r"over the budget of 100 \(VAE_LAB_MAX_PARAMS\)"):
        check(small, Budget(max_params=100, setting="VAE_LAB_MAX"))
