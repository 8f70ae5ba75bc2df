"""The training loop (events, cancel, non-finite stop, overfitting) and evaluation."""
import math
import threading

import numpy as np
import pytest
import torch
from helpers import blobs, tiny_split

from vae import latent, losses
from vae.config import ConfigError, ModelConfig, RunConfig, TrainConfig
from vae.evaluate import ACTIVE_UNIT_THRESHOLD, _iw_nll, evaluate
from vae.models import VAE
from vae.train import fit, kl_weight, learning_rate, train


def cfg(**train_kw) -> RunConfig:
    return RunConfig(model=ModelConfig(image_size=8, latent_dim=2, hidden=(32,)),
                     train=TrainConfig(**{"epochs": 2, "batch_size": 16, "threads": 1, **train_kw}))


def test_events_and_history():
    events = []
    res = fit(cfg(recon_every=3), tiny_split(), callback=events.append)
    types = [e["type"] for e in events]
    assert types[0] == "start" and types[-1] == "end"
    assert types.count("step") == 2 * 4
    assert types.count("epoch") == 2
    ep = [e for e in events if e["type"] == "epoch"]
    assert set(ep[0]["test"]) >= {"neg_elbo", "recon", "kl", "bits_per_dim"}
    assert len(ep[0]["kl_per_dim"]) == 2
    assert ep[0]["latent"]["mu"].shape == (32, 2), "a 2-D run sends the test map each epoch"
    rec = [e for e in events if e["type"] == "recon"]
    assert rec and rec[0]["inputs"].dtype == np.uint8 and rec[0]["recons"].shape == rec[0]["inputs"].shape
    assert res.status == "completed" and len(res.history["epochs"]) == 2
    step = next(e for e in events if e["type"] == "step")
    assert {"loss", "recon", "kl", "grad_norm", "samples_per_sec", "eta", "lr", "beta"} <= set(step)


def test_overfit_one_batch():
    data = tiny_split(n_train=16, n_test=16)
    data.test = data.train
    config = RunConfig(model=ModelConfig(image_size=8, latent_dim=4, hidden=(128, 64)),
                       train=TrainConfig(epochs=300, batch_size=16, lr=3e-3, lr_schedule="constant", threads=1,
                                         eval_every_epoch=False))
    first = evaluate(VAE(config.model), data.train)["recon"]
    res = fit(config, data)
    after = evaluate(res.model, data.train)
    assert after["recon"] < 0.5 * first, (first, after["recon"])
    assert after["neg_elbo"] < 0.6 * first


def test_cancel_within_one_batch():
    cancel = threading.Event()
    steps = []

    def on(e):
        if e["type"] == "step":
            steps.append(e)
            if len(steps) == 3:
                cancel.set()

    res = fit(cfg(epochs=50), tiny_split(), callback=on, cancel=cancel)
    assert res.status == "cancelled"
    assert len(steps) == 3, "no batch may run after the cancel request"
    assert res.history["epochs"][-1]["partial"] is True


def test_non_finite_loss_stops_and_keeps_last_good_weights():
    res_events = []
    config = cfg(epochs=20, lr=10.0, lr_schedule="constant")
    res = fit(config, tiny_split(), callback=res_events.append)
    assert res.status == "failed", res.message
    assert "non-finite" in res.message or "loss became" in res.message
    assert all(torch.isfinite(p).all() for p in res.model.state_dict().values())
    assert res_events[-1]["type"] == "end" and res_events[-1]["status"] == "failed"


def test_nan_input_is_caught():
    data = tiny_split()
    model = VAE(cfg().model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    # a NaN gradient: poison a weight so the loss is NaN on the first step
    with torch.no_grad():
        model.encoder.out.bias[0] = float("nan")
    res = train(model, data, cfg().train)
    assert res.status == "failed"
    for k, v in model.state_dict().items():
        if k != "encoder.out.bias":
            assert torch.equal(v, before[k]), "no optimiser step may follow a non-finite loss"


def test_schedules():
    c = TrainConfig(beta=2.0, warmup_epochs=2)
    assert kl_weight(c, 0, 10) == 0.0
    assert kl_weight(c, 10, 10) == pytest.approx(1.0)
    assert kl_weight(c, 50, 10) == 2.0
    c = TrainConfig(lr=1e-3, lr_min_factor=0.1, lr_warmup=0.0)
    assert learning_rate(c, 0, 100) == pytest.approx(1e-3)
    assert learning_rate(c, 100, 100) == pytest.approx(1e-4)
    assert learning_rate(TrainConfig(lr_schedule="constant"), 50, 100) == TrainConfig().lr
    # warm-up: linear from 1% to the peak over the first 20%, then the cosine over the remaining 80%
    w = TrainConfig(lr=1e-3, lr_min_factor=0.1, lr_warmup=0.2)
    assert learning_rate(w, 0, 100) == pytest.approx(1e-5)
    assert learning_rate(w, 10, 100) == pytest.approx(0.5e-3)
    assert learning_rate(w, 20, 100) == pytest.approx(1e-3)
    assert learning_rate(w, 60, 100) == pytest.approx(0.55e-3)
    assert learning_rate(w, 100, 100) == pytest.approx(1e-4)
    cw = TrainConfig(lr=1e-3, lr_schedule="constant", lr_warmup=0.2)
    assert learning_rate(cw, 10, 100) == pytest.approx(0.5e-3) and learning_rate(cw, 90, 100) == 1e-3
    # under a time budget the warm-up follows the clock
    tb = TrainConfig(lr=1e-3, lr_warmup=0.2, time_budget=100.0)
    assert learning_rate(tb, 1, 10_000, elapsed=10.0) == pytest.approx(0.5e-3)
    with pytest.raises(ConfigError, match="lr_warmup"):
        TrainConfig(lr_warmup=0.6)


def test_seed_makes_training_reproducible():
    a = fit(cfg(), tiny_split()).model.state_dict()
    b = fit(cfg(), tiny_split()).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_dynamic_binarisation_and_conditional():
    config = RunConfig(model=ModelConfig(image_size=8, latent_dim=2, hidden=(16,), conditional=True, num_classes=2),
                       train=TrainConfig(epochs=1, batch_size=16, binarize=True, threads=1))
    res = fit(config, tiny_split())
    assert res.status == "completed"
    assert math.isfinite(res.history["epochs"][0]["test"]["neg_elbo"])


def test_evaluate_keys_iw_bound_and_active_units():
    torch.manual_seed(0)
    model = VAE(ModelConfig(image_size=8, latent_dim=3, hidden=(16,)))
    data = blobs(40)
    r = evaluate(model, data, iw_samples=64, per_image=True)
    for k in ("neg_elbo", "recon", "kl", "bits_per_dim", "active_units", "n_test", "nll_iw", "kl_per_dim"):
        assert k in r
    assert r["n_test"] == 40
    assert r["neg_elbo"] == pytest.approx(r["recon"] + r["kl"], rel=1e-5)
    assert r["bits_per_dim"] == pytest.approx(r["neg_elbo"] / (64 * math.log(2)), rel=1e-6)
    # the importance-weighted bound is tighter than the ELBO (on average; exact here by a margin)
    assert r["nll_iw"] <= r["neg_elbo"] + 1e-3
    assert r["per_image"]["neg_elbo"].shape == (40,)
    # active units: dimensions whose posterior mean varies over the data (Burda et al.), counted independently
    mu = latent.encode(model, data)["mu"]
    assert r["active_units"] == int((mu.var(0) > ACTIVE_UNIT_THRESHOLD).sum())
    assert sum(r["kl_per_dim"]) == pytest.approx(r["kl"], rel=1e-4)
    # same seed, same numbers
    assert evaluate(model, data)["neg_elbo"] == evaluate(model, data)["neg_elbo"]


def test_iw_with_one_sample_is_the_elbo_on_average_and_tightens_with_k():
    """With K = 1 the importance-weighted estimate is a one-sample ELBO (Burda et al. 2016), so its mean over
    many draws is the closed-form -ELBO; with more samples the bound can only tighten (in expectation)."""
    torch.manual_seed(0)
    model = VAE(ModelConfig(image_size=8, latent_dim=2, hidden=(16,))).eval()
    x = blobs(200).x.float() / 255
    with torch.no_grad():
        mu, logvar = model.encode(x)
        closed_kl = float(losses.kl_per_dim(mu, logvar).sum(1).mean())
        gen = torch.Generator().manual_seed(1)
        one = torch.stack([_iw_nll(model, x, None, mu, logvar, 1, gen, None) for _ in range(200)])   # [200 draws, B]
        z = mu + torch.randn((200, *mu.shape), generator=gen) * torch.exp(0.5 * logvar)
        recon = torch.stack([losses.recon_nll(model.decode(zi), x, model.cfg) for zi in z])
        neg_elbo = float(recon.mean()) + closed_kl
        se = float(one.mean(1).std() / math.sqrt(one.shape[0]))
        assert abs(float(one.mean()) - neg_elbo) < 4 * se + 1e-3, (float(one.mean()), neg_elbo, se)
        k10 = float(torch.stack([_iw_nll(model, x, None, mu, logvar, 10, gen, None) for _ in range(20)]).mean())
        k100 = float(torch.stack([_iw_nll(model, x, None, mu, logvar, 100, gen, None) for _ in range(5)]).mean())
    assert k100 < k10 < float(one.mean()), (k100, k10, float(one.mean()))


def test_active_units_counts_used_dimensions():
    model = VAE(ModelConfig(image_size=8, latent_dim=4, hidden=(16,)))
    with torch.no_grad():  # only dim 0 of the mean depends on the input
        model.encoder.out.weight.zero_()
        model.encoder.out.bias.zero_()
        model.encoder.out.weight[0].normal_(0, 5.0)
    assert evaluate(model, blobs(50))["active_units"] == 1


def test_latent_tools():
    torch.manual_seed(0)
    model = VAE(ModelConfig(image_size=8, latent_dim=3, hidden=(16,)))
    data = blobs(10)
    enc = latent.encode(model, data)
    assert enc["mu"].shape == (10, 3) and enc["logvar"].shape == (10, 3)
    imgs = latent.decode(model, np.zeros((4, 3)))
    assert imgs.shape == (4, 1, 8, 8) and imgs.min() >= 0 and imgs.max() <= 1
    grid = latent.prior_quantile_grid(5, latent_dim=3)
    assert grid.shape == (25, 3) and np.allclose(grid[:, 2], 0)
    assert grid[0, 0] < grid[4, 0] and grid[0, 1] > grid[20, 1]
    assert latent.manifold_grid(model, 4).shape == (16, 1, 8, 8)
    path, frames = latent.interpolate(model, enc["mu"][0], enc["mu"][1], 7)
    assert path.shape == (7, 3) and frames.shape == (7, 1, 8, 8)
    assert np.allclose(path[0], enc["mu"][0], atol=1e-6) and np.allclose(path[-1], enc["mu"][1], atol=1e-6)
    sp, _ = latent.interpolate(model, [1, 0, 0], [0, 1, 0], 3, method="spherical")
    assert np.allclose(sp[1], [math.sqrt(0.5), math.sqrt(0.5), 0], atol=1e-6), "slerp keeps the norm"
    # ends of different lengths pointing nearly (or exactly) opposite ways: the length goes from one to the other,
    # never out past the longer (a new user saw 5.37 between ends of 1.57 and 2.03)
    for a, b in (([1.57, 0.0], [-2.03, 0.01]), ([1.57, 0.0], [-2.03, 0.0]), ([0.5, 1.0, -2.0], [-1.0, -2.0, 4.0])):
        t = np.linspace(0, 1, 11)
        p = latent.slerp(np.array(a), np.array(b), t)
        n = np.linalg.norm(p, axis=1)
        want = (1 - t) * np.linalg.norm(a) + t * np.linalg.norm(b)
        assert np.allclose(n, want, atol=1e-5) and np.allclose(p[0], a, atol=1e-6) and np.allclose(p[-1], b, atol=1e-5)
        steps = np.linalg.norm(np.diff(p / n[:, None], axis=0), axis=1)
        assert steps.max() - steps.min() < 1e-5, "the direction turns at a constant rate"
    assert np.allclose(latent.slerp(np.array([2.0]), np.array([-1.0]), np.linspace(0, 1, 3))[:, 0], [2.0, 0.5, -1.0])
    vals, tr = latent.traverse(model, 1, steps=5)
    assert vals.shape == (5,) and tr.shape == (5, 1, 8, 8)
    z, s = latent.sample_prior(model, 6, seed=1)
    assert z.shape == (6, 3) and s.shape == (6, 1, 8, 8)
    p, proj = latent.project(enc["mu"])
    assert p.shape == (10, 2)
    assert np.allclose(proj.transform(enc["mu"]), p, atol=1e-5)
    # PCA keeps the most variance: its first axis has the largest spread
    assert p[:, 0].var() >= p[:, 1].var()
    samples = latent.reconstruct(model, data, samples=4)
    assert samples.shape == (10, 4, 1, 8, 8)
    g = latent.image_grid(imgs, 2, scale=3)
    assert g.dtype == np.uint8 and g.shape == (3 * (2 * 9 + 1), 3 * (2 * 9 + 1))


def test_inference_restores_training_mode():
    model = VAE(ModelConfig(image_size=8, latent_dim=2, hidden=(16,)))
    model.train()
    latent.decode(model, np.zeros((1, 2)))
    evaluate(model, blobs(4))
    assert model.training


def test_time_budget_stops_and_drives_the_schedule():
    events = []
    res = fit(cfg(epochs=10_000, time_budget=1.0, lr_min_factor=0.0), tiny_split(), callback=events.append)
    assert res.status == "completed" and "time budget" in res.message
    steps = [e for e in events if e["type"] == "step"]
    assert steps[-1]["elapsed"] < 5.0
    assert steps[-1]["lr"] < 0.2 * steps[0]["lr"], "the cosine schedule follows the clock"
    assert res.history["epochs"], "the last (partial) epoch is recorded"


def test_elbo_does_not_depend_on_iw_sampling():
    torch.manual_seed(0)
    model = VAE(ModelConfig(image_size=8, latent_dim=2, hidden=(16,)))
    data = blobs(30)
    plain = evaluate(model, data, batch_size=7)["neg_elbo"]
    assert plain == evaluate(model, data, batch_size=7, iw_samples=5)["neg_elbo"]


def test_output_bias_starts_at_the_mean_pixel_logit():
    from vae.train import init_output_bias
    x = torch.randint(0, 256, (300, 1, 28, 28), dtype=torch.uint8)
    x[:, :, :4] = 0                                   # an always-black band: clamped, not -inf
    for cfg in (ModelConfig(hidden=(16,)), ModelConfig(arch="conv", hidden=(4, 8), fc_dim=8)):
        m = VAE(cfg)
        init_output_bias(m, x)
        bias = torch.sigmoid(m.decoder.net[-1].bias.detach())
        want = x.double().mean(0) / 255 if cfg.arch == "mlp" else (x.double() / 255).mean().view(1)
        assert torch.isfinite(m.decoder.net[-1].bias).all()
        assert torch.allclose(bias.double(), want.flatten().clamp(1e-3, 1 - 1e-3), atol=1e-4), cfg.arch


def test_adam_uses_the_fused_kernel_on_the_cpu_with_the_same_updates():
    from vae.train import adam
    torch.manual_seed(0)
    a, b = torch.nn.Linear(5, 3), torch.nn.Linear(5, 3)
    b.load_state_dict(a.state_dict())
    fused, plain = adam(a.parameters(), lr=1e-2, weight_decay=1e-3), torch.optim.Adam(b.parameters(), lr=1e-2,
                                                                                       weight_decay=1e-3)
    assert fused.defaults.get("fused") is True
    x = torch.randn(8, 5)
    for _ in range(5):
        for net, opt in ((a, fused), (b, plain)):
            opt.zero_grad()
            net(x).pow(2).sum().backward()
            opt.step()
    assert torch.allclose(a.weight, b.weight, atol=1e-6)
