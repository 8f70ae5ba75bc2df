"""What one training step minimises. The loop (``vae.train.Trainer``) owns everything else: the epochs and their
shuffling, cancel, the learning-rate schedule, NaN stops, clipping, DDP, checkpoints, resume and events.

An :class:`Objective` says four things:

- which parameters it trains (``parameters``) and how many items an epoch has (``items``, known before ``bind``);
- how a batch is built from a slice of the epoch's permutation (``start_epoch``, ``batch``);
- the loss of a batch and the figures it reports (``loss`` -> :class:`StepLoss`; ``reports`` names them, the first
  is the loss);
- what it measures on held-out data at the end of an epoch (``end_epoch``), beside the VAE's test -ELBO, which
  the loop measures when ``evaluates`` is true;
- and, when it trains modules of its own beside the model (``aux_parameters``: FactorVAE's discriminator), their
  losses (``StepLoss.aux``) and its state for checkpoints (``state_dict``).

:class:`Elbo` is VAE Lab's own objective: the negative ELBO with beta, KL warm-up and free bits, or the IWAE
bound (``TrainConfig.objective``), for either prior. Semi-supervised M1+M2 adds two (``vae.usecases.semisup``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from . import losses
from .config import ModelConfig, TrainConfig
from .data import DataSplit, binarize, to_float

GATHER_ONCE_BYTES = 512 << 20   # training images up to this size are permuted once per epoch, larger ones per batch


@dataclass
class StepLoss:
    """One batch's loss and figures. ``figures`` are batch means (the loop weights them by ``count``)."""

    loss: torch.Tensor                         # the scalar the optimiser minimises
    figures: dict[str, torch.Tensor]           # one scalar per name in ``Objective.reports``
    count: int                                 # items in the batch
    kl_per_dim: torch.Tensor | None = None     # [D] sum over the batch of each latent dimension's KL
    aux: dict[str, torch.Tensor] = field(default_factory=dict)   # losses of ``aux_parameters``' optimizers


class Objective:
    """The interface (and the defaults) the loop relies on; see the module docstring."""

    name = "objective"
    reports: tuple[str, ...] = ("loss",)
    distributed = False        # True when its forward pass goes through the loop's (possibly DDP-wrapped) net
    evaluates = True           # the loop measures the VAE's test -ELBO after each of its epochs
    drop_last = False          # an epoch skips a last batch smaller than the others

    def bind(self, trainer: Any) -> None:
        """Called once when the loop enters this objective's stage (after a resume's weights are loaded)."""
        self.trainer = trainer

    def parameters(self, model: torch.nn.Module) -> list[torch.nn.Parameter]:
        return [p for p in model.parameters() if p.requires_grad]

    def items(self, data: DataSplit) -> int:
        """Items an epoch goes through (known before ``bind``, so the loop can count the whole run's steps)."""
        raise NotImplementedError

    def start_epoch(self, perm: torch.Tensor) -> None:
        self.perm = perm

    def batch(self, part: slice | torch.Tensor) -> Any:
        raise NotImplementedError

    def loss(self, net: torch.nn.Module, batch: Any, beta: float) -> StepLoss:
        raise NotImplementedError

    def end_epoch(self, model: torch.nn.Module) -> dict[str, float]:
        return {}

    def aux_parameters(self, model: torch.nn.Module) -> dict[str, tuple[list[torch.nn.Parameter], dict[str, Any]]]:
        """Modules of its own that train beside the model (FactorVAE's discriminator): ``{name: (parameters, Adam's
        keywords)}``; the loop gives each an optimizer and steps it on ``StepLoss.aux[name]``."""
        return {}

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Its own state (a generator's, a discriminator's weights), checkpointed so a resumed run continues it."""
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        pass


@dataclass
class Batch:
    """Images as the model takes them: ``x`` float [B, C, H, W] in 0..1, ``y`` [B] labels for a conditional model,
    ``eps`` [B, D] the reparameterisation noise when the caller fixes it (the Loss forces page), else drawn."""

    x: torch.Tensor
    y: torch.Tensor | None = None
    eps: torch.Tensor | None = None


class Elbo(Objective):
    """-ELBO = reconstruction + beta * KL (free bits per dimension, KL warm-up), or with ``objective = "iwae"`` the
    importance-weighted bound of Burda et al. 2016 with ``iw_k`` samples per image. The prior (N(0, I) or the
    VampPrior) is the model's: ``VAE.forward`` returns the VampPrior's components."""

    reports = ("loss", "recon", "kl")
    distributed = True

    def __init__(self, cfg: TrainConfig, layers: int = 1):
        self.cfg = cfg
        self.name = cfg.objective
        self.k = cfg.iw_k if cfg.objective == "iwae" else 1
        if layers == 2:                      # each layer's KL charted beside their sum
            self.reports = (*self.reports, "kl_top", "kl_lower")

    def bind(self, trainer: Any) -> None:
        super().bind(trainer)
        self.x = trainer.data.train.x.to(trainer.device)      # uint8 on the device: a GPU run copies no batch
        cond = trainer.model.cfg.conditional
        self.y = trainer.data.train.y.to(trainer.device) if cond else None

    def items(self, data: DataSplit) -> int:
        return len(data.train)

    def start_epoch(self, perm: torch.Tensor) -> None:
        # one gather per epoch, batches then views; a data set too large to hold twice (full shapes: 2.7 GB) is
        # gathered batch by batch instead, the same images in the same order
        self.perm = perm
        once = self.x.nbytes <= GATHER_ONCE_BYTES
        self.xs = self.x[perm] if once else None
        self.ys = self.y[perm] if self.y is not None and once else None

    def rows(self, part: slice | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.xs is not None:
            return self.xs[part], None if self.ys is None else self.ys[part]
        idx = self.perm[part]
        return self.x[idx], None if self.y is None else self.y[idx]

    def batch(self, part: slice | torch.Tensor) -> Batch:
        xs, ys = self.rows(part)
        x = to_float(xs)
        if self.cfg.binarize:
            gen = self.trainer.bin_gen
            x = binarize(x.cpu(), gen).to(x.device) if x.is_cuda else binarize(x, gen)
        return Batch(x, ys)

    def terms(self, net: torch.nn.Module, batch: Batch) -> tuple[Any, dict[str, torch.Tensor]]:
        """The forward pass and the per-image terms (``vae.losses.elbo_terms`` or ``iwae_terms``)."""
        model = self.trainer.model if hasattr(self, "trainer") else net
        mcfg = model.cfg
        with torch.autocast(batch.x.device.type, dtype=torch.bfloat16, enabled=self.cfg.precision == "bf16"):
            out = net(batch.x, batch.y, self.k, eps=batch.eps) if self.k > 1 else net(batch.x, batch.y, eps=batch.eps)
        sigma = model.likelihood_sigma()
        prior = None if out.prior is None else tuple(t.float() for t in out.prior)
        logits, mu, logvar, z = out.recon_logits.float(), out.mu.float(), out.logvar.float(), out.z.float()
        lower = None if out.lower is None else type(out.lower)(*(t.float() for t in out.lower))
        if self.k > 1:
            return out, losses.iwae_terms(logits, batch.x, mu, logvar, z.view(self.k, batch.x.shape[0], -1), mcfg,
                                          sigma, prior=prior, lower=lower)
        return out, losses.elbo_terms(logits, batch.x, mu, logvar, mcfg, sigma, z=z, prior=prior, lower=lower)

    def loss(self, net: torch.nn.Module, batch: Batch, beta: float) -> StepLoss:
        _, terms = self.terms(net, batch)
        loss = losses.training_loss(terms, beta=beta, free_bits=self.cfg.free_bits)
        figures = {"loss": loss, "recon": terms["recon"].mean(), "kl": terms["kl"].mean()}
        figures.update({name: terms[name].mean() for name in ("kl_top", "kl_lower") if name in terms})
        return StepLoss(loss, figures, batch.x.shape[0], terms["kl_per_dim"].detach().sum(0))


def log_density_pairs(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log q(z_i,d | x_j) for every pair of batch items i, j and dimension d: [B, B, D] (z, mu, logvar: [B, D])."""
    zi, mj, lj = z.unsqueeze(1), mu.unsqueeze(0), logvar.unsqueeze(0)
    return -0.5 * (losses.LOG_2PI + lj + (zi - mj).pow(2) * torch.exp(-lj))


def mss_log_weights(m: int, n: int, device: torch.device | None = None) -> torch.Tensor:
    """log w_ij [m, m] of minibatch stratified sampling (Chen et al. 2018, appendix C.2) for a batch of ``m`` images
    drawn from ``n``: q(z_i) ~ sum_j w_ij q(z_i | x_j), the image's own posterior weighted 1/n, its neighbour
    (n - m + 1) / (n (m - 1)) and the rest 1 / (m - 1); each row sums to 1."""
    w = torch.full((m, m), 1.0 / (m - 1), dtype=torch.float64)
    idx = torch.arange(m)
    w[idx, idx] = 1.0 / n
    w[idx, (idx + 1) % m] = (n - m + 1) / (n * (m - 1))
    return w.log().float().to(device)


def tc_terms(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, n: int | None = None) -> dict[str, torch.Tensor]:
    """The KL's three parts per image [B] (Chen et al. 2018, eq. 2), with the aggregate posterior q(z) estimated on
    the batch: by minibatch weighted sampling (their section 4.1; ``n`` None), q(z) ~ 1/M sum_j q(z | x_j) over the
    batch's M images, or, given the data set's size ``n``, by minibatch stratified sampling (:func:`mss_log_weights`),
    which weighs each image's own posterior 1/n instead of 1/M and so does not saturate when posteriors are sharp.

    ``mi`` = log q(z|x) - log q(z) (index-code mutual information), ``tc`` = log q(z) - sum_d log q(z_d) (total
    correlation), ``dwkl`` = sum_d log q(z_d) - log p(z_d) (dimension-wise KL); their sum is the one-sample KL.
    Weighted sampling's densities are normalised by 1/M; Chen et al. write 1/(N M), which shifts every term by a
    constant (so the gradients are the same) and leaves the reported parts off the KL's scale by multiples of log N."""
    pairs = log_density_pairs(z, mu, logvar)                              # [B, B, D]
    b = z.shape[0]
    if n is None or b < 2:          # one weight for every pair: a constant, not a [B, B] matrix on every step
        norm = math.log(b)
        log_qz = torch.logsumexp(pairs.sum(2), dim=1) - norm              # [B]
        log_prod = (torch.logsumexp(pairs, dim=1) - norm).sum(1)          # [B]
    else:
        log_w = mss_log_weights(b, max(n, b), z.device)
        log_qz = torch.logsumexp(pairs.sum(2) + log_w, dim=1)
        log_prod = torch.logsumexp(pairs + log_w.unsqueeze(2), dim=1).sum(1)
    log_q_x = losses.log_normal(z, mu, logvar)
    return {"mi": log_q_x - log_qz, "tc": log_qz - log_prod, "dwkl": log_prod - losses.log_std_normal(z)}


class BetaTC(Elbo):
    """beta-TCVAE (Chen et al. 2018): reconstruction + beta * (MI + dimension-wise KL) + tc_weight * TC, the KL's
    parts estimated by :func:`tc_terms` (beta 1 and tc_weight 1 give back the ELBO, up to the sampling of its
    KL). Pushing only the total correlation makes the aggregate posterior factorise without starving each code of
    information about its own image."""

    reports = ("loss", "recon", "kl", "mi", "tc", "dwkl")

    def __init__(self, cfg: TrainConfig):
        super().__init__(cfg)
        self.k = 1

    def loss(self, net: torch.nn.Module, batch: Batch, beta: float) -> StepLoss:
        out, terms = self.terms(net, batch)
        n = len(self.x) if self.cfg.tc_estimator == "mss" else None
        parts = {k: v.mean() for k, v in tc_terms(out.z.float(), out.mu.float(), out.logvar.float(), n).items()}
        recon = terms["recon"].mean()
        loss = recon + beta * (parts["mi"] + parts["dwkl"]) + self.cfg.tc_weight * parts["tc"]
        return StepLoss(loss, {"loss": loss, "recon": recon, "kl": terms["kl"].mean(), **parts}, batch.x.shape[0],
                        terms["kl_per_dim"].detach().sum(0))


class Discriminator(torch.nn.Module):
    """FactorVAE's discriminator: is a code a draw of q(z) (class 0) or of the product of its marginals (class 1)?
    Six hidden layers of 1,000 units with leaky ReLUs, as in Kim & Mnih 2018, appendix."""

    def __init__(self, latent_dim: int, width: int = 1000, layers: int = 6):
        super().__init__()
        mods: list[torch.nn.Module] = []
        d = latent_dim
        for _ in range(layers):
            mods += [torch.nn.Linear(d, width), torch.nn.LeakyReLU(0.2)]
            d = width
        self.net = torch.nn.Sequential(*mods, torch.nn.Linear(d, 2))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def permute_dims(z: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Each latent dimension shuffled across the batch on its own: draws of the product of q(z)'s marginals."""
    b = z.shape[0]
    return torch.stack([z[torch.randperm(b, generator=gen).to(z.device), d] for d in range(z.shape[1])], 1)


class FactorVAE(Elbo):
    """FactorVAE (Kim & Mnih 2018): the ELBO (KL weighted by beta) plus tc_weight times the total correlation
    estimated by a discriminator, log D(z) / (1 - D(z)); the discriminator learns to tell codes from codes whose
    dimensions were shuffled across the batch (its own Adam, lr 1e-4, betas 0.5 and 0.9, as in the paper)."""

    reports = ("loss", "recon", "kl", "tc", "disc_loss")

    def __init__(self, cfg: TrainConfig, latent_dim: int):
        super().__init__(cfg)
        self.k = 1
        self.disc = Discriminator(latent_dim)
        self.gen = torch.Generator().manual_seed(cfg.seed + 31)

    def bind(self, trainer: Any) -> None:
        super().bind(trainer)
        self.disc.to(trainer.device)

    def aux_parameters(self, model):
        return {"discriminator": (list(self.disc.parameters()), {"lr": 1e-4, "betas": (0.5, 0.9)})}

    def loss(self, net: torch.nn.Module, batch: Batch, beta: float) -> StepLoss:
        out, terms = self.terms(net, batch)
        z = out.z.float()
        logits = self.disc(z)
        tc = (logits[:, 0] - logits[:, 1]).mean()
        recon, kl = terms["recon"].mean(), terms["kl"].mean()
        loss = recon + beta * kl + self.cfg.tc_weight * tc
        zd = z.detach()
        ones = torch.ones(len(zd), dtype=torch.long, device=zd.device)
        disc_loss = 0.5 * (torch.nn.functional.cross_entropy(self.disc(zd), ones * 0)
                           + torch.nn.functional.cross_entropy(self.disc(permute_dims(zd, self.gen)), ones))
        return StepLoss(loss, {"loss": loss, "recon": recon, "kl": kl, "tc": tc, "disc_loss": disc_loss},
                        batch.x.shape[0], terms["kl_per_dim"].detach().sum(0), aux={"discriminator": disc_loss})

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"rng": self.gen.get_state(), **{f"disc.{k}": v for k, v in self.disc.state_dict().items()}}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if "rng" in state:
            self.gen.set_state(state["rng"])
        weights = {k[5:]: v for k, v in state.items() if k.startswith("disc.")}
        if weights:
            self.disc.load_state_dict(weights)


def for_config(cfg: TrainConfig, model: ModelConfig) -> Objective:
    """The objective a plain VAE run of ``model`` trains with (``TrainConfig.objective``)."""
    if cfg.objective == "btcvae":
        return BetaTC(cfg)
    if cfg.objective == "factorvae":
        return FactorVAE(cfg, model.latent_dim)
    return Elbo(cfg, model.latent_layers)
