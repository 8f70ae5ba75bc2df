"""Semi-supervised classification with few labels: the M1+M2 stack of Kingma et al. 2014.

Method and why
--------------
Kingma, Rezende, Mohamed & Welling (2014), "Semi-supervised learning with deep generative
models", report on MNIST with 100 labels: M2 alone 11.97% test error, M1+M2 3.33%. We build
M1+M2 because it is the stronger of the two *and* the cheaper one on a CPU:

* **M1** is an ordinary VAE (``vae.models.VAE``, trained by ``vae.train.fit``) fitted on *all*
  training images, labels ignored. Its posterior ``q(z1|x)`` turns 784 pixels into
  ``latent_dim`` (50 as in the paper) numbers where digits of one class cluster together.
* **M2** is the semi-supervised generative model, fitted on M1's latent codes instead of pixels:
  a classifier ``q(y|z1)``, an encoder ``q(z2|z1, y)`` and a Gaussian decoder ``p(z1|y, z2)``.
  A labelled code contributes ``-ELBO(z1, y) + alpha * CE(q(y|z1), y)``; an unlabelled code
  contributes ``sum_y q(y|z1) * -ELBO(z1, y) - H(q(y|z1))`` (Kingma et al. eq. 7-9), so the
  unlabelled images train the classifier through the generative model. ``alpha`` is the
  paper's ``0.1 * N`` written per example: ``0.1 * N_unlabelled / N_labelled`` on batch means.
  Each batch draws ``z1 ~ q(z1|x)`` afresh (not only the mean), a free data augmentation that
  matters when there are only 100 labelled points; test images are classified from the mean.

Running M2 on 50 numbers instead of 784 pixels makes the 10-way sum over labels of the
unlabelled term cheap: after M1 (about a minute per few epochs on one core) every M2 epoch over
60,000 codes takes seconds.

Beyond Kingma: the joint epochs
-------------------------------
With M1 fixed, 100 labels left 9-13 % of MNIST's test digits misclassified, and label spreading on the same codes
did no better: the limit was M1's codes, in which about one digit in ten sits among another class. So after M1
(and, optionally, ``m2_epochs`` of M2 on its frozen codes) come ``joint_epochs`` in which M1 and M2 train
together (:class:`~.semisup_stages.Joint`): M1's own ELBO stays in the loss, M2's objective stays as above, the
labels' cross-entropy reaches M1's encoder, and each unlabelled image's class must survive a random distortion
(rotation, zoom, shift and a smooth random warp) wherever the classifier is confident of a barely shifted view of it
(FixMatch's pseudo-labels, Sohn et al. 2020). The classifier q(y|x) reads M1's encoder's last hidden layer, the
features from which the encoder computes z1's mean and variance (``semisup.classifier = "features"``; Kingma et
al.'s M2 reads x, their M1+M2 reads z1, ``"code"``): with 100 labels the code's noise and its 50 numbers cost it a
third of its errors. M1 stays a VAE (its ELBO is trained throughout) and every VAE tool reads the saved model as
before. Measured figures and the ablation, one change at a time: ``bench/usecases.md``.

Practical choices: M1's recipe is pinned (batch 128, Adam 1e-3 cosine; see :func:`semisup_config`), and one M1 can
serve every label budget (``semisup.m1_from``, ``--m1-from``) as long as it never saw a label: a run with joint
epochs cannot lend its M1. Every setting is in the run's ``config.json`` (``vae.config.SemisupConfig``), so
``python -m vae train --config RUN/config.json`` re-runs it.

The labelled subset is balanced: ``k / num_classes`` images per class, chosen by the seed
(``balanced_subset``). The whole model is saved as one run folder (``kind: "semisup"``):
:class:`SemiSupervisedVAE` *is* a :class:`~vae.models.VAE` (M1) with an extra ``m2`` module, so
every VAE tool (evaluate, latent maps, sampling) works on it unchanged, and ``classify`` adds
the labels. ``vae.runs`` rebuilds it through :data:`vae.kinds.BUILDERS` keyed by ``config.kind``.

Training goes through the one loop (``vae.loop.Trainer``) in up to three stages (:func:`plan`): ``m1`` (the ELBO on
every image), ``m2`` (:class:`M2OnCodes`) and ``joint`` (:class:`Joint`); its events and history are the loop's,
each record naming its stage, and checkpoints and resume work across stages.
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import losses
from ..config import DataConfig, ModelConfig, RunConfig, SemisupConfig, TrainConfig
from ..data import DataSplit, ImageData, to_float
from ..models import ACTIVATIONS, VAE
from ..objectives import Elbo
from ..record import Metrics
from ..train import Plan, Stage, TrainResult
from .common import balanced_subset
from .semisup_stages import STRONG, WEAK_SHIFT, affine_views, codes, warp_views  # noqa: F401  (for the tests)

M2_HIDDEN = SemisupConfig().m2_hidden   # Kingma et al. 2014 used one hidden layer of 500 units for M2
M2_LATENT = SemisupConfig().m2_latent   # z2; small, since z1 (50-d) is already a compact code
LOGVAR_MIN, LOGVAR_MAX = -8.0, 4.0      # keep the Gaussian decoder of z1 numerically sane


class M2(nn.Module):
    """The semi-supervised model on codes ``z1: [B, D1]`` with ``K`` classes.

    ``classifier``: its input (z1 itself, or M1's encoder's last hidden layer: ``classifier_in`` wide) -> logits
    [B, K]; ``encoder``: [z1, onehot] -> mu, logvar of z2 [B, M2_LATENT]; ``decoder``: [z2, onehot] -> mean, logvar
    of z1 [B, D1].
    """

    def __init__(self, in_dim: int, num_classes: int, *, hidden: int = M2_HIDDEN, latent: int = M2_LATENT,
                 activation: str = "relu", classifier_in: int | None = None):
        super().__init__()
        act = ACTIVATIONS[activation]
        self.in_dim, self.num_classes, self.latent = in_dim, num_classes, latent
        self.classifier = nn.Sequential(nn.Linear(classifier_in or in_dim, hidden), act(),
                                        nn.Linear(hidden, num_classes))
        self.encoder = nn.Sequential(nn.Linear(in_dim + num_classes, hidden), act(), nn.Linear(hidden, 2 * latent))
        self.decoder = nn.Sequential(nn.Linear(latent + num_classes, hidden), act(), nn.Linear(hidden, 2 * in_dim))

    def neg_elbo(self, z1: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
        """-ELBO(z1, y) including -log p(y) for a uniform prior: [B] nats."""
        mu, logvar = self.encoder(torch.cat([z1, onehot], 1)).chunk(2, 1)
        z2 = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        mean, lv = self.decoder(torch.cat([z2, onehot], 1)).chunk(2, 1)
        lv = lv.clamp(LOGVAR_MIN, LOGVAR_MAX)
        nll = -losses.log_normal(z1, mean, lv)
        kl = losses.kl_per_dim(mu, logvar).sum(1)
        return nll + kl + math.log(self.num_classes)

    def loss(self, z_lab: torch.Tensor, y_lab: torch.Tensor, z_unl: torch.Tensor, alpha: float,
             c_lab: torch.Tensor | None = None, c_unl: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Kingma et al. 2014 eq. 9 on batch means: ``L + U + alpha * CE`` and its parts. ``c_lab``, ``c_unl``: what
        the classifier reads for each image when that is not the code itself (M1's hidden features)."""
        k = self.num_classes
        eye = torch.eye(k, device=z_lab.device)
        lab = self.neg_elbo(z_lab, eye[y_lab]).mean()
        ce = F.cross_entropy(self.classifier(z_lab if c_lab is None else c_lab), y_lab)
        b = z_unl.shape[0]
        logq = F.log_softmax(self.classifier(z_unl if c_unl is None else c_unl), 1)     # [B, K]
        q = logq.exp()
        rep = z_unl.repeat_interleave(k, 0)                                  # [B*K, D1]
        ys = eye.repeat(b, 1)                                                # [B*K, K]
        ne = self.neg_elbo(rep, ys).view(b, k)
        unl = ((q * ne).sum(1) + (q * logq).sum(1)).mean()                   # E_q[-ELBO] - H(q)
        return {"loss": lab + unl + alpha * ce, "labelled": lab, "unlabelled": unl, "ce": ce}


class SemiSupervisedVAE(VAE):
    """M1 (this VAE, config ``cfg``) with M2 on its latent codes; ``cfg.num_classes`` labels. ``classifier``: what
    q(y|x) reads, ``"code"`` (z1, Kingma et al.) or ``"features"`` (M1's encoder's last hidden layer)."""

    def __init__(self, cfg: ModelConfig, *, m2_hidden: int = M2_HIDDEN, m2_latent: int = M2_LATENT,
                 classifier: str = "code"):
        if cfg.conditional or cfg.num_classes < 2:
            raise ValueError("a semi-supervised model needs model.num_classes >= 2 and conditional false")
        super().__init__(cfg)
        self.reads_features = classifier == "features"
        self.m2 = M2(cfg.latent_dim, cfg.num_classes, hidden=m2_hidden, latent=m2_latent, activation=cfg.activation,
                     classifier_in=self.encoder.hidden_width if self.reads_features else None)

    def encode_hidden(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x -> (the encoder's last hidden layer h, mu, logvar): one pass for the classifier and the code."""
        h = self.encoder.hidden(x)
        return (h, *self.encoder.code(h))

    def classifier_input(self, h: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """What q(y|x) reads of an image whose hidden layer is ``h`` and code (a draw, or the mean) ``z``."""
        return h if self.reads_features else z

    def classify_logits(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, C, H, W] float 0..1 -> class logits [B, K] from the hidden features or the posterior mean of z1."""
        h, mu, _ = self.encode_hidden(x)
        return self.m2.classifier(self.classifier_input(h, mu))

    @torch.no_grad()
    def predict_proba(self, images: torch.Tensor, *, batch_size: int = 1000) -> np.ndarray:
        """uint8 images [N, C, H, W] -> class probabilities [N, K] (eval mode, mode restored)."""
        was = self.training
        self.eval()
        dev = next(self.parameters()).device
        out = [F.softmax(self.classify_logits(to_float(images[i:i + batch_size]).to(dev)), 1).cpu()
               for i in range(0, images.shape[0], batch_size)]
        self.train(was)
        return torch.cat(out).numpy() if out else np.zeros((0, self.cfg.num_classes), np.float32)

    def predict(self, images: torch.Tensor) -> np.ndarray:
        """uint8 images [N, C, H, W] -> predicted labels [N]."""
        return self.predict_proba(images).argmax(1)


def build_semisup(config: RunConfig, folder=None) -> SemiSupervisedVAE:
    s = config.semisup or SemisupConfig()
    return SemiSupervisedVAE(config.model, m2_hidden=s.m2_hidden, m2_latent=s.m2_latent, classifier=s.classifier)


def error_rate(model: SemiSupervisedVAE, data: ImageData) -> float:
    """Fraction of ``data`` misclassified (needs labels)."""
    if data.y is None:
        raise ValueError("test_error needs labelled test data")
    pred = model.predict(data.x)
    return float((pred != data.y.numpy()).mean())


def pixel_baseline(data: DataSplit, idx: np.ndarray, *, seed: int = 0) -> dict[str, Any]:
    """Logistic regression on raw pixels (0..1) of the same labelled images; test error on ``data.test``."""
    from sklearn.linear_model import LogisticRegression
    xtr = data.train.x[idx].reshape(len(idx), -1).numpy() / 255.0
    ytr = data.train.y[idx].numpy()
    xte = data.test.x.reshape(data.test.x.shape[0], -1).numpy() / 255.0
    t0 = time.perf_counter()
    clf = LogisticRegression(C=1.0, max_iter=1000, random_state=seed).fit(xtr, ytr)
    err = float((clf.predict(xte) != data.test.y.numpy()).mean())
    return {"method": "logistic regression on raw pixels (C=1)", "test_error": err,
            "seconds": time.perf_counter() - t0}


def label_seed(config: RunConfig) -> int:
    s = config.semisup
    return config.train.seed if s is None or s.label_seed is None else s.label_seed


def labelled(config: RunConfig, data: DataSplit) -> np.ndarray:
    """The indices of the labelled training images: ``semisup.labels`` balanced per class, picked by the label
    seed (labels outside this subset are never read)."""
    if data.train.y is None or data.test.y is None:
        raise ValueError(f"semi-supervised training needs labelled data; {data.name} has no labels")
    return balanced_subset(data.train.y, config.semisup.labels, label_seed(config))


def stage_train(config: RunConfig, epochs: int) -> TrainConfig:
    """The M2 and joint stages' schedule: Adam at ``semisup.lr`` with a cosine decay to 5 %, gradients clipped at
    100, ``semisup.batch_size`` images a step."""
    s, t = config.semisup, config.train
    return TrainConfig(epochs=epochs, batch_size=s.batch_size, lr=s.lr, lr_schedule="cosine", lr_min_factor=0.05,
                       lr_warmup=0.0, grad_clip=100.0, seed=t.seed, threads=t.threads, device=t.device,
                       eval_every_epoch=t.eval_every_epoch, recon_every=t.recon_every, output_bias_init=False)


def m1_source(config: RunConfig):
    """The run ``semisup.m1_from`` names, checked: a semisup run of the same data, model and M1 recipe whose M1 never
    saw a label (made with joint epochs 0)."""
    from ..runs import load_run
    src = config.semisup.m1_from
    prev = load_run(src)
    if prev.config.kind != "semisup" or (prev.config.model, prev.config.train, prev.config.data) != (
            config.model, config.train, config.data):
        raise ValueError(f"m1_from {src}: its M1 was trained with a different data/model/train config")
    if prev.config.semisup.joint_epochs:
        raise ValueError(f"m1_from {src}: its M1 was trained further with labels ({prev.config.semisup.joint_epochs} "
                         "joint epochs); reuse a run made with joint epochs 0, whose M1 never saw a label")
    return prev


def reused_m1(config: RunConfig, model: SemiSupervisedVAE) -> dict[str, Any]:
    """Copy the M1 of the run ``semisup.m1_from`` into ``model``; returns that run's semisup figures."""
    prev = m1_source(config)
    state = {k: v for k, v in prev.model.state_dict().items() if not k.startswith("m2.")}
    model.load_state_dict({**model.state_dict(), **state})
    return prev.metrics.semisup or {}


def plan(config: RunConfig, data: DataSplit) -> Plan:
    """M1+M2's stages (``vae.train.PLANS["semisup"]``): M1 (unless reused), then M2 on its frozen codes, then both
    together, as many epochs of each as ``config`` says."""
    from .semisup_stages import Joint, M2OnCodes
    s = config.semisup
    lab = torch.as_tensor(labelled(config, data), dtype=torch.long)
    model = build_semisup(config)
    stages, prev = [], None
    if s.m1_from:
        prev = reused_m1(config, model)
    else:
        stages.append(Stage("m1", Elbo(config.train), config.train))
    alpha = 0.1 * len(data.train) / len(lab) if s.alpha is None else s.alpha
    seed = config.train.seed
    if s.m2_epochs:
        stages.append(Stage("m2", M2OnCodes(lab, alpha, s.consistency, seed), stage_train(config, s.m2_epochs)))
    if s.joint_epochs:
        weight = alpha if s.augment_weight is None else s.augment_weight
        stages.append(Stage("joint", Joint(lab, alpha, config.train, s.augment, s.pseudo_threshold, weight, seed,
                                           s.elastic), stage_train(config, s.joint_epochs)))
    return Plan(model, stages, lambda result, metrics: report(config, data, lab.numpy(), result, metrics, prev))


def report(config: RunConfig, data: DataSplit, idx: np.ndarray, result: TrainResult, metrics: Metrics,
           prev: dict[str, Any] | None) -> dict[str, Any]:
    """The semisup figures for ``metrics.json``: the test error, the pixel baseline, the labels, M1's minutes."""
    s = config.semisup
    err = error_rate(result.model, data.test)
    m1 = metrics.history.stage("m1")
    m1_seconds = (prev or {}).get("m1_seconds") if s.m1_from else (m1[-1].elapsed if m1 else None)
    figures = {"method": "M1+M2 (Kingma et al. 2014)" + (", then trained together" if s.joint_epochs else ""),
               "labels": int(len(idx)), "label_seed": label_seed(config), "test_error": err,
               "baseline": pixel_baseline(data, idx, seed=config.train.seed) if s.baseline else None,
               "m1_seconds": m1_seconds, "seconds": result.seconds,
               "labelled_indices": idx.tolist() if len(idx) <= 5000 else None}
    return {"final": dataclasses.replace(metrics.final, test_error=err), "semisup": figures}


# The recipe as numbers of optimiser steps: on MNIST's 60,000 training images, 5 M1 epochs at batch 128 and 30
# joint epochs at 100 unlabelled images a step. A smaller data set gets as many steps (more epochs, at most
# MAX_RECIPE_EPOCHS): on mnist5k's 4,500 images, MNIST's epoch counts were too few steps for M2 to beat raw pixels
# (the last recipe's 20 and 15: 23.2 %, pixels 24.4 %).
M1_EPOCHS, M1_STEPS = 5, 5 * 469
JOINT_EPOCHS, JOINT_STEPS = 30, 30 * 600
MAX_RECIPE_EPOCHS = 300


def recipe_epochs(n_train: int, *, m1_batch: int = 128, batch: int = 100) -> tuple[int, int]:
    """The default (M1 epochs, joint epochs) for ``n_train`` training images: 5 and 30 on MNIST or anything
    larger; on a smaller set, as many epochs as give MNIST's number of steps, at most ``MAX_RECIPE_EPOCHS``."""
    n = max(1, n_train)
    m1 = math.ceil(M1_STEPS / math.ceil(n / m1_batch))
    joint = math.ceil(JOINT_STEPS / max(1, n // batch))
    return (min(MAX_RECIPE_EPOCHS, max(M1_EPOCHS, m1)), min(MAX_RECIPE_EPOCHS, max(JOINT_EPOCHS, joint)))


def semisup_config(data: DataSplit, *, data_cfg: DataConfig | None = None, seed: int = 0, threads: int = 0,
                   latent_dim: int = 50, hidden: tuple[int, ...] = (512, 256), epochs: int | None = None,
                   semisup: SemisupConfig | None = None) -> RunConfig:
    """The measured recipe for ``data``: M1 an MLP 512-256 with a 50-D latent (Kingma et al.'s M1 size), Bernoulli,
    batch 128, Adam 1e-3 with a cosine decay, :func:`recipe_epochs` epochs unless given; the semisup section's
    defaults, its joint epochs from :func:`recipe_epochs` unless given. M1's recipe is pinned here (not taken from
    ``TrainConfig``'s defaults) because it is the recipe whose M2 error was measured."""
    m1_epochs, joint_epochs = recipe_epochs(len(data.train))
    mcfg = ModelConfig(arch="mlp", channels=data.channels, image_size=data.image_size, latent_dim=latent_dim,
                       hidden=hidden, num_classes=data.num_classes)
    tcfg = TrainConfig(epochs=m1_epochs if epochs is None else epochs, seed=seed, threads=threads, batch_size=128,
                       lr=1e-3, lr_warmup=0.0, output_bias_init=False, lr_schedule="cosine")
    return RunConfig(model=mcfg, train=tcfg, data=data_cfg or DataConfig(name=data.name), kind="semisup",
                     semisup=semisup or SemisupConfig(joint_epochs=joint_epochs))
