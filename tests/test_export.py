"""vae.export: the decoder spec the browser runs, checked against torch without a browser."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from vae.config import ModelConfig
from vae.export import UnsupportedForBrowser, decoder_spec, numpy_decode, spec_bytes, spec_id
from vae.models import VAE, build_model

CONFIGS = {
    "mlp-grey-28-relu": ModelConfig(arch="mlp", image_size=28, latent_dim=8, hidden=(64, 32)),
    "mlp-rgb-8-elu": ModelConfig(arch="mlp", channels=3, image_size=8, latent_dim=2, hidden=(16,), activation="elu"),
    "mlp-grey-30-silu-cond": ModelConfig(arch="mlp", image_size=30, latent_dim=4, hidden=(32,), activation="silu",
                                         conditional=True, num_classes=10),
    "mlp-rgb-64-leaky": ModelConfig(arch="mlp", channels=3, image_size=64, latent_dim=3, hidden=(16,),
                                    activation="leaky_relu"),
    "conv-grey-28-relu": ModelConfig(arch="conv", image_size=28, latent_dim=6, hidden=(8, 16), fc_dim=32),
    "conv-rgb-8-silu": ModelConfig(arch="conv", channels=3, image_size=8, latent_dim=2, hidden=(4, 8), fc_dim=16,
                                   activation="silu"),
    "conv-grey-30-elu-cond": ModelConfig(arch="conv", image_size=30, latent_dim=5, hidden=(4, 8), fc_dim=16,
                                         activation="elu", conditional=True, num_classes=3),
    "conv-rgb-64-leaky": ModelConfig(arch="conv", channels=3, image_size=64, latent_dim=4, hidden=(4, 8, 8),
                                     fc_dim=16, activation="leaky_relu"),
    "conv-grey-28-3layers-cond": ModelConfig(arch="conv", image_size=28, latent_dim=3, hidden=(4, 4, 8), fc_dim=16,
                                             conditional=True, num_classes=2),
}


def _model(cfg: ModelConfig, seed: int = 0) -> VAE:
    torch.manual_seed(seed)
    model = build_model(cfg).eval()
    # random weights are near-symmetric around 0: scale them so the pixels span 0..1
    with torch.no_grad():
        for p in model.decoder.parameters():
            p.mul_(3.0)
    return model


@pytest.mark.parametrize("name", list(CONFIGS))
def test_numpy_decode_matches_torch(name):
    cfg = CONFIGS[name]
    model = _model(cfg)
    spec = decoder_spec(model)
    g = torch.Generator().manual_seed(1)
    z = torch.randn(5, cfg.latent_dim, generator=g) * 2
    y = torch.arange(5) % cfg.num_classes if cfg.conditional else None
    with torch.no_grad():
        want = torch.sigmoid(model.decode(z, y)).numpy()
    got = numpy_decode(spec, z.numpy(), None if y is None else y.numpy())
    assert got.shape == want.shape == (5, cfg.channels, cfg.image_size, cfg.image_size), (got.shape, want.shape)
    assert np.abs(got - want).max() < 1e-5, np.abs(got - want).max()
    assert want.std() > 0.05, "test weights should give varied pixels"
    # single-z form
    one = numpy_decode(spec, z[0].numpy(), None if y is None else int(y[0]))
    assert one.shape == want.shape[1:]
    assert np.abs(one - want[0]).max() < 1e-5


@pytest.mark.parametrize("name", ["mlp-grey-30-silu-cond", "conv-rgb-64-leaky"])
def test_spec_round_trip_and_fields(name):
    cfg = CONFIGS[name]
    spec = decoder_spec(_model(cfg))
    back = json.loads(spec_bytes(spec))
    assert back == spec
    assert back["version"] == 1
    assert (back["latent_dim"], back["channels"], back["image_size"]) == (cfg.latent_dim, cfg.channels, cfg.image_size)
    assert back["conditional"] == cfg.conditional
    assert back["num_classes"] == (cfg.num_classes if cfg.conditional else 0)
    assert back["layers"][-1] == {"type": "sigmoid"}
    assert back["layers"][-2]["type"] == ("unflatten" if cfg.arch == "mlp" else "crop")
    assert spec["id"] == spec_id(back)
    # the JSON-decoded spec decodes the same
    z = np.random.default_rng(0).standard_normal((2, cfg.latent_dim))
    y = [0, 1] if cfg.conditional else None
    assert np.array_equal(numpy_decode(spec, z, y), numpy_decode(back, z, y))


def test_spec_id_tracks_weights():
    cfg = CONFIGS["conv-grey-28-relu"]
    a, b = decoder_spec(_model(cfg, 0)), decoder_spec(_model(cfg, 0))
    c = decoder_spec(_model(cfg, 1))
    assert a["id"] == b["id"] != c["id"]


def test_leaky_slope_and_elu_alpha_read_from_modules():
    model = _model(CONFIGS["mlp-rgb-64-leaky"])
    model.decoder.net[1].negative_slope = 0.2
    spec = decoder_spec(model)
    assert spec["layers"][1] == {"type": "leaky_relu", "slope": 0.2}
    z = torch.randn(3, 3)
    with torch.no_grad():
        want = torch.sigmoid(model.decode(z)).numpy()
    assert np.abs(numpy_decode(spec, z.numpy()) - want).max() < 1e-5


@pytest.mark.parametrize("breaker, reason", [
    (lambda m: m.decoder.net.append(nn.Tanh()), "Tanh"),
    (lambda m: m.decoder.net.__setitem__(1, nn.GELU()), "GELU"),
    (lambda m: m.decoder.net.__setitem__(5, nn.ConvTranspose2d(16, 8, 3, 2, 1)), "kernel 4"),
    (lambda m: m.decoder.net.__setitem__(5, nn.ConvTranspose2d(16, 8, 4, 2, 1, output_padding=1)), "kernel 4"),
    (lambda m: m.decoder.net.insert(0, nn.Dropout()), "Dropout"),
    (lambda m: m.decoder.net.__setitem__(0, nn.Linear(7, 32)), "expects 7 inputs"),
])
def test_unsupported_models_raise(breaker, reason):
    model = _model(CONFIGS["conv-grey-28-relu"])
    breaker(model)
    with pytest.raises(UnsupportedForBrowser, match=reason):
        decoder_spec(model)


def test_decoder_subclass_refused():
    from vae.models import Decoder

    class MyDecoder(Decoder):
        def forward(self, z, y=None):
            return super().forward(z, y) * 2

    model = _model(CONFIGS["mlp-grey-28-relu"])
    model.decoder.__class__ = MyDecoder
    with pytest.raises(UnsupportedForBrowser, match="MyDecoder"):
        decoder_spec(model)


def test_numpy_decode_checks_inputs():
    spec = decoder_spec(_model(CONFIGS["conv-grey-30-elu-cond"]))
    with pytest.raises(ValueError, match="expects 5"):
        numpy_decode(spec, np.zeros(4), 0)
    with pytest.raises(ValueError, match="needs a label"):
        numpy_decode(spec, np.zeros(5))
    with pytest.raises(ValueError, match="labels in 0..2"):
        numpy_decode(spec, np.zeros(5), 3)
