"""The VampPrior (Tomczak & Welling 2018): its density, its KL, its training, sampling, saving and the options."""
import json
import math

import pytest
import torch
from helpers import tiny_split

from vae import losses
from vae.cli.train import args_for
from vae.config import ConfigError, DataConfig, ModelConfig, RunConfig, TrainConfig
from vae.evaluate import evaluate
from vae.inside import forward_pass
from vae.latent import sample_prior
from vae.models import build_model
from vae.runs import load_run, save_run
from vae.stepper import Stepper
from vae.train import fit, init_prior

CFG = ModelConfig(image_size=8, latent_dim=3, hidden=(32,), prior="vamp", prior_components=5)


def test_the_mixture_density_is_the_mean_of_its_components():
    """log (1/K) sum_k N(z; mu_k, sigma_k^2) from the two-matmul form against each component by hand."""
    g = torch.Generator().manual_seed(0)
    z = torch.randn(4, 6, 3, generator=g)
    mu_k, lv_k = torch.randn(7, 3, generator=g), torch.randn(7, 3, generator=g) * 0.5
    by_hand = torch.stack([losses.log_normal(z, mu_k[k], lv_k[k]) for k in range(7)], -1)
    want = torch.logsumexp(by_hand, -1) - math.log(7)
    got = losses.log_normal_mixture(z, mu_k, lv_k)
    assert got.shape == (4, 6)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-5)
    # a narrow component far from 0 (sigma 0.002 at 3.0): the expanded square must not cancel away its density
    mu_n, lv_n = torch.full((1, 3), 3.0), torch.full((1, 3), 2 * math.log(0.002))
    z_n = mu_n + 0.002 * torch.tensor([[0.5, -1.0, 0.25]])
    direct = losses.log_normal(z_n.double(), mu_n.double(), lv_n.double())
    assert float(losses.log_normal_mixture(z_n, mu_n, lv_n)[0]) == pytest.approx(float(direct[0]), abs=1e-3)
    # one component at N(0, I) is the standard normal
    torch.testing.assert_close(losses.log_normal_mixture(z, torch.zeros(1, 3), torch.zeros(1, 3)),
                               losses.log_std_normal(z), atol=1e-5, rtol=1e-6)


def test_the_kl_estimate_averages_to_the_closed_form_for_one_gaussian_component():
    """With a one-component 'mixture' N(m, v) the one-sample estimate log q - log p must average, over many
    draws, to the closed-form KL(q || N(m, v)); and the per-dimension reading is that closed form per dimension."""
    g = torch.Generator().manual_seed(1)
    mu, lv = torch.randn(1, 3, generator=g), torch.randn(1, 3, generator=g) * 0.3
    m, lvm = torch.tensor([[0.5, -1.0, 0.2]]), torch.tensor([[0.3, -0.4, 0.0]])
    z = mu + torch.exp(0.5 * lv) * torch.randn(200_000, 1, 3, generator=g)            # [n, 1, D]: n samples
    kl, kld = losses.prior_terms(mu, lv, z, (m, lvm))
    exact = 0.5 * (lvm - lv + (lv.exp() + (mu - m) ** 2) / lvm.exp() - 1)               # [1, D]
    assert float(kl) == pytest.approx(float(exact.sum()), abs=0.02)
    torch.testing.assert_close(kld, exact, atol=1e-5, rtol=1e-5)
    # the standard prior keeps its closed form
    kl0, kld0 = losses.prior_terms(mu, lv, None, None)
    torch.testing.assert_close(kld0, losses.kl_per_dim(mu, lv))


def test_a_dimension_the_encoder_ignores_reads_zero_per_dimension():
    """kl_to_marginals: q equal to the prior's marginal on a dimension gives 0 there, whatever that marginal is."""
    mu_k = torch.tensor([[-1.0, 0.7], [1.0, 0.7]])
    lv_k = torch.tensor([[0.0, -1.0], [0.0, -1.0]])
    q_mu, q_lv = torch.tensor([[2.0, 0.7]]), torch.tensor([[-2.0, -1.0]])
    kld = losses.kl_to_marginals(q_mu, q_lv, mu_k, lv_k)
    assert float(kld[0, 1]) == pytest.approx(0.0, abs=1e-6) and float(kld[0, 0]) > 0.5


def test_forward_carries_the_components_and_the_iw_bound_holds():
    torch.manual_seed(0)
    model = build_model(CFG)
    x = (torch.rand(6, 1, 8, 8) > 0.5).float()
    out = model(x, k=4)
    assert out.prior[0].shape == (5, 3) and out.prior[1].shape == (5, 3)
    t = losses.iwae_terms(out.recon_logits, x, out.mu, out.logvar, out.z, CFG, prior=out.prior)
    assert t["neg_iw"].shape == (6,) and torch.isfinite(t["neg_iw"]).all()
    assert build_model(ModelConfig(image_size=8, latent_dim=3, hidden=(32,)))(x).prior is None


def test_training_saving_loading_and_sampling_a_vamp_run(tmp_path):
    cfg = RunConfig(model=CFG, train=TrainConfig(epochs=3, batch_size=16, lr=3e-3, binarize=True, seed=0),
                    data=DataConfig(name="blobs"))
    data = tiny_split()
    res = fit(cfg, data)
    first, last = res.history["epochs"][0], res.history["epochs"][-1]
    assert math.isfinite(last["train"]["loss"]) and last["train"]["loss"] < first["train"]["loss"], "it learns"
    fresh = build_model(CFG)
    init_prior(fresh, data.train.x, seed=0)
    imgs = (data.train.x.float() / 255).clamp(0.05, 0.95).flatten(1)
    start = torch.sigmoid(fresh.pseudo_inputs.detach()).flatten(1)
    assert float(torch.cdist(start, imgs).min(1).values.max()) < 0.02, "each pseudo-input starts at an image"
    assert not torch.allclose(res.model.pseudo_inputs.detach(), fresh.pseudo_inputs), "and then learns"
    ev = evaluate(res.model, data.test, iw_samples=64, binarized=True)
    assert ev["nll_iw"] <= ev["neg_elbo"] + 0.5 and len(ev["kl_per_dim"]) == 3
    save_run(tmp_path / "run", res.model, cfg, {"history": res.history, "final": ev, "status": res.status})
    run = load_run(tmp_path / "run")
    assert run.config.model.prior == "vamp" and run.config.model.prior_components == 5
    torch.testing.assert_close(run.model.pseudo_inputs, res.model.pseudo_inputs)
    z, imgs = sample_prior(run.model, 40, seed=3)
    assert z.shape == (40, 3) and imgs.shape == (40, 1, 8, 8)
    with torch.no_grad():
        mu_k, _ = run.model.prior_params()
    # each draw sits near one of the components (their sigmas are below 1 once trained a little)
    nearest = torch.cdist(torch.as_tensor(z), mu_k).min(1).values
    assert float(nearest.median()) < 3.0
    fp = forward_pass(run.model, data.test.x[0])
    assert fp.kl_mixture is not None and fp.kl == fp.kl_mixture and math.isfinite(fp.log_p)


def test_an_old_config_without_the_prior_loads_as_the_standard_prior():
    d = json.loads(RunConfig().to_json())
    del d["model"]["prior"], d["model"]["prior_components"]
    assert RunConfig.from_dict(d).model.prior == "normal"


@pytest.mark.parametrize("make, msg", [
    (lambda: ModelConfig(prior="gmm"), "model.prior must be one of ['normal', 'vamp']"),
    (lambda: ModelConfig(prior="vamp", prior_components=0), "model.prior_components must be 1..5000"),
    (lambda: ModelConfig(prior="vamp", conditional=True, num_classes=10), "a conditional model takes prior 'normal'"),
    (lambda: RunConfig(model=ModelConfig(prior="vamp"), train=TrainConfig(free_bits=0.5)),
     "use free_bits 0 with prior 'vamp'"),
])
def test_bad_prior_settings_are_refused_with_what_is_accepted(make, msg):
    with pytest.raises(ConfigError, match=msg.replace("[", r"\[").replace("]", r"\]")):
        make()


def test_the_cli_carries_the_prior_and_the_stepper_refuses_it():
    cfg = RunConfig(model=ModelConfig(prior="vamp", prior_components=50), data=DataConfig(name="mnist"))
    args = args_for(cfg)
    assert args[args.index("--prior") + 1] == "vamp" and args[args.index("--prior-components") + 1] == "50"
    assert "--prior" not in args_for(RunConfig(data=DataConfig(name="mnist")))
    with pytest.raises(ValueError, match="closed-form KL push towards N\\(0, I\\)"):
        Stepper(build_model(CFG), tiny_split().train)
