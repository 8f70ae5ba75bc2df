"""The objectives of the one training loop: beta-TCVAE's split of the KL, FactorVAE's discriminator, and that each
trains, records its terms and resumes exactly through the loop's checkpoints."""
import math
import threading

import pytest
import torch
from helpers import tiny_split

from vae import losses
from vae.config import ConfigError, DataConfig, ModelConfig, RunConfig, TrainConfig
from vae.objectives import BetaTC, FactorVAE, for_config, mss_log_weights, permute_dims, tc_terms
from vae.pipeline import train_run


def test_the_three_parts_add_up_to_the_one_sample_kl():
    """MI + TC + dimension-wise KL = log q(z|x) - log p(z) at the drawn z, whatever the batch (an identity)."""
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(64, 5, generator=g), torch.randn(64, 5, generator=g) * 0.3 - 1
    z = mu + torch.exp(0.5 * logvar) * torch.randn(64, 5, generator=g)
    t = tc_terms(z, mu, logvar)
    kl = losses.log_normal(z, mu, logvar) - losses.log_std_normal(z)
    assert torch.allclose(t["mi"] + t["tc"] + t["dwkl"], kl, atol=1e-4)


def test_total_correlation_sees_dimensions_that_move_together():
    """Codes whose five dimensions are one number repeated have a clearly larger estimated TC than the same marginals
    drawn independently, whose TC is near zero (posteriors of sd 0.5 around N(0, 1) codes, 512 of them; measured
    here: 3.95 against 0.69 nats)."""
    g = torch.Generator().manual_seed(1)
    n, d = 512, 5
    logvar = torch.full((n, d), math.log(0.5 ** 2))
    shared = torch.randn(n, 1, generator=g).expand(n, d).contiguous()
    indep = torch.randn(n, d, generator=g)
    tc_shared = float(tc_terms(shared, shared, logvar)["tc"].mean())
    tc_indep = float(tc_terms(indep, indep, logvar)["tc"].mean())
    assert tc_shared > tc_indep + 2.0 and abs(tc_indep) < 1.5, (tc_shared, tc_indep)


def test_stratified_sampling_tracks_the_aggregate_posterior_where_weighted_sampling_saturates():
    """With sharp posteriors a batch's weighted-sampling estimate of log q(z) is dominated by each image's own
    posterior weighted 1/M; stratified sampling weighs it 1/N and lands near the exact value over all N images
    (N = 512, batches of 32, 20 batches; measured here: MWS off by 2.7 nats, MSS by under 0.1)."""
    g = torch.Generator().manual_seed(4)
    n, m, d = 512, 32, 3
    mu = torch.randn(n, d, generator=g)
    logvar = torch.full((n, d), math.log(0.05 ** 2))
    z = mu + 0.05 * torch.randn(n, d, generator=g)
    exact = torch.logsumexp(-0.5 * (losses.LOG_2PI + logvar.unsqueeze(0)
                                    + (z.unsqueeze(1) - mu.unsqueeze(0)).pow(2) / 0.05 ** 2).sum(2), 1) - math.log(n)
    err = {"mws": [], "mss": []}
    for _ in range(20):
        idx = torch.randperm(n, generator=g)[:m]
        log_q_x = losses.log_normal(z[idx], mu[idx], logvar[idx])
        for name, size in (("mws", None), ("mss", n)):
            log_qz = log_q_x - tc_terms(z[idx], mu[idx], logvar[idx], size)["mi"]
            err[name].append(float((log_qz - exact[idx]).mean()))
    mws, mss = abs(sum(err["mws"]) / 20), abs(sum(err["mss"]) / 20)
    assert mss < 0.5 < 2.0 < mws, (mws, mss)
    assert torch.allclose(mss_log_weights(m, n).exp().sum(1), torch.ones(m)), "each row of weights sums to 1"


def test_the_estimator_is_a_setting_of_the_command_line():
    from vae.cli.options import TRAIN
    assert any(o.flag == "--tc-estimator" for o in TRAIN)
    assert TrainConfig(objective="btcvae", tc_estimator="mss").tc_estimator == "mss"
    with pytest.raises(ConfigError, match="tc_estimator"):
        TrainConfig(objective="btcvae", tc_estimator="exact")


def test_permuted_dimensions_keep_each_marginal_and_break_the_joint():
    g = torch.Generator().manual_seed(2)
    z = torch.randn(200, 1, generator=g).repeat(1, 3)          # three copies of one column
    p = permute_dims(z, torch.Generator().manual_seed(3))
    for d in range(3):
        assert torch.equal(torch.sort(p[:, d]).values, torch.sort(z[:, d]).values)
    assert not torch.equal(p[:, 0], p[:, 1])


def _config(objective, epochs=3, **train):
    return RunConfig(model=ModelConfig(image_size=8, latent_dim=3, hidden=(32,)),
                     train=TrainConfig(epochs=epochs, batch_size=32, threads=1, objective=objective, **train),
                     data=DataConfig(name="blobs"))


@pytest.mark.parametrize("objective, terms", [("btcvae", {"mi", "tc", "dwkl"}), ("factorvae", {"tc", "disc_loss"})])
def test_each_trains_through_the_loop_records_its_terms_and_resumes_exactly(tmp_path, objective, terms):
    data = tiny_split(n_train=200, n_test=40)
    straight = train_run(_config(objective), data, tmp_path / "a")
    assert straight.status == "completed"
    epochs = straight.metrics.history.epochs
    assert terms <= set(epochs[-1].train) and all(math.isfinite(v) for v in epochs[-1].train.values())
    assert "neg_elbo" in epochs[-1].test and terms <= set(straight.metrics.history.steps[-1].figures)
    stop = threading.Event()
    cut = train_run(_config(objective), data, tmp_path / "b", cancel=stop,
                    callback=lambda e: stop.set() if e["type"] == "epoch" and e["epoch"] == 1 else None)
    assert cut.status == "cancelled"
    again = train_run(_config(objective), data, tmp_path / "b", resume=True)
    a, b = straight.model.state_dict(), again.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a), f"{objective}: resuming changed the trajectory"


def test_the_discriminator_is_the_objectives_not_the_models(tmp_path):
    """FactorVAE's discriminator trains beside the VAE but is no part of the saved model."""
    data = tiny_split(n_train=200, n_test=40)
    res = train_run(_config("factorvae", epochs=2), data, tmp_path / "r")
    assert not any(k.startswith("disc") for k in res.model.state_dict())
    cfg = _config("factorvae")
    assert isinstance(for_config(cfg.train, cfg.model), FactorVAE)
    assert isinstance(for_config(_config("btcvae").train, cfg.model), BetaTC)


def test_settings_the_objectives_refuse():
    with pytest.raises(ConfigError, match="free_bits"):
        TrainConfig(objective="btcvae", free_bits=0.5)
    with pytest.raises(ConfigError, match="prior 'normal'"):
        RunConfig(model=ModelConfig(prior="vamp"), train=TrainConfig(objective="factorvae"))
    with pytest.raises(ConfigError, match="tc_weight"):
        TrainConfig(objective="btcvae", tc_weight=-1)


@pytest.mark.parametrize("objective", ["elbo", "btcvae"])
def test_a_data_set_too_large_to_permute_at_once_trains_the_same(monkeypatch, tmp_path, objective):
    """Training images over GATHER_ONCE_BYTES (full shapes) are gathered batch by batch instead of copied in epoch
    order: the same images in the same order, so the same weights to the bit."""
    import vae.objectives as objectives
    cfg = RunConfig(model=ModelConfig(image_size=8, latent_dim=2, hidden=(16,)),
                    train=TrainConfig(epochs=2, batch_size=32, seed=3, objective=objective, tc_weight=2.0))
    data = tiny_split(n_train=96)
    once = train_run(cfg, data, tmp_path / "once").model.state_dict()
    monkeypatch.setattr(objectives, "GATHER_ONCE_BYTES", 0)
    per_batch = train_run(cfg, data, tmp_path / "per-batch").model.state_dict()
    assert all(torch.equal(once[k], per_batch[k]) for k in once)
