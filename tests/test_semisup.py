"""Semi-supervised M1+M2: labelled subsets, the M2 objective, a run folder round trip, the CLI."""
import json
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import tiny_split

from vae.cli import main
from vae.config import ModelConfig, RunConfig, SemisupConfig, TrainConfig
from vae.pipeline import train_run
from vae.runs import load_run
from vae.usecases.common import balanced_subset
from vae.usecases.semisup import M2, SemiSupervisedVAE, affine_views, error_rate, recipe_epochs, warp_views


def test_balanced_subset_are_balanced_and_seeded():
    y = np.repeat(np.arange(10), 50)
    idx = balanced_subset(y, 100, seed=0)
    assert len(idx) == 100 and np.all(np.bincount(y[idx]) == 10)
    assert np.array_equal(idx, balanced_subset(y, 100, seed=0))
    assert not np.array_equal(idx, balanced_subset(y, 100, seed=1))
    assert np.array_equal(balanced_subset(y, None), np.arange(500))
    with pytest.raises(ValueError, match="fewer than one per class"):
        balanced_subset(y, 5)
    assert np.array_equal(balanced_subset(y, 600), np.arange(500))  # more than there are: all
    with pytest.raises(ValueError, match="only 5 images"):
        balanced_subset(np.concatenate([y[y > 0], np.zeros(5, int)]), 100)


def test_unlabelled_term_trains_the_classifier():
    """M2's point: images without labels still send gradient to q(y|x) (through E_q[-ELBO] - H)."""
    torch.manual_seed(0)
    m2 = M2(6, 3, hidden=16, latent=2)
    z = torch.randn(5, 6)
    terms = m2.loss(z[:0], torch.zeros(0, dtype=torch.long), z, alpha=0.0)
    m2.zero_grad()
    terms["unlabelled"].backward()
    g = m2.classifier[0].weight.grad
    assert g is not None and g.abs().sum() > 0
    # with a classifier that is certain of class c, U equals -ELBO(z, c) (entropy 0)
    m2b = M2(6, 3, hidden=16, latent=2)
    with torch.no_grad():
        m2b.classifier[-1].weight.zero_()
        m2b.classifier[-1].bias.copy_(torch.tensor([-1e4, 1e4, -1e4]))
    torch.manual_seed(1)
    u = m2b.loss(z[:0], torch.zeros(0, dtype=torch.long), z[:1], alpha=0.0)["unlabelled"]
    torch.manual_seed(1)
    rep = z[:1].repeat_interleave(3, 0)
    ne = m2b.neg_elbo(rep, torch.eye(3)).view(1, 3)
    assert torch.allclose(u, ne[0, 1], atol=1e-4)


def _config(**semi):
    return RunConfig(kind="semisup", model=ModelConfig(image_size=8, latent_dim=4, hidden=(32,), num_classes=3),
                     train=TrainConfig(epochs=15, batch_size=32, threads=1, lr=3e-3),
                     semisup=SemisupConfig(**{"labels": 6, "m2_epochs": 5, "joint_epochs": 0, "batch_size": 32,
                                              **semi}))


def _data():
    return tiny_split(n_train=240, n_test=90, side=8, classes=3)


def test_fit_learns_from_few_labels_and_round_trips(tmp_path):
    """M1 then M2 through the one loop: events and records name their stage; the run folder loads as the same
    SemiSupervisedVAE and records the test error, the labels and the pixel baseline."""
    data = _data()
    events = []
    res = train_run(_config(), data, tmp_path / "ss", callback=events.append)
    assert res.status == "completed"
    starts = [e for e in events if e["type"] == "start"]
    assert [e["stage"] for e in starts] == ["m1", "m2"] and starts[0]["stages"] == ["m1", "m2"]
    assert starts[1]["reports"] == ["loss", "ce"] and starts[0]["epochs"] == 20
    assert {e["stage"] for e in events if e["type"] == "step"} == {"m1", "m2"}
    err = error_rate(res.model, data.test)
    assert err <= 0.2, f"3 well-separated classes, 2 labels each: error {err}"
    epochs = res.metrics.history.epochs
    assert [e.stage for e in epochs] == ["m1"] * 15 + ["m2"] * 5 and [e.epoch for e in epochs] == list(range(1, 21))
    assert epochs[-1].test["test_error"] == pytest.approx(err, abs=1e-6) == res.final.test_error
    s = res.metrics.semisup
    assert s["labels"] == 6 and len(s["labelled_indices"]) == 6 and 0 <= s["baseline"]["test_error"] <= 1
    run = load_run(tmp_path / "ss")
    assert isinstance(run.model, SemiSupervisedVAE) and run.config == _config()
    a, b = res.model.state_dict(), run.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert np.array_equal(run.model.predict(data.test.x), res.model.predict(data.test.x))
    assert run.metrics.final.test_error == pytest.approx(err)


def test_a_stopped_semisup_run_resumes_across_its_stages_exactly(tmp_path):
    """The loop's checkpoint holds the stage, its optimizer and its objective's generator: stopped in the M2 stage
    and resumed, the run ends bit-identical to one never stopped."""
    data = _data()
    straight = train_run(_config(), data, tmp_path / "a")
    stop = threading.Event()
    cut = train_run(_config(), data, tmp_path / "b", cancel=stop,
                    callback=lambda e: stop.set() if e["type"] == "epoch" and e.get("stage") == "m2" else None)
    assert cut.status == "cancelled" and [e.stage for e in cut.metrics.history.epochs][-1] == "m2"
    again = train_run(_config(), data, tmp_path / "b", resume=True)
    a, b = straight.model.state_dict(), again.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a), "resuming changed the trajectory"
    assert again.final.test_error == straight.final.test_error


def test_label_seed_picks_the_subset_and_consistency_trains(tmp_path):
    """label_seed changes only which images are labelled (one M1 serves several subsets: m1_from); consistency adds
    a term that trains."""
    data = _data()
    first = train_run(_config(m2_epochs=1), data, tmp_path / "m1")
    res = train_run(_config(consistency=5.0, classifier="code", label_seed=7, m1_from=str(tmp_path / "m1")), data,
                    tmp_path / "b")
    picked = res.metrics.semisup["labelled_indices"]
    assert np.array_equal(picked, balanced_subset(data.train.y, 6, seed=7))
    assert not np.array_equal(picked, first.metrics.semisup["labelled_indices"])
    assert [e.stage for e in res.metrics.history.epochs] == ["m2"] * 5, "the reused M1 is not trained again"
    assert torch.equal(res.model.encoder.out.weight, first.model.encoder.out.weight)
    assert res.status == "completed" and error_rate(res.model, data.test) <= 0.2


def test_affine_views_identity_shift_and_fresh_maps():
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(4, 1, 28, 28)
    x[:, :, 10:18, 12:16] = 1.0
    assert torch.allclose(affine_views(x, g), x, atol=1e-6)          # no rotation, zoom or shift: the image itself
    shifted = affine_views(x, g, shift=3 / 28)
    assert shifted.shape == x.shape and not torch.allclose(shifted, x)
    assert torch.allclose(shifted.sum((1, 2, 3)), x.sum((1, 2, 3)), rtol=1e-4)  # a shift inside the frame keeps the ink
    assert not torch.allclose(shifted[0], shifted[1])                           # each image its own map
    strong = affine_views(x, g, rotate=15, scale=0.15, shift=3 / 28)
    assert strong.min() >= 0 and strong.max() <= 1 and not torch.allclose(strong[0], strong[1])


def test_warp_views_move_ink_at_most_the_asked_pixels():
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(64, 1, 28, 28)
    x[:, :, 13:15, 13:15] = 1.0                                     # a 2 x 2 dot at the centre
    assert torch.equal(warp_views(x, g, 0.0), x)

    def centre(img):
        m = img[:, 0]
        yy, xx = torch.meshgrid(torch.arange(float(m.shape[1])), torch.arange(float(m.shape[2])), indexing="ij")
        return torch.stack([(m * yy).sum((1, 2)), (m * xx).sum((1, 2))], 1) / m.sum((1, 2)).unsqueeze(1)
    moved = (centre(warp_views(x, g, 3.0)) - centre(x)).norm(dim=1)
    assert moved.max() <= 3.0 * 2 ** 0.5 + 0.25                     # at most 3 px along each axis
    assert moved.mean() > 0.5 and moved.std() > 0.1                 # each image its own, real, warp
    assert torch.allclose(centre(warp_views(x, g, 0.01)), centre(x), atol=0.02)
    big = torch.zeros(2, 1, 56, 56)
    big[:, :, 27:29, 27:29] = 1.0                                   # 3 px at 28 px is 6 px at 56 px
    assert (centre(warp_views(big, g, 3.0)) - centre(big)).norm(dim=1).max() <= 6.0 * 2 ** 0.5 + 0.5


def test_the_classifier_reads_features_or_the_code_and_old_runs_keep_the_code():
    cfg = ModelConfig(image_size=8, latent_dim=4, hidden=(32, 16), num_classes=3)
    feats, code = SemiSupervisedVAE(cfg, classifier="features"), SemiSupervisedVAE(cfg, classifier="code")
    assert feats.m2.classifier[0].in_features == 16 and code.m2.classifier[0].in_features == 4
    x = torch.rand(5, 1, 8, 8)
    h, mu, _ = feats.encode_hidden(x)
    assert torch.allclose(mu, feats.encode(x)[0]) and h.shape == (5, 16)
    assert torch.allclose(feats.classify_logits(x), feats.m2.classifier(h))
    assert torch.allclose(code.classify_logits(x), code.m2.classifier(code.encode(x)[0]))
    assert SemisupConfig().classifier == "features" and SemisupConfig().elastic > 0
    old = RunConfig.from_dict({"kind": "semisup", "model": {"num_classes": 10}, "semisup": {"labels": 100}})
    assert (old.semisup.classifier, old.semisup.elastic) == ("code", 0.0)
    with pytest.raises(ValueError, match="classifier"):
        RunConfig.from_dict({"kind": "semisup", "model": {"num_classes": 10}, "semisup": {"classifier": "pixels"}})
    with pytest.raises(ValueError, match="consistency .* needs classifier 'code'"):
        SemisupConfig(consistency=1.0)


@pytest.mark.parametrize("classifier", ["features", "code"])
def test_both_classifiers_learn_in_both_stages(tmp_path, classifier):
    data = _data()
    res = train_run(_config(classifier=classifier, m2_epochs=3, joint_epochs=2), data, tmp_path / classifier)
    assert res.status == "completed" and [e.stage for e in res.metrics.history.epochs][-5:] == ["m2"] * 3 + [
        "joint"] * 2
    assert error_rate(res.model, data.test) <= 0.25
    again = load_run(tmp_path / classifier)
    assert again.model.reads_features == (classifier == "features")
    assert np.array_equal(again.model.predict(data.test.x), res.model.predict(data.test.x))


def test_joint_stage_trains_m1_and_m2_together(tmp_path):
    """The joint epochs change M1's encoder (the labels' cross-entropy reaches it) and its decoder (M1's ELBO is
    in the loss), record their terms, and take pseudo-labels only where the classifier is confident."""
    data = _data()
    first = train_run(_config(m2_epochs=1), data, tmp_path / "m1")
    joint = {"m2_epochs": 0, "joint_epochs": 4, "m1_from": str(tmp_path / "m1")}
    res = train_run(_config(**joint), data, tmp_path / "j")
    assert res.status == "completed" and error_rate(res.model, data.test) <= 0.2
    before, after = first.model.state_dict(), res.model.state_dict()
    for name in ("encoder.out.weight", "decoder.net.0.weight"):
        assert not torch.equal(before[name], after[name]), name
    h = res.metrics.history.epochs
    assert [r.stage for r in h] == ["joint"] * 4
    assert all(np.isfinite(r.train["neg_elbo"]) and r.train["neg_elbo"] > 0 and "neg_elbo" in r.test for r in h)
    assert h[-1].test["test_error"] == pytest.approx(error_rate(res.model, data.test), abs=1e-6)
    # a threshold below 1/K: every weak view's class is a pseudo-label; weight 0: the term is off
    low = train_run(_config(**{**joint, "joint_epochs": 1}, pseudo_threshold=0.3), data)
    assert low.metrics.history.epochs[0].train["confident"] == 1.0
    off = train_run(_config(**{**joint, "joint_epochs": 1}, pseudo_threshold=0.3, augment_weight=0.0), data)
    assert off.metrics.history.epochs[0].train["confident"] == 0.0
    assert off.metrics.history.epochs[0].train["consistency"] == 0.0


def test_joint_stage_stops_within_a_batch(tmp_path):
    data = _data()
    train_run(_config(m2_epochs=1), data, tmp_path / "m1")
    cancel = threading.Event()
    steps = []

    def on_event(e):
        if e["type"] == "step":
            steps.append(e)
            cancel.set()
    res = train_run(_config(m2_epochs=0, joint_epochs=3, m1_from=str(tmp_path / "m1")), data, callback=on_event,
                    cancel=cancel)
    assert res.status == "cancelled" and "epoch 1, step 1" in res.message and len(steps) == 1
    assert steps[0]["stage"] == "joint" and not res.model.training


def test_recipe_epochs_keep_mnists_steps_on_smaller_sets():
    assert recipe_epochs(60000) == (5, 30)               # MNIST: the measured recipe
    assert recipe_epochs(1_000_000) == (5, 30)           # never fewer epochs than that
    assert recipe_epochs(4500) == (66, 300)              # mnist5k: 66 * 36 >= 2,345 steps; 334 * 45 capped at 300
    assert recipe_epochs(10) == (300, 300)               # capped


def test_needs_classes():
    with pytest.raises(ValueError, match="num_classes"):
        SemiSupervisedVAE(ModelConfig(image_size=8, hidden=(8,)))


def _npz(tmp_path) -> Path:
    data = tiny_split(n_train=300, n_test=1, side=8, classes=3)
    p = tmp_path / "blobs.npz"
    np.savez(p, x=data.train.x[:, 0].numpy(), y=data.train.y.numpy())
    return p


def test_cli_semisup_then_eval_reports_test_error(tmp_path, capsys):
    p = _npz(tmp_path)
    out = tmp_path / "run"
    rc = main(["semisup", "--data", str(p), "--labels", "6", "--epochs", "5", "--m2-epochs", "2", "--joint-epochs", "1",
               "--latent-dim", "4", "--threads", "1", "--out", str(out), "--quiet"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["labels"] == 6 and 0 <= res["test_error"] <= 1 and 0 <= res["baseline_test_error"] <= 1
    assert res["m2_epochs"] == 2 and res["joint_epochs"] == 1
    stages = [r["stage"] for r in json.loads((out / "metrics.json").read_text())["history"]["epochs"]]
    assert stages == ["m1"] * 5 + ["m2", "m2", "joint"]
    saved = json.loads((out / "config.json").read_text())
    assert saved["kind"] == "semisup" and saved["semisup"]["labels"] == 6 and saved["semisup"]["m2_epochs"] == 2
    assert main(["eval", str(out)]) == 0
    ev = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert ev["test_error"] == pytest.approx(res["test_error"])
    assert "neg_elbo" in ev
    # that run's M1 has seen labels in its joint epoch: it cannot stand in for a label-free M1
    rc = main(["semisup", "--data", str(p), "--labels", "6", "--epochs", "5", "--latent-dim", "4", "--threads", "1",
               "--m1-from", str(out), "--out", str(tmp_path / "again"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "trained further with labels (1 joint epochs)" in err[0]
    assert not (tmp_path / "again").exists()
    # the run's own config.json re-runs it: the same seed gives the same test error
    assert main(["train", "--config", str(out / "config.json"), "--out", str(tmp_path / "rerun"), "--quiet"]) == 0
    rerun = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rerun["test_error"] == pytest.approx(res["test_error"], abs=1e-9)


@pytest.mark.parametrize("argv,needle", [(["--labels", "0"], "--labels"), (["--labels", "two"], "--labels"),
                                         (["--labels", "2"], "fewer than one per class"),
                                         (["--consistency", "-1"], "error: --consistency must be >= 0, got -1"),
                                         (["--joint-epochs", "0", "--m2-epochs", "0"], "at least one epoch"),
                                         (["--augment", "5"], "--augment must be 0..3, got 5"),
                                         (["--augment-weight", "-1"], "--augment-weight must be >= 0"),
                                         (["--pseudo-threshold", "0"], "--pseudo-threshold must be in (0, 1]")])
def test_cli_semisup_bad_input(tmp_path, capsys, argv, needle):
    p = _npz(tmp_path)
    rc = main(["semisup", "--data", str(p), "--out", str(tmp_path / "r"), "--quiet", *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("error:") and needle in err[0]
    assert not (tmp_path / "r").exists()
