"""vae.inside: one input's forward pass, its loss terms, the posterior cloud and its ellipses."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from app_support import ROOT

from vae import inside, load_run
from vae.data import load_dataset
from vae.losses import recon_nll

DEMOS = ROOT / "assets" / "runs"


@pytest.fixture(scope="module")
def run2d():
    return load_run(DEMOS / "mnist-2d")


@pytest.fixture(scope="module")
def digit():
    return load_dataset("mnist5k").test.x[3]


def test_z_is_mu_plus_sigma_times_eps_and_a_frozen_eps_is_kept(run2d, digit):
    a = inside.forward_pass(run2d.model, digit, seed=5)
    np.testing.assert_allclose(a.sigma, np.exp(0.5 * a.logvar), rtol=1e-6)
    np.testing.assert_allclose(a.z, a.mu + a.sigma * a.eps, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(a.eps, inside.draw_eps(2, 5))
    b = inside.forward_pass(run2d.model, digit, seed=6)
    assert not np.allclose(a.eps, b.eps) and np.allclose(a.mu, b.mu)
    frozen = inside.forward_pass(run2d.model, digit.numpy().astype(np.float32) / 255, eps=a.eps)
    np.testing.assert_allclose(frozen.z, a.z, rtol=1e-6)
    assert frozen.recon == pytest.approx(a.recon, rel=1e-5)


def test_loss_terms_are_the_training_loss_for_this_input(run2d, digit):
    p = inside.forward_pass(run2d.model, digit, seed=1)
    x = torch.as_tensor(p.x)[None]
    with torch.no_grad():
        logits = run2d.model.decode(torch.as_tensor(p.z)[None])
    assert p.recon == pytest.approx(float(recon_nll(logits, x, run2d.config.model)[0]), rel=1e-5)
    np.testing.assert_allclose(p.x_hat, torch.sigmoid(logits)[0].numpy(), rtol=1e-5, atol=1e-6)
    closed = 0.5 * (p.mu ** 2 + p.sigma ** 2 - 1 - p.logvar)
    np.testing.assert_allclose(p.kl_per_dim, closed, rtol=1e-5, atol=1e-7)
    assert p.neg_elbo == pytest.approx(p.recon + p.kl)
    assert p.recon > 0 and p.kl > 0


def test_kl_is_the_average_of_log_q_minus_log_p_over_posterior_draws(run2d, digit):
    """Monte Carlo check of the closed form on this input: E_q[log q(z|x) - log p(z)] = KL."""
    p = inside.forward_pass(run2d.model, digit, seed=0)
    gaps = np.array([(lambda f: f.log_q - f.log_p)(inside.forward_pass(run2d.model, digit, seed=s))
                     for s in range(2000)])
    se = gaps.std() / np.sqrt(len(gaps))
    assert abs(gaps.mean() - p.kl) < 5 * se + 1e-3, (gaps.mean(), p.kl, se)


def test_posterior_cloud_follows_mu_and_sigma(run2d, digit):
    p = inside.forward_pass(run2d.model, digit)
    z, pics = inside.posterior_cloud(run2d.model, digit, 4000, seed=2)
    assert z.shape == (4000, 2) and pics.shape == (4000, 1, 28, 28)
    assert pics.min() >= 0 and pics.max() <= 1
    np.testing.assert_allclose(z.mean(0), p.mu, atol=5 * p.sigma.max() / np.sqrt(4000))
    np.testing.assert_allclose(z.std(0), p.sigma, rtol=0.08)


def test_ellipse_holds_the_share_of_mass_a_2d_gaussian_puts_inside_k_sigma():
    rng = np.random.default_rng(0)
    d = 6
    mu, sigma = rng.normal(size=d), rng.uniform(0.2, 1.5, size=d)
    comps = np.linalg.qr(rng.normal(size=(d, 2)))[0].T        # an orthonormal 2-D projection, like PCA's
    center = comps @ mu
    cov = comps @ np.diag(sigma ** 2) @ comps.T
    inv = np.linalg.inv(cov)
    for k in (1.0, 2.0):
        curve = inside.ellipse(center, sigma, k, comps)
        r = np.einsum("ni,ij,nj->n", curve - center, inv, curve - center)
        np.testing.assert_allclose(np.sqrt(r), k, rtol=1e-4)    # every contour point is k Mahalanobis units out
        draws = (mu + sigma * rng.normal(size=(20000, d))) @ comps.T
        inside_share = (np.einsum("ni,ij,nj->n", draws - center, inv, draws - center) <= k * k).mean()
        assert inside_share == pytest.approx(inside.chi2_2d_mass(k), abs=0.015)
    assert inside.chi2_2d_mass(1) == pytest.approx(0.3935, abs=1e-4)


def test_bad_input_is_one_line_saying_what_is_accepted(run2d):
    with pytest.raises(ValueError, match=r"takes one 1x28x28 image") as e:
        inside.forward_pass(run2d.model, np.zeros((3, 28, 28), np.float32))
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="within 0..1"):
        inside.forward_pass(run2d.model, np.full((28, 28), 2.0, np.float32))
    with pytest.raises(ValueError, match="one per latent dimension"):
        inside.forward_pass(run2d.model, np.zeros((28, 28), np.float32), eps=np.zeros(3))
