"""The latent map's layers: posterior ellipses, density, the prior's holes and class-mean directions."""
import numpy as np
import pytest

from vae import map_layers
from vae.latent import project


def test_ellipses_of_a_2d_latent_are_the_posteriors_1_sigma_outlines():
    mu = np.array([[0.5, -1.0], [2.0, 0.0]])
    logvar = np.log(np.array([[0.04, 0.25], [1.0, 0.01]]))
    _, proj = project(mu)
    out = map_layers.posterior_ellipses(mu, logvar, proj, n_sigma=2.0, vertices=32)
    assert out.shape == (2, 33, 2)
    sd = np.exp(0.5 * logvar)
    r2 = (((out - mu[:, None, :]) / sd[:, None, :]) ** 2).sum(-1)
    assert np.allclose(r2, 4.0)                                   # every vertex at Mahalanobis distance 2
    assert np.allclose(out[:, 0], out[:, -1])                     # closed


def test_ellipses_on_the_pca_plane_match_projected_samples():
    rng = np.random.default_rng(0)
    mu_all = rng.normal(size=(500, 5)) * np.array([3, 2, 1, 0.5, 0.1])
    _, proj = project(mu_all)
    mu, logvar = mu_all[:1], np.log(np.array([[0.5, 2.0, 0.1, 1.0, 0.3]]))
    outline = map_layers.posterior_ellipses(mu, logvar, proj)[0]
    z = mu + rng.normal(size=(200_000, 5)) * np.exp(0.5 * logvar)
    pts = proj.transform(z)
    cov = np.cov(pts.T)                                           # Monte Carlo covariance on the plane
    d = outline - pts.mean(0)
    r2 = np.einsum("vi,ij,vj->v", d, np.linalg.inv(cov), d)
    assert np.allclose(r2, 1.0, atol=0.03)


def test_density_integrates_to_one_and_the_prior_too():
    rng = np.random.default_rng(1)
    pts = rng.normal(size=(3000, 2)) * 0.5 + 0.3
    d = map_layers.density(pts, (0.0, 0.0), extent=5.0, cells=120)
    cell = (d.xs[1] - d.xs[0]) * (d.ys[1] - d.ys[0])
    assert d.encoded.sum() * cell == pytest.approx(1.0, abs=0.01)
    assert d.prior.sum() * cell == pytest.approx(1.0, abs=0.01)
    gx, gy = np.meshgrid(d.xs, d.ys)
    centroid = (d.encoded * gx).sum() * cell, (d.encoded * gy).sum() * cell
    assert np.allclose(centroid, pts.mean(0), atol=0.02)                # the mass where the points are


def test_holes_are_where_the_prior_samples_and_nothing_was_encoded():
    """Codes on a ring of radius 1.5 leave the prior's most likely place, the centre, empty: the first hole."""
    rng = np.random.default_rng(2)
    angle = rng.uniform(0, 2 * np.pi, 4000)
    ring = np.stack([np.cos(angle), np.sin(angle)], 1) * 1.5 + rng.normal(size=(4000, 2)) * 0.1
    found = map_layers.holes(ring, (0.0, 0.0), count=4)
    assert len(found) == 4 and np.hypot(found[0].x, found[0].y) < 0.3
    assert found[0].ratio > 100 and all(np.hypot(h.x, h.y) <= 2.0 + 1e-9 for h in found)
    assert all(np.hypot(a.x - b.x, a.y - b.y) >= 0.6 for i, a in enumerate(found) for b in found[i + 1:])
    near = ring[found[0].nearest]
    assert np.hypot(near[0] - found[0].x, near[1] - found[0].y) == pytest.approx(found[0].distance)
    assert found[0].distance == pytest.approx(np.hypot(ring[:, 0] - found[0].x, ring[:, 1] - found[0].y).min())


def test_class_direction_moves_by_the_difference_of_class_means():
    mu = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0], [0.0, 6.0]])
    y = np.array([0, 0, 1, 1])
    means = map_layers.class_means(mu, y)
    assert np.allclose(means[0], [1, 0]) and np.allclose(means[1], [0, 5])
    path = map_layers.along_class_direction(mu[1], means, 0, 1, np.array([0.0, 0.5, 1.0]))
    assert np.allclose(path, [[2, 0], [1.5, 2.5], [1, 5]])
    # a start without a class moves from the mean of the class means
    assert np.allclose(map_layers.along_class_direction(np.zeros(2), means, None, 1, np.array([1.0])),
                       [[-0.5, 2.5]])
