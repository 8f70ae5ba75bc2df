"""Shapes across models and sizes; the math of the loss terms checked exactly or by Monte Carlo."""
import math

import pytest
import torch
import torch.nn.functional as F

from vae import losses
from vae.config import ConfigError, ModelConfig
from vae.models import VAE, VAEOutput, conv_sides


@pytest.mark.parametrize("arch", ["mlp", "conv"])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("side", [8, 13, 28, 30, 64])
def test_shapes_across_models_and_sizes(arch, channels, side):
    hidden = (8, 16) if arch == "conv" else (32, 16)
    cfg = ModelConfig(arch=arch, channels=channels, image_size=side, latent_dim=3, hidden=hidden, fc_dim=16)
    m = VAE(cfg)
    x = torch.rand(5, channels, side, side)
    out = m(x)
    assert isinstance(out, VAEOutput)
    assert out.recon_logits.shape == (5, channels, side, side), f"{arch} {side}: {out.recon_logits.shape}"
    assert out.mu.shape == out.logvar.shape == out.z.shape == (5, 3)
    assert m.decode(torch.zeros(2, 3)).shape == (2, channels, side, side)


@pytest.mark.parametrize("latent", [1, 2, 128])
def test_latent_sizes(latent):
    m = VAE(ModelConfig(latent_dim=latent, hidden=(16,)))
    assert m(torch.rand(2, 1, 28, 28)).z.shape == (2, latent)


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_conditional_model_uses_label(arch):
    cfg = ModelConfig(arch=arch, latent_dim=2, hidden=(8, 8), fc_dim=8, conditional=True, num_classes=10)
    m = VAE(cfg)
    z = torch.zeros(1, 2)
    a = m.decode(z, torch.tensor([0]))
    b = m.decode(z, torch.tensor([7]))
    assert not torch.allclose(a, b), "the decoder must depend on the label"
    with pytest.raises(ValueError, match="needs labels"):
        m.decode(z)


def test_conv_sides():
    assert conv_sides(28, 2) == (7, 7)
    assert conv_sides(30, 2) == (7, 8)
    assert conv_sides(64, 3) == (8, 8)


@pytest.mark.parametrize("bad, msg", [
    (dict(image_size=7), "image_size"), (dict(image_size=65), "image_size"), (dict(channels=2), "channels"),
    (dict(latent_dim=0), "latent_dim"), (dict(latent_dim=129), "latent_dim"), (dict(arch="rnn"), "arch"),
    (dict(conditional=True, num_classes=0), "conditional"), (dict(arch="conv", hidden=(4,) * 5), "conv"),
])
def test_bad_model_config(bad, msg):
    with pytest.raises(ConfigError, match=msg):
        ModelConfig(**bad)


def test_kl_of_standard_normal_is_zero():
    mu, lv = torch.zeros(4, 6), torch.zeros(4, 6)
    assert torch.equal(losses.kl_per_dim(mu, lv), torch.zeros(4, 6))


def test_closed_form_kl_matches_monte_carlo():
    torch.manual_seed(0)
    mu = torch.tensor([[0.5, -1.0, 2.0]])
    lv = torch.tensor([[-0.5, 0.3, -2.0]])
    closed = losses.kl_per_dim(mu, lv).sum()
    z = mu + torch.randn(400_000, 3) * torch.exp(0.5 * lv)
    mc = (losses.log_normal(z, mu, lv) - losses.log_std_normal(z)).mean()
    assert abs(float(closed) - float(mc)) < 0.02, (float(closed), float(mc))


def test_elbo_of_a_hand_computed_case():
    cfg = ModelConfig(image_size=8, latent_dim=1, hidden=(4,))
    logits = torch.zeros(1, 1, 8, 8)         # p = 0.5 everywhere
    x = torch.ones(1, 1, 8, 8)
    mu, lv = torch.tensor([[1.0]]), torch.tensor([[0.0]])
    t = losses.elbo_terms(logits, x, mu, lv, cfg)
    # recon = 64 * log 2; KL(N(1,1)||N(0,1)) = 0.5
    assert math.isclose(float(t["recon"][0]), 64 * math.log(2), rel_tol=1e-6)
    assert math.isclose(float(t["kl"][0]), 0.5, rel_tol=1e-6)
    assert math.isclose(float(t["neg_elbo"][0]), 64 * math.log(2) + 0.5, rel_tol=1e-6)
    assert math.isclose(losses.bits_per_dim(64 * math.log(2), cfg), 1.0, rel_tol=1e-9)


def test_bce_on_logits_equals_sigmoid_bce_and_sums_over_pixels():
    torch.manual_seed(1)
    cfg = ModelConfig(image_size=8, hidden=(4,))
    logits = torch.randn(3, 1, 8, 8)
    x = torch.rand(3, 1, 8, 8)
    got = losses.recon_nll(logits, x, cfg)
    ref = F.binary_cross_entropy(torch.sigmoid(logits), x, reduction="none").sum((1, 2, 3))
    assert got.shape == (3,)
    assert torch.allclose(got, ref, atol=1e-4)


def test_gaussian_nll_matches_torch_distribution():
    cfg = ModelConfig(image_size=8, hidden=(4,), likelihood="gaussian", gaussian_sigma=0.2)
    logits = torch.randn(2, 1, 8, 8)
    x = torch.rand(2, 1, 8, 8)
    ref = -torch.distributions.Normal(torch.sigmoid(logits), 0.2).log_prob(x).sum((1, 2, 3))
    assert torch.allclose(losses.recon_nll(logits, x, cfg), ref, atol=1e-4)


def test_training_loss_mean_over_batch_beta_and_free_bits():
    terms = {"recon": torch.tensor([10.0, 20.0]), "kl": torch.tensor([1.0, 3.0]),
             "kl_per_dim": torch.tensor([[0.5, 0.5], [0.1, 2.9]])}
    assert float(losses.training_loss(terms)) == pytest.approx(15 + 2)
    assert float(losses.training_loss(terms, beta=0.5)) == pytest.approx(15 + 1)
    # batch-mean KL per dim = [0.3, 1.7]; free bits 1.0 lifts the first to 1.0
    assert float(losses.training_loss(terms, free_bits=1.0)) == pytest.approx(15 + 1.0 + 1.7)


def _decoder_widths(m: VAE) -> list[int]:
    return [layer.out_features for layer in m.decoder.net if isinstance(layer, torch.nn.Linear)]


def test_decoder_widths_default_mirror_and_explicit():
    from vae.config import DEFAULT_DECODER, RunConfig
    default = ModelConfig()
    assert default.decoder_hidden == DEFAULT_DECODER and _decoder_widths(VAE(default)) == [*DEFAULT_DECODER, 784]
    # other encoder widths mirror unless the decoder is given; the encoder is untouched by decoder_hidden
    assert _decoder_widths(VAE(ModelConfig(hidden=(64, 32)))) == [32, 64, 784]
    m = VAE(ModelConfig(hidden=(64,), decoder_hidden=(8, 16, 32)))
    assert _decoder_widths(m) == [8, 16, 32, 784]
    assert [layer.out_features for layer in m.encoder.head if isinstance(layer, torch.nn.Linear)] == [64]
    assert m(torch.rand(3, 1, 28, 28)).recon_logits.shape == (3, 1, 28, 28)
    assert _decoder_widths(VAE(ModelConfig(decoder_hidden=()))) == [1024, 784]
    # saved configs hold the resolved widths and round-trip; a config written before the key existed mirrors
    cfg = RunConfig()
    assert RunConfig.from_json(cfg.to_json()) == cfg
    legacy = cfg.to_dict()
    for section, key in (("model", "decoder_hidden"), ("train", "lr_warmup"), ("train", "output_bias_init")):
        del legacy[section][key]
    old = RunConfig.from_dict(legacy)
    assert old.model.decoder_widths == (1024,) and old.train.lr_warmup == 0 and not old.train.output_bias_init
    with pytest.raises(ConfigError, match="decoder_hidden"):
        ModelConfig(decoder_hidden=(0,))
    with pytest.raises(ConfigError, match="decoder_hidden"):
        RunConfig.from_dict({"model": {"decoder_hidden": "256"}})
