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

Where the classifier reads M1's encoder's last hidden layer (``semisup.classifier = "features"``, the default)
rather than z1, read "q(y|x)" for "q(y|z1)" above: the same terms, the classifier given the features from which the
encoder computes z1's mean and variance (as Kingma et al.'s M2 reads x), the code's noise no longer in its way.
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
WARP_GRID = 4              # the smooth warp's random displacements live on a 4 x 4 grid, interpolated to every pixel


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


def warp_views(x: torch.Tensor, gen: torch.Generator, pixels: float) -> torch.Tensor:
    """x: float [B, C, H, W] in 0..1 -> each image under its own smooth random warp (an elastic distortion in the
    spirit of Simard et al. 2003): displacements drawn on a coarse grid, interpolated to every pixel and scaled so the
    largest is ``pixels`` at 28 px (scaled with the side); 0 returns ``x``."""
    if pixels <= 0:
        return x
    b, _, h, w = x.shape
    coarse = torch.rand(b, 2, WARP_GRID, WARP_GRID, generator=gen) * 2 - 1
    field = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True)
    field = field / field.abs().amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)
    step = pixels / 28 * 2                      # the largest displacement in grid_sample's [-1, 1] coordinates
    ys = torch.linspace(-1 + 1 / h, 1 - 1 / h, h)
    xs = torch.linspace(-1 + 1 / w, 1 - 1 / w, w)
    base = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1)           # [H, W, 2] as (x, y)
    grid = (base + field.permute(0, 2, 3, 1) * step).to(x.device, x.dtype)
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
def codes(model, x: torch.Tensor, batch_size: int = 2000) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """M1's posterior means, log-variances and what its classifier reads of each uint8 image ``x`` (its hidden
    features, or the mean itself), in eval mode with the caller's mode restored."""
    was = model.training
    model.eval()
    out = [model.encode_hidden(to_float(x[i:i + batch_size])) for i in range(0, x.shape[0], batch_size)]
    model.train(was)
    mu, logvar = torch.cat([m for _, m, _ in out]), torch.cat([v for _, _, v in out])
    return mu, logvar, torch.cat([h for h, _, _ in out]) if model.reads_features else mu


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
        mu, logvar, feats = codes(model, data.train.x)
        self.mu, self.std = mu, torch.exp(0.5 * logvar)
        self.feats = feats if model.reads_features else None       # else the classifier reads each draw
        self.test_in = codes(model, data.test.x)[2]
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
        f = self.feats
        terms = m2.loss(zl, self.y[li], zu, self.alpha, *((f[li], f[u]) if f is not None else ()))
        loss = terms["loss"]
        if self.consistency > 0:                 # two draws of one code (the config asks for classifier "code")
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
        err = float((m2.classifier(self.test_in).argmax(1) != self.y_test).float().mean())
        m2.train(was)
        return {"test_error": err}


class Joint(_Seeded):
    """M1 and M2 trained together (the module docstring gives the loss)."""

    name = "joint"
    reports = ("loss", "recon", "kl", "ce", "consistency", "confident")
    drop_last = True

    def __init__(self, lab: torch.Tensor, alpha: float, m1_train: TrainConfig, augment: float,
                 pseudo_threshold: float, weight: float, seed: int, elastic: float = 0.0):
        super().__init__(seed + 2)
        self.lab, self.alpha, self.m1_train, self.weight = lab, alpha, m1_train, weight
        self.threshold, self.elastic = pseudo_threshold, elastic
        self.strong = {k: v * augment for k, v in STRONG.items()}
        self.weak_shift = WEAK_SHIFT if augment > 0 else 0.0

    def bind(self, trainer) -> None:
        super().bind(trainer)
        self.x, self.y = trainer.data.train.x, trainer.data.train.y.long()

    def batch(self, part) -> tuple[torch.Tensor, ...]:
        u = self.perm[part]
        li = self._labelled(len(u))
        xu, xl = to_float(self.x[u]), to_float(self.x[li])
        strong = warp_views(affine_views(xu, self.gen, **self.strong), self.gen, self.elastic)
        return (affine_views(xu, self.gen, shift=self.weak_shift), strong,
                affine_views(xl, self.gen, shift=self.weak_shift), li)

    def loss(self, net, batch, beta: float) -> StepLoss:
        xw, xs, xlw, li = batch
        model = self.trainer.model
        bs = xw.shape[0]
        h, mu, logvar = model.encode_hidden(torch.cat([xw, xs, xlw]))
        z = model.reparameterize(mu, logvar)
        (mu_w, _, _), (lv_w, _, _), (z_w, _, z_l) = mu.split(bs), logvar.split(bs), z.split(bs)
        c_w, c_s, c_l = model.classifier_input(h, z).split(bs)      # what q(y|x) reads of each view
        target = binarize(xw, self.gen) if self.m1_train.binarize else xw
        m1 = losses.elbo_terms(model.decode(z_w), target, mu_w, lv_w, model.cfg, model.likelihood_sigma(), z=z_w,
                               prior=model.prior_params())
        m1_loss = losses.training_loss(m1, beta=self.m1_train.beta, free_bits=self.m1_train.free_bits)
        m2 = model.m2.loss(z_l.detach(), self.y[li], z_w.detach(), 0.0, c_l.detach(), c_w.detach())
        ce = F.cross_entropy(model.m2.classifier(c_l), self.y[li])
        loss = m1_loss + m2["labelled"] + m2["unlabelled"] + self.alpha * ce
        confident, cons = torch.zeros(()), torch.zeros(())
        if self.weight > 0:
            with torch.no_grad():
                conf, pseudo = F.softmax(model.m2.classifier(model.classifier_input(h[:bs], mu_w)), 1).max(1)
                confident = (conf >= self.threshold).float()
            cons = (F.cross_entropy(model.m2.classifier(c_s), pseudo, reduction="none") * confident).mean()
            loss = loss + self.weight * cons
        figures = {"loss": loss, "recon": m1["recon"].mean(), "kl": m1["kl"].mean(), "ce": ce, "consistency": cons,
                   "confident": confident.mean()}
        return StepLoss(loss, figures, bs, m1["kl_per_dim"].detach().sum(0))

    def end_epoch(self, model) -> dict[str, float]:
        test = self.trainer.data.test                                   # predict restores the model's mode
        return {"test_error": float((model.predict(test.x) != test.y.numpy()).mean())}
