"""vae.stepper: the pushes shown are minus each term's gradient, and a step trains on that same batch."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from app_support import ROOT

from vae import load_run
from vae.data import load_dataset
from vae.stepper import Stepper


@pytest.fixture(scope="module")
def setup():
    run = load_run(ROOT / "assets" / "runs" / "mnist-2d")
    data = load_dataset("mnist5k", max_train=400, max_test=100)
    return run, data


def test_kl_push_is_minus_beta_mu_and_recon_push_matches_a_finite_difference(setup):
    run, data = setup
    st = Stepper(run.model, data.train, batch_size=8, seed=1)
    f = st.forces(beta=2.5)
    np.testing.assert_allclose(f.kl, -2.5 * f.mu, rtol=1e-5, atol=1e-6)
    # the reconstruction push of image 0 along z0, by a central difference of its own recon term in mu
    idx, eps = st._next
    model = copy.deepcopy(st.model).double()          # float64: the difference is far above round-off
    x = data.train.x[idx[:1]].double() / 255
    with torch.no_grad():
        mu, logvar = model.encode(x)

        def recon_at(m):
            z = m + torch.exp(0.5 * logvar) * eps[:1].double()
            return torch.nn.functional.binary_cross_entropy_with_logits(model.decode(z), x, reduction="sum")
        h = 1e-4
        e = torch.tensor([[h, 0.0]], dtype=torch.float64)
        fd = -(recon_at(mu + e) - recon_at(mu - e)) / (2 * h)
    assert float(fd) == pytest.approx(float(f.recon[0, 0]), rel=1e-3, abs=1e-3)


def test_the_model_is_a_copy_and_every_step_is_recorded(setup):
    run, data = setup
    before = {k: v.clone() for k, v in run.model.state_dict().items()}
    st = Stepper(run.model, data.train, batch_size=64, seed=0, lr=1e-3)
    for _ in range(5):
        st.step(1.0)
    for k, v in run.model.state_dict().items():
        assert torch.equal(v, before[k]), "the run's own model is never trained"
    assert st.steps == 5 and len(st.history) == 5


def test_a_large_beta_pulls_codes_to_the_prior(setup):
    """With beta = 50 the KL push dominates: after 60 steps the test means sit much closer to 0 than before."""
    run, data = setup
    st = Stepper(run.model, data.train, batch_size=64, seed=0, lr=3e-3)
    start = np.abs(st.codes(data.test)["mu"]).mean()
    for _ in range(60):
        st.step(50.0)
    end = st.codes(data.test)
    assert np.abs(end["mu"]).mean() < 0.5 * start
    assert end["kl_per_dim"].sum() < 2.0


def test_bad_beta_is_refused(setup):
    run, data = setup
    st = Stepper(run.model, data.train, batch_size=4)
    with pytest.raises(ValueError, match="beta must be"):
        st.step(float("nan"))
