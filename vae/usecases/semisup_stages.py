"""The two stages of M2 as objectives of the one training loop (``vae.loop.Trainer``); ``vae.usecases.semisup.plan``
puts them after M1's ELBO stage.

- :class:`M2OnCodes`: Kingma et al.'s M1+M2, M2 alone on draws from M1's posteriors, which stay fixed.
- :class:`Joint`: M1 and M2 trained together; every term is a mean over its batch of per-image nats (or
  cross-entropies). Each step takes ``batch`` unlabelled images ``x`` and ``batch`` labelled ones (drawn with
  replacement). With ``w(x)`` a shift by at most a pixel and ``s(x)`` a strong random affine map (both fresh per
  image and step), the loss is:

  * M1's training loss on ``w(x)``, its -ELBO with M1's own beta and free bits (so the encoder stays an encoder
    of the VAE, and its codes keep the pixels' content);
  * M2's labelled and unlabelled -ELBO (Kingma et al. eq. 7-8) on draws z1 ~ q(z1|w(x)), held fixed for M2 so that
    M2's Gaussian model of z1 does not pull M1's codes towards whatever is easiest for it to model;
  * ``alpha`` times the labels' cross-entropy of q(y|z1) with z1 ~ q(z1|w(x_l)), whose gradient reaches M1's
    encoder: the encoder learns which of its directions separate the classes;
  * ``weight`` times the cross-entropy of q(y|z1), z1 ~ q(z1|s(x)), against the class q(y|mean of q(z1|w(x))) gives,
    counted only where that class has probability >= ``pseudo_threshold`` (pseudo-labels from confident weak views,
    as in FixMatch, Sohn et al. 2020): an image's class should survive a distortion that leaves its digit a digit.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .. import losses
from ..config import TrainConfig
from ..data import DataSplit, binarize, to_float
from ..objectives import Objective, StepLoss

WEAK_SHIFT = 1 / 28        # the weak view: a shift of up to one pixel at 28 px (scaled with the side)
STRONG = {"rotate": 15.0, "scale": 0.15, "shift": 3 / 28}   # the strong view at --augment 1


def affine_views(x: torch.Tensor, gen: torch.Generator, *, rotate: float = 0.0, scale: float = 0.0,
                 shift: float = 0.0) -> torch.Tensor:
    """x: float [B, C, H, W] in 0..1 -> each image under its own random affine map: a rotation of up to
    ``rotate`` degrees, a zoom by up to ``scale`` (0.15: 85-115 %), a shift of up to ``shift`` of the side in x and
    y; edge pixels extend past the border (MNIST's black background stays black)."""
    b = x.shape[0]
    u = torch.rand(b, 4, generator=gen) * 2 - 1
    ang = u[:, 0] * rotate * math.pi / 180
    zoom = 1 + u[:, 1] * scale
    cos, sin = torch.cos(ang) / zoom, torch.sin(ang) / zoom
    theta = torch.stack([torch.stack([cos, -sin, u[:, 2] * 2 * shift], 1),
                         torch.stack([sin, cos, u[:, 3] * 2 * shift], 1)], 1).to(x.device, x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, align_corners=False, padding_mode="border")


class _Seeded(Objective):
    """An objective with its own generator (the labelled draws, the noise, the views), checkpointed by the loop."""

    def __init__(self, seed: int):
        self.gen = torch.Generator().manual_seed(seed)

    def items(self, data: DataSplit) -> int:
        return len(data.train)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"rng": self.gen.get_state()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if "rng" in state:
            self.gen.set_state(state["rng"])

    def _labelled(self, n: int) -> torch.Tensor:
        return self.lab[torch.randint(len(self.lab), (n,), generator=self.gen)]


@torch.no_grad()
def codes(model, x: torch.Tensor, batch_size: int = 2000) -> tuple[torch.Tensor, torch.Tensor]:
    """M1's posterior means and log-variances of uint8 images ``x`` (eval mode, the caller's mode restored)."""
    was = model.training
    model.eval()
    out = [model.encode(to_float(x[i:i + batch_size])) for i in range(0, x.shape[0], batch_size)]
    model.train(was)
    return torch.cat([m for m, _ in out]), torch.cat([v for _, v in out])


class M2OnCodes(_Seeded):
    """M2 alone on fresh draws z1 ~ q(z1|x) of M1's fixed posteriors (Kingma et al. 2014 eq. 9); with
    ``consistency`` > 0, plus that weight times KL(q(y|z1) || q(y|z1')) between two draws of each unlabelled image."""

    name = "m2"
    reports = ("loss", "ce")
    evaluates = False            # M1 does not move: its test -ELBO stays what the M1 stage measured

    def __init__(self, lab: torch.Tensor, alpha: float, consistency: float, seed: int):
        super().__init__(seed + 1)
        self.lab, self.alpha, self.consistency = lab, alpha, consistency

    def bind(self, trainer) -> None:
        super().bind(trainer)
        model, data = trainer.model, trainer.data
        mu, logvar = codes(model, data.train.x)
        self.mu, self.std = mu, torch.exp(0.5 * logvar)
        self.test_mu = codes(model, data.test.x)[0]
        self.y, self.y_test = data.train.y.long(), data.test.y.long()

    def parameters(self, model) -> list[torch.nn.Parameter]:
        return list(model.m2.parameters())

    def batch(self, part) -> tuple[torch.Tensor, torch.Tensor]:
        u = self.perm[part]
        return u, self._labelled(self.trainer.bs)

    def _draw(self, idx: torch.Tensor) -> torch.Tensor:
        return self.mu[idx] + self.std[idx] * torch.randn(len(idx), self.mu.shape[1], generator=self.gen)

    def loss(self, net, batch, beta: float) -> StepLoss:
        u, li = batch
        m2 = self.trainer.model.m2
        zu, zl = self._draw(u), self._draw(li)
        terms = m2.loss(zl, self.y[li], zu, self.alpha)
        loss = terms["loss"]
        if self.consistency > 0:
            zu2 = self._draw(u)
            with torch.no_grad():
                p1 = F.softmax(m2.classifier(zu), 1)
            logq2 = F.log_softmax(m2.classifier(zu2), 1)
            loss = loss + self.consistency * (p1 * (torch.log(p1.clamp_min(1e-12)) - logq2)).sum(1).mean()
        return StepLoss(loss, {"loss": loss, "ce": terms["ce"]}, len(u))

    @torch.no_grad()
    def end_epoch(self, model) -> dict[str, float]:
        m2 = model.m2
        was = m2.training
        m2.eval()
        err = float((m2.classifier(self.test_mu).argmax(1) != self.y_test).float().mean())
        m2.train(was)
        return {"test_error": err}


class Joint(_Seeded):
    """M1 and M2 trained together (the module docstring gives the loss)."""

    name = "joint"
    reports = ("loss", "recon", "kl", "ce", "consistency", "confident")
    drop_last = True

    def __init__(self, lab: torch.Tensor, alpha: float, m1_train: TrainConfig, augment: float,
                 pseudo_threshold: float, weight: float, seed: int):
        super().__init__(seed + 2)
        self.lab, self.alpha, self.m1_train, self.weight = lab, alpha, m1_train, weight
        self.threshold = pseudo_threshold
        self.strong = {k: v * augment for k, v in STRONG.items()}
        self.weak_shift = WEAK_SHIFT if augment > 0 else 0.0

    def bind(self, trainer) -> None:
        super().bind(trainer)
        self.x, self.y = trainer.data.train.x, trainer.data.train.y.long()

    def batch(self, part) -> tuple[torch.Tensor, ...]:
        u = self.perm[part]
        li = self._labelled(len(u))
        xu, xl = to_float(self.x[u]), to_float(self.x[li])
        return (affine_views(xu, self.gen, shift=self.weak_shift), affine_views(xu, self.gen, **self.strong),
                affine_views(xl, self.gen, shift=self.weak_shift), li)

    def loss(self, net, batch, beta: float) -> StepLoss:
        xw, xs, xlw, li = batch
        model = self.trainer.model
        bs = xw.shape[0]
        mu, logvar = model.encode(torch.cat([xw, xs, xlw]))
        z = model.reparameterize(mu, logvar)
        (mu_w, _, _), (lv_w, _, _), (z_w, z_s, z_l) = mu.split(bs), logvar.split(bs), z.split(bs)
        target = binarize(xw, self.gen) if self.m1_train.binarize else xw
        m1 = losses.elbo_terms(model.decode(z_w), target, mu_w, lv_w, model.cfg, model.likelihood_sigma(), z=z_w,
                               prior=model.prior_params())
        m1_loss = losses.training_loss(m1, beta=self.m1_train.beta, free_bits=self.m1_train.free_bits)
        m2 = model.m2.loss(z_l.detach(), self.y[li], z_w.detach(), 0.0)
        ce = F.cross_entropy(model.m2.classifier(z_l), self.y[li])
        loss = m1_loss + m2["labelled"] + m2["unlabelled"] + self.alpha * ce
        confident, cons = torch.zeros(()), torch.zeros(())
        if self.weight > 0:
            with torch.no_grad():
                conf, pseudo = F.softmax(model.m2.classifier(mu_w), 1).max(1)
                confident = (conf >= self.threshold).float()
            cons = (F.cross_entropy(model.m2.classifier(z_s), pseudo, reduction="none") * confident).mean()
            loss = loss + self.weight * cons
        figures = {"loss": loss, "recon": m1["recon"].mean(), "kl": m1["kl"].mean(), "ce": ce, "consistency": cons,
                   "confident": confident.mean()}
        return StepLoss(loss, figures, bs, m1["kl_per_dim"].detach().sum(0))

    def end_epoch(self, model) -> dict[str, float]:
        test = self.trainer.data.test                                   # predict restores the model's mode
        return {"test_error": float((model.predict(test.x) != test.y.numpy()).mean())}
