"""Two stochastic layers (``model.latent_layers = 2``, Tomczak & Welling 2018's hierarchical VAE): the lower layer's
KL, the bounds, the decode contract the pages rely on, the browser decoder, training from the command line, the
Inside page's numbers and the doctor's reading per layer."""
import json
import math
import threading

import numpy as np
import pytest
import torch
from helpers import tiny_split

from vae import losses
from vae.budget import parameter_count
from vae.cli import main
from vae.config import ConfigError, DataConfig, ModelConfig, RunConfig, SemisupConfig, TrainConfig
from vae.evaluate import evaluate
from vae.export import UnsupportedForBrowser, decoder_spec, numpy_decode
from vae.inside import forward_pass, posterior_cloud
from vae.latent import decode, reconstruct
from vae.models import build_model
from vae.objectives import Batch, Elbo
from vae.pipeline import train_run
from vae.runs import load_run
from vae.train import fit
from vae.usecases.doctor import diagnose

TWO = ModelConfig(image_size=8, latent_dim=3, hidden=(32,), decoder_hidden=(16, 32), latent_layers=2)


def test_the_lower_kl_is_the_closed_form_of_two_gaussians_checked_by_monte_carlo():
    g = torch.Generator().manual_seed(0)
    mu, lv = torch.randn(2, 3, generator=g), torch.randn(2, 3, generator=g) * 0.4
    pm, plv = torch.randn(2, 3, generator=g), torch.randn(2, 3, generator=g) * 0.4
    z = mu + torch.exp(0.5 * lv) * torch.randn(400_000, 2, 3, generator=g)
    mc = (losses.log_normal(z, mu, lv) - losses.log_normal(z, pm, plv)).mean(0)            # [2]
    exact = losses.gaussian_kl(mu, lv, pm, plv)
    assert exact.shape == (2, 3)
    torch.testing.assert_close(exact.sum(1), mc, atol=0.02, rtol=0)
    torch.testing.assert_close(losses.gaussian_kl(mu, lv, torch.zeros(2, 3), torch.zeros(2, 3)),
                               losses.kl_per_dim(mu, lv))


@pytest.mark.parametrize("prior", ["normal", "vamp"])
def test_the_terms_add_up_and_the_importance_weighted_bound_sits_under_the_elbo(prior):
    torch.manual_seed(0)
    cfg = ModelConfig(image_size=8, latent_dim=3, hidden=(32,), decoder_hidden=(16, 32), latent_layers=2,
                      prior=prior, prior_components=4)
    data = tiny_split(n_train=256, n_test=64)
    model = fit(RunConfig(model=cfg, train=TrainConfig(epochs=4, batch_size=32, threads=1, binarize=True),
                          data=DataConfig(name="blobs")), data).model
    x = data.test.x[:16].float() / 255
    out = model(x)
    t = losses.elbo_terms(out.recon_logits, x, out.mu, out.logvar, cfg, z=out.z, prior=out.prior, lower=out.lower)
    torch.testing.assert_close(t["kl"], t["kl_top"] + t["kl_lower"])
    torch.testing.assert_close(t["kl_lower"], t["kl_per_dim_lower"].sum(1))
    assert t["kl_per_dim"].shape == (16, 3) and (t["kl_lower"] >= 0).all()
    ev = evaluate(model, data.test, iw_samples=300, seed=0, binarized=True)
    assert ev["nll_iw"] <= ev["neg_elbo"] + 1e-3, "log p(x) >= ELBO: the IW estimate of -log p(x) must not exceed it"
    assert len(ev["kl_per_layer"]) == 2 and len(ev["kl_per_dim_lower"]) == 3
    assert ev["kl"] == pytest.approx(sum(ev["kl_per_layer"]), rel=1e-4)
    # one sample: -log w is the one-sample -ELBO of both layers, log q - log p at each layer's draw
    w = losses.iwae_terms(out.recon_logits, x, out.mu, out.logvar, out.z[None], cfg, prior=out.prior,
                          lower=out.lower)["neg_iw"]
    low = out.lower
    top = losses.log_normal(out.z, out.mu, out.logvar) - losses.log_prior(out.z, out.prior)
    by_hand = (t["recon"] + top + losses.log_normal(low.z, low.mu, low.logvar)
               - losses.log_normal(low.z, low.prior_mu, low.prior_logvar))
    torch.testing.assert_close(w, by_hand, atol=1e-4, rtol=1e-5)


def test_decode_reads_the_top_layer_and_the_lower_one_at_its_conditional_mean():
    torch.manual_seed(1)
    model = build_model(TWO).eval()
    z = torch.randn(5, 3)
    with torch.no_grad():
        mean = model.lower.conditional_prior(z)[0]
        torch.testing.assert_close(model.decode(z), model.decode_layers(z, mean))
        assert not torch.allclose(model.decode(z), model.decode_layers(z, mean + 1.0))
    np.testing.assert_allclose(decode(model, z.numpy()), torch.sigmoid(model.decode(z)).detach().numpy(), atol=1e-6)
    # a reconstruction decodes both posteriors' means, not the conditional prior's
    imgs = tiny_split(n_train=8, n_test=6).test
    x = imgs.x.float() / 255
    with torch.no_grad():
        mu, _ = model.encode(x)
        mean1 = model.lower(model.encoder.hidden(x), mu).mu
        want = torch.sigmoid(model.decode_layers(mu, mean1)).numpy()
    state = torch.get_rng_state()
    np.testing.assert_allclose(reconstruct(model, imgs), want, atol=1e-6)
    assert torch.equal(torch.get_rng_state(), state), "a reconstruction draws no noise from the global generator"
    assert reconstruct(model, imgs, samples=4, seed=2).shape == (6, 4, 1, 8, 8)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu"])
def test_the_browser_decoder_folds_the_conditional_prior_in_exactly(activation):
    torch.manual_seed(2)
    model = build_model(ModelConfig(image_size=8, latent_dim=3, hidden=(32,), decoder_hidden=(16, 32),
                                    latent_layers=2, activation=activation)).eval()
    z = torch.randn(7, 3) * 2
    with torch.no_grad():
        want = torch.sigmoid(model.decode(z)).numpy()
    np.testing.assert_allclose(numpy_decode(decoder_spec(model), z.numpy()), want, atol=2e-6)


def test_a_smooth_activation_has_no_exact_browser_form_and_says_so():
    model = build_model(ModelConfig(image_size=8, latent_dim=3, hidden=(32,), latent_layers=2, activation="silu"))
    with pytest.raises(UnsupportedForBrowser, match="relu or leaky_relu only"):
        decoder_spec(model)


def test_the_budget_counts_the_lower_layer():
    cfg = RunConfig(model=TWO, data=DataConfig(name="blobs"))
    assert parameter_count(cfg) == sum(p.numel() for p in build_model(TWO).parameters())
    assert parameter_count(cfg) > parameter_count(RunConfig(model=ModelConfig(image_size=8, latent_dim=3,
                                                                              hidden=(32,), decoder_hidden=(16, 32)),
                                                            data=DataConfig(name="blobs")))


@pytest.mark.parametrize("build, words", [
    (lambda: ModelConfig(arch="conv", latent_layers=2), "unconditional mlp"),
    (lambda: ModelConfig(conditional=True, num_classes=10, latent_layers=2), "conditional"),
    (lambda: ModelConfig(latent_layers=3), "latent_layers must be"),
    (lambda: RunConfig(model=ModelConfig(latent_layers=2), train=TrainConfig(objective="btcvae")), "elbo or iwae"),
    (lambda: RunConfig(kind="semisup", model=ModelConfig(latent_layers=2, num_classes=10), semisup=SemisupConfig()),
     "one stochastic layer"),
])
def test_what_two_layers_do_not_go_with_is_refused_in_one_line(build, words):
    with pytest.raises(ConfigError, match=words) as e:
        build()
    assert "\n" not in str(e.value)


def test_two_layers_train_from_the_command_line_and_record_each_layer(tmp_path, capsys):
    out = tmp_path / "two"
    assert main(["train", "--data", "digits8", "--latent-layers", "2", "--latent-dim", "3", "--hidden", "32",
                 "--decoder-hidden", "16,32", "--epochs", "2", "--batch-size", "32", "--threads", "1",
                 "--max-train", "256", "--max-test", "64", "--out", str(out), "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    final = metrics["final"]
    assert len(final["kl_per_layer"]) == 2 and len(final["kl_per_dim_lower"]) == 3
    assert 0 <= final["active_units_lower"] <= 3
    steps = metrics["history"]["steps"]
    assert steps and all({"kl_top", "kl_lower"} <= set(s) for s in steps)
    assert all(math.isclose(s["kl"], s["kl_top"] + s["kl_lower"], rel_tol=1e-4, abs_tol=1e-4) for s in steps)
    run = load_run(out)
    assert run.config.model.latent_layers == 2 and run.model.lower is not None


def test_inside_keeps_both_layers_and_the_loss_adds_up():
    torch.manual_seed(3)
    model = build_model(TWO).eval()
    x = torch.rand(1, 8, 8)
    p = forward_pass(model, x, seed=4)
    assert p.lower is not None and p.lower.z.shape == (3,)
    assert p.kl == pytest.approx(p.kl_top + p.lower.kl)
    np.testing.assert_allclose(p.lower.z, p.lower.mu + p.lower.sigma * p.lower.eps, atol=1e-6)
    with torch.no_grad():
        xhat = torch.sigmoid(model.decode_layers(torch.from_numpy(p.z)[None], torch.from_numpy(p.lower.z)[None]))
    np.testing.assert_allclose(p.x_hat, xhat[0].numpy(), atol=1e-6)
    assert forward_pass(model, x, seed=4).lower.eps.tolist() == p.lower.eps.tolist()
    assert not np.allclose(p.lower.eps, p.eps), "the lower layer's noise has its own stream"
    z, pics = posterior_cloud(model, x, 6, seed=1)
    assert z.shape == (6, 3) and pics.shape == (6, 1, 8, 8)


def _metrics(kl_top: float, kl_lower: float, lower_dims: list[float], active_lower: int) -> dict:
    return {"status": "completed", "final": {"neg_elbo": 90.0, "kl": kl_top + kl_lower, "kl_per_dim": [2.0] * 4,
                                             "active_units": 4, "kl_per_layer": [kl_top, kl_lower],
                                             "kl_per_dim_lower": lower_dims, "active_units_lower": active_lower,
                                             "mean_image_nats": 200.0},
            "history": {"epochs": [], "steps": []}}


def test_the_doctor_reads_collapse_per_layer():
    cfg = RunConfig(model=ModelConfig(latent_dim=4, latent_layers=2), train=TrainConfig(epochs=10))
    found = diagnose(_metrics(8.0, 0.01, [0.0025] * 4, 0), cfg)
    lower = [f for f in found if f["code"] == "lower_layer_collapse"]
    assert len(lower) == 1 and "0 of 4" in lower[0]["title"]
    assert lower[0]["suggested_changes"]["train"]["warmup_epochs"] >= 1
    assert not any(f["code"] == "posterior_collapse" for f in found), "the top layer carries 8 nats"
    assert not [f for f in diagnose(_metrics(8.0, 6.0, [1.5] * 4, 4), cfg) if "collapse" in f["code"]]
    top = [f for f in diagnose(_metrics(0.2, 6.0, [1.5] * 4, 4), cfg) if f["code"] == "posterior_collapse"]
    assert top and "top layer" in top[0]["title"]


@pytest.mark.parametrize("objective", ["elbo", "iwae"])
def test_a_stopped_two_layer_run_resumes_to_the_same_weights(tmp_path, objective):
    """Stopped after its first epoch and resumed, a two-layer run ends where one never stopped ends: its evaluation
    and reconstruction snapshots draw no noise from the training's generators."""
    def config():
        return RunConfig(model=TWO, data=DataConfig(name="blobs"),
                         train=TrainConfig(epochs=3, batch_size=32, threads=1, objective=objective, recon_every=2))
    data = tiny_split(n_train=200, n_test=40)
    straight = train_run(config(), data, tmp_path / "a")
    assert {"kl_top", "kl_lower"} <= set(straight.metrics.history.epochs[-1].train)
    stop = threading.Event()
    cut = train_run(config(), data, tmp_path / "b", cancel=stop,
                    callback=lambda e: stop.set() if e["type"] == "epoch" and e["epoch"] == 1 else None)
    assert cut.status == "cancelled"
    again = train_run(config(), data, tmp_path / "b", resume=True)
    a, b = straight.model.state_dict(), again.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a), "resuming changed the trajectory"


@pytest.mark.parametrize("prior", ["normal", "vamp"])
def test_bf16_autocast_computes_the_same_bound_and_trains_both_layers_in_fp32(prior):
    """``precision = "bf16"`` (the two-layer table's recipe on a CPU with bf16 units): the forward pass under autocast
    gives the fp32 bound within bf16's rounding, the terms come back in fp32 and every parameter, the lower layer's
    included, gets a finite fp32 gradient; a bf16 run trains and keeps fp32 weights."""
    cfg = ModelConfig(image_size=8, latent_dim=3, hidden=(32,), decoder_hidden=(16, 32), latent_layers=2,
                      prior=prior, prior_components=4)
    torch.manual_seed(0)
    model = build_model(cfg)
    x = (tiny_split(n_train=8, n_test=64).test.x.float() / 255 > 0.5).float()
    terms = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(1)                             # the same noise for both layers in both passes
        _, terms[precision] = Elbo(TrainConfig(precision=precision), layers=2).terms(model, Batch(x))
    assert all(t.dtype == torch.float32 for t in terms["bf16"].values())
    exact, rounded = terms["fp32"]["neg_elbo"].mean(), terms["bf16"]["neg_elbo"].mean()
    assert rounded != exact, "autocast was not applied"
    assert abs(rounded - exact) < 0.02 * exact
    model.zero_grad()
    losses.training_loss(terms["bf16"]).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all(), name
    assert any(p.grad.abs().sum() > 0 for n, p in model.named_parameters() if n.startswith("lower"))
    data, curves = tiny_split(n_train=256, n_test=64), {}
    for precision in ("fp32", "bf16"):
        res = fit(RunConfig(model=cfg, train=TrainConfig(epochs=8, batch_size=32, lr=0.01, threads=1, binarize=True,
                                                         precision=precision), data=DataConfig(name="blobs")), data)
        assert all(p.dtype == torch.float32 for p in res.model.parameters())
        curves[precision] = [e["test"]["neg_elbo"] for e in res.history["epochs"]]
    bf16, fp32 = curves["bf16"], curves["fp32"]
    assert all(math.isfinite(v) for v in bf16) and bf16[-1] < bf16[0] - 1, curves      # it learns ...
    assert abs(bf16[-1] - fp32[-1]) < 0.05 * fp32[-1], curves                          # ... as fp32 does
