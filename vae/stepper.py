"""Training one step at a time, for watching what each loss term does to the codes.

``Stepper`` owns a copy of a model and an Adam optimiser and trains it one batch per ``step(beta)``,
with ``beta`` free to change between steps. Before each step, ``forces(beta)`` says where each term
of the loss pushes every image's mean mu in that batch: the push of a term is minus its gradient with
respect to mu (the direction plain gradient descent would move mu, before the optimiser's scaling):

- reconstruction: -d/dmu [-log p(x | z)] with z = mu + sigma * eps (the step's own eps), which
  pulls codes apart so each image decodes to itself;
- KL: -beta * d/dmu KL(q || N(0, I)) = -beta * mu (closed form), which pulls every code to 0.

Per-image terms are used (a sum over pixels, not divided by the batch), so arrows compare across
images. The step itself is one step of the training loop (``vae.loop.Trainer.step``) on the ELBO objective
(``vae.objectives.Elbo``): the batch mean of recon + beta * KL, with the same noise the forces were shown for.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch

from .config import TrainConfig
from .data import DataSplit, ImageData, to_float
from .evaluate import ACTIVE_UNIT_THRESHOLD
from .loop import Trainer
from .losses import kl_per_dim
from .models import VAE
from .objectives import Batch


@dataclass(frozen=True)
class Forces:
    """One batch's codes and the push of each loss term on them (numpy, [B, D])."""

    index: np.ndarray          # [B] which training images
    mu: np.ndarray
    recon: np.ndarray          # push of the reconstruction term
    kl: np.ndarray             # push of the (beta-weighted) KL term
    labels: np.ndarray | None

    @property
    def total(self) -> np.ndarray:
        return self.recon + self.kl


class Stepper:
    """``Stepper(model, train)``: ``forces(beta)`` for the next batch, ``step(beta)`` trains on it."""

    def __init__(self, model: VAE, train: ImageData, *, lr: float = 1e-3, batch_size: int = 64, seed: int = 0):
        if len(train) < 1:
            raise ValueError("the stepper needs at least one training image")
        if not 1 <= batch_size <= 4096:
            raise ValueError(f"batch_size must be 1..4096, got {batch_size}")
        if model.cfg.prior != "normal":
            raise ValueError("the stepper shows the closed-form KL push towards N(0, I); this model has a "
                             f"{model.cfg.prior} prior (step a model with prior 'normal')")
        self.model = copy.deepcopy(model).cpu().train()
        self.train = train
        self.batch_size = min(batch_size, len(train))
        cfg = TrainConfig(lr=lr, lr_schedule="constant", lr_warmup=0.0, batch_size=self.batch_size, seed=seed,
                          device="cpu", eval_every_epoch=False, recon_every=10**9)
        data = DataSplit("stepper", "", train, ImageData(train.x[:0], None if train.y is None else train.y[:0]), None)
        self.trainer = Trainer(self.model, data, cfg, threads=False)
        self.gen = torch.Generator().manual_seed(seed)
        self.steps = 0
        self.history: list[dict] = []
        self._next = self._draw()

    def _draw(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next batch's image indices and its eps (drawn once, so the forces shown are the step taken)."""
        idx = torch.randperm(len(self.train), generator=self.gen)[:self.batch_size]
        eps = torch.randn(self.batch_size, self.model.cfg.latent_dim, generator=self.gen)
        return idx, eps

    def _batch(self) -> Batch:
        idx, eps = self._next
        y = None if self.train.y is None or not self.model.cfg.conditional else self.train.y[idx]
        return Batch(to_float(self.train.x[idx]), y, eps)

    def forces(self, beta: float) -> Forces:
        """Where each loss term pushes the next batch's means (no step is taken)."""
        out, terms = self.trainer.stage.objective.terms(self.model, self._batch())
        g_recon, = torch.autograd.grad(terms["recon"].sum(), out.mu, retain_graph=True)
        g_kl, = torch.autograd.grad(beta * terms["kl_per_dim"].sum(), out.mu)
        idx = self._next[0]
        labels = None if self.train.y is None else self.train.y[idx].numpy()
        return Forces(idx.numpy(), out.mu.detach().numpy(), -g_recon.numpy(), -g_kl.numpy(), labels)

    def step(self, beta: float) -> dict:
        """One step of the training loop on the batch ``forces`` showed; returns its losses (nats per image, batch
        means). A non-finite loss takes no step and raises ``ValueError`` with the loop's one line."""
        if not np.isfinite(beta) or beta < 0:
            raise ValueError(f"beta must be a finite number >= 0, got {beta}")
        done = self.trainer.step(self._batch(), beta=float(beta), index=self.steps)
        if isinstance(done, tuple):
            raise ValueError(done[1])
        loss, recon, kl, n = (float(v) for v in done.sums)
        self.steps += 1
        record = {"step": self.steps, "beta": float(beta), "loss": loss / n, "recon": recon / n, "kl": kl / n}
        self.history.append(record)
        self._next = self._draw()
        return record

    @torch.no_grad()
    def codes(self, data: ImageData) -> dict[str, np.ndarray]:
        """The current model's means, KL per dimension and active units (Burda et al.: Cov_x(mu_d) > 0.01) on
        ``data`` (eval mode, restored after)."""
        self.model.eval()
        try:
            x = to_float(data.x)
            y = None if data.y is None or not self.model.cfg.conditional else data.y
            mu, logvar = self.model.encode(x, y)
            kld = kl_per_dim(mu, logvar).mean(0)
        finally:
            self.model.train()
        active = int((mu.var(0, unbiased=False) > ACTIVE_UNIT_THRESHOLD).sum()) if len(mu) > 1 else 0
        return {"mu": mu.numpy(), "kl_per_dim": kld.numpy(), "active_units": active}
