"""The importance-weighted objective (Burda et al. 2016): its bound, its training and its options."""
import math

import pytest
import torch
from helpers import tiny_split

from vae import losses
from vae.cli.train import args_for
from vae.config import ConfigError, DataConfig, ModelConfig, RunConfig, TrainConfig
from vae.evaluate import evaluate
from vae.models import build_model
from vae.train import fit

CFG = ModelConfig(image_size=8, latent_dim=3, hidden=(32,))


def batch(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 1, 8, 8, generator=g) > 0.5).float()


def test_forward_with_k_samples_shares_one_encoding():
    torch.manual_seed(0)
    model = build_model(CFG)
    x = batch(5)
    out = model(x, k=4)
    assert out.z.shape == (4, 5, 3) and out.recon_logits.shape == (20, 1, 8, 8) and out.mu.shape == (5, 3)
    # sample-major: rows i*5 .. i*5+4 decode the i-th sample of the five images
    assert torch.allclose(out.recon_logits[5:10], model.decode(out.z[1]), atol=1e-6)


def test_the_bound_is_logsumexp_of_the_log_weights():
    """neg_iw recomputed from its definition, by hand, for one image."""
    torch.manual_seed(1)
    model = build_model(CFG).requires_grad_(False)
    x = batch(3)
    out = model(x, k=6)
    t = losses.iwae_terms(out.recon_logits, x, out.mu, out.logvar, out.z, CFG)
    i = 2
    w = []
    for s in range(6):
        z = out.z[s, i]
        log_px = -torch.nn.functional.binary_cross_entropy_with_logits(out.recon_logits[s * 3 + i], x[i],
                                                                        reduction="sum")
        log_pz = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum()
        log_qz = torch.distributions.Normal(out.mu[i], (0.5 * out.logvar[i]).exp()).log_prob(z).sum()
        w.append(float(log_px + log_pz - log_qz))
    expected = -(math.log(sum(math.exp(v - max(w)) for v in w)) + max(w) - math.log(6))
    assert float(t["neg_iw"][i]) == pytest.approx(expected, rel=1e-5)
    # Jensen, per image: the k-sample bound is never looser than the mean of its own single-sample bounds
    assert float(t["neg_iw"][i]) <= -sum(w) / 6 + 1e-4


def test_bound_tightens_with_k_and_k1_is_the_elbo_in_expectation():
    """E[neg_iw_k] falls as k grows (Burda et al., Theorem 1) and at k = 1 equals the -ELBO with the closed-form
    KL. An untrained encoder with a decoder that reacts to z: its posterior is far from the true one, so the
    gaps are 2-5 nats (k 1 -> 5) and 0.3-1 nats (5 -> 50), several times the margins and the standard errors
    (the k = 1 mean is over 4,000 draws: about 0.1 nats)."""
    torch.manual_seed(2)
    model = build_model(CFG)
    x = batch(8)
    with torch.no_grad():
        for layer in model.decoder.modules():      # a decoder that reacts to z: the posterior gap is nats wide
            if isinstance(layer, torch.nn.Linear):
                layer.weight.mul_(4.0)
                break
        means = {}
        for k, reps in ((1, 4000), (5, 1000), (50, 100)):   # each image repeated: reps independent bounds
            xr = x.repeat(reps, 1, 1, 1)
            out = model(xr, k=k)
            bound = losses.iwae_terms(out.recon_logits, xr, out.mu, out.logvar, out.z, CFG)["neg_iw"]
            means[k] = bound.view(reps, x.shape[0]).mean(0)
        out = model(x, k=10_000)         # recon averaged over many draws, plus the closed-form KL
        t = losses.iwae_terms(out.recon_logits, x, out.mu, out.logvar, out.z, CFG)
        neg_elbo = t["recon"] + t["kl"]
    assert torch.all(means[5] < means[1] - 0.2) and torch.all(means[50] < means[5] - 0.05)
    assert torch.allclose(means[1], neg_elbo, atol=0.5)


def test_training_with_the_iwae_objective_and_its_record(tmp_path):
    data = tiny_split(n_train=96, n_test=32)
    cfg = RunConfig(model=ModelConfig(image_size=8, latent_dim=2, hidden=(16,)),
                    train=TrainConfig(epochs=3, batch_size=32, threads=1, binarize=True, objective="iwae", iw_k=5),
                    data=DataConfig(name="blobs"))
    steps = []
    res = fit(cfg, data, callback=lambda e: e["type"] == "step" and steps.append(e))
    assert res.status == "completed" and len(res.history["epochs"]) == 3 and len(steps) == 9
    assert all(math.isfinite(s["loss"]) for s in steps)
    # the loss trained on is the k = 5 bound, which (by Jensen, per batch) is at most recon + the sampled KL;
    # its closed-form counterpart is reported beside it, so the two are comparable and close
    assert all(s["loss"] < s["recon"] + s["kl"] + 5 for s in steps)
    final = evaluate(res.model, data.test, iw_samples=50)
    assert final["nll_iw"] <= final["neg_elbo"] + 0.5
    again = RunConfig.from_dict(cfg.to_dict())
    assert again.train.objective == "iwae" and again.train.iw_k == 5
    line = " ".join(args_for(cfg))
    assert "--objective iwae --k 5" in line


@pytest.mark.parametrize("train, msg", [
    ({"iw_k": 5}, "with the ELBO it must be 1"),
    ({"objective": "iwae", "iw_k": 5, "beta": 4.0}, "takes no beta"),
    ({"objective": "iwae", "free_bits": 0.5}, "takes no beta, KL warm-up or free bits"),
    ({"objective": "iwae", "iw_k": 0}, "iw_k must be 1..1000"),
    ({"objective": "vi"}, r"objective must be one of \[.elbo., .iwae., .btcvae., .factorvae.\], got .vi."),
])
def test_bad_iwae_settings_are_refused_with_what_is_accepted(train, msg):
    with pytest.raises(ConfigError, match=msg):
        TrainConfig(**train)


def test_cli_k_needs_the_iwae_objective(capsys):
    from vae.cli import main
    assert main(["train", "--data", "blobs", "--k", "5", "--out", "unused"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--k is the IWAE objective's sample count" in err[0] and "--objective" in err[0]
