"""The run doctor: reads a run's history and flags what went wrong, with the evidence to plot.

``diagnose(metrics, config, model=None, test=None)`` returns a list of findings, most severe first::

    {"code": "posterior_collapse", "severity": "error" | "warning", "title": "...",
     "evidence": {"kind": "line" | "bar", "x": [...], "x_label": "...", "series": {name: [...]},
                  "facts": {...}},
     "advice": "...", "suggested_changes": {"train": {...}, "model": {...}}}

Checks (each on the history ``vae.train`` writes into ``metrics.json``):

* ``non_finite`` - the run stopped on a NaN/Inf loss or gradient (``status == "failed"``).
* ``posterior_collapse`` - almost no KL per latent dimension: few active units (Burda et al. 2016)
  or a total KL under ``COLLAPSE_KL_NATS``; the decoder ignores the latent code. With two stochastic layers this
  reads the top layer z, and ``lower_layer_collapse`` the lower one z1 (its KL against p(z1 | z)).
* ``kl_explosion`` - KL far above what an image needs (over ``KL_PER_DIM_MAX`` nats per latent dim on
  average) or a KL spike in the step log: the posterior has become a near-delta (beta near 0) or the
  optimiser is unstable.
* ``blurry`` - reconstructions much smoother than their inputs (sharpness ratio of image gradients,
  measured when a model and test images are given), or a recipe known to blur: a Gaussian
  likelihood with a fixed sigma >= ``BLURRY_SIGMA`` (the reconstruction term weighs 1/(2 sigma^2)),
  or beta >= ``BLURRY_BETA``.
* ``lr_too_high`` - loss spikes against its running median, a final loss worse than the best, or
  gradient-norm spikes, with a learning rate above ``LR_HIGH`` as supporting evidence; or a rate far above
  the standard one for the batch size (``LR_FAR_FACTOR`` times Adam's 1e-3 at batch 128, scaled by the square
  root of the batch) in a run that learned little (see below), which is how a too-high rate usually ends on
  a CPU whose arithmetic lets it survive the spikes: quietly, with most latent dimensions shut.

"Learned little" compares the run with the model that ignores its latent code (``final.mean_image_nats``,
the -ELBO of decoding every image to the mean one): a test -ELBO that recovers under ``WEAK_GAIN`` of that
zero point, or a KL under ``WEAK_KL_PER_DIM`` nats per latent dimension. ``posterior_collapse`` also fires
on a run whose KL collapsed *during* training (after any KL warm-up) to under ``COLLAPSING_FACTOR`` of its
peak.

A healthy run yields ``[]``. ``apply_changes(config, changes)`` turns a finding's
``suggested_changes`` into the config of the run to try (``vae.cli.train.args_for`` gives its command line).
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from ..config import DEFAULT_CONV_HIDDEN, RunConfig
from ..config import replace as cfg_replace
from ..evaluate import UNUSED_KL_NATS, mean_image_nats
from ..record import EpochRecord, Metrics, StepRecord

COLLAPSE_KL_NATS = 1.0      # total KL per image below this: the code carries under ~1.4 bits
COLLAPSE_ACTIVE_FRACTION = 0.1
KL_PER_DIM_MAX = 6.0        # nats per latent dim on average; healthy MNIST VAEs sit near 1-2
KL_SPIKE_FACTOR = 10.0
BLURRY_SIGMA = 0.3
BLURRY_BETA = 4.0
BLURRY_SHARPNESS = 0.3      # reconstructions' mean |gradient| / inputs' below this is blurry whatever the cause
BLURRY_SHARPNESS_CAUSED = 0.8  # ... and below this when the recipe is known to blur (short healthy runs: ~0.4-0.6)
SPIKE_FACTOR = 1.5          # a step loss this many times its running median is a spike
SPIKE_MIN_COUNT = 2
DIVERGENCE_FACTOR = 1.15    # final epoch's train loss this many times the best epoch's
GRAD_SPIKE_FACTOR = 50.0
HIDDEN_SPIKE_FACTOR = 3.0   # an epoch's mean train loss this many times the median recorded step loss
LR_HIGH = 3e-3
LR_FAR_FACTOR = 10.0        # a rate this many times standard_lr(batch) is far out of the usual range
WEAK_GAIN = 0.15            # a test -ELBO recovering under 15% of the mean-image model's nats learned little
                            # (healthy 3-epoch runs of the tests' small MLP on 2,000 digits: 18-21 %)
WEAK_KL_PER_DIM = 0.5       # ... or under half a nat per latent dimension (healthy: 0.9-1.1)
COLLAPSING_FACTOR = 0.25    # test KL ending under this share of its post-warm-up peak: collapsing in training
COLLAPSING_MIN_PEAK = 2.0   # ... when the peak carried at least this many nats
SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _series(values: Iterable[Any]) -> list[float | None]:
    """A plotted series: each value as a float, None where it is missing or not finite."""
    return [float(v) if _finite(v) else None for v in values]


def _figure(records: list[StepRecord], key: str) -> list[float | None]:
    """A figure of each step (``loss``, ``recon``, ``kl``, ...), None where the step did not report it."""
    return _series(s.figures.get(key) for s in records)


def _test_figure(epochs: list[EpochRecord], key: str) -> list[float | None]:
    return _series(e.test.get(key) for e in epochs)


def _running_median(vals: np.ndarray, window: int) -> np.ndarray:
    out = np.full(vals.shape, np.nan)
    for i in range(window, len(vals)):
        out[i] = np.median(vals[i - window:i])
    return out


def standard_lr(batch_size: int) -> float:
    """Adam's usual 1e-3 at batch 128, scaled by sqrt(batch / 128) (larger batches average out more noise)."""
    return 1e-3 * math.sqrt(max(1, batch_size) / 128)


def lr_far_too_high(t) -> bool:
    return t.lr >= LR_FAR_FACTOR * standard_lr(t.batch_size)


def learned_little(metrics: Metrics, config: RunConfig) -> dict[str, float] | None:
    """Why the run learned little, if it did: ``{"gain": share of the mean-image nats recovered, "kl_per_dim":
    ...}`` with only the signs that hold, or None. Needs ``final`` (a finished evaluation)."""
    final = metrics.final
    d = config.model.latent_dim
    signs: dict[str, float] = {}
    if _finite(final.kl) and final.kl / d < WEAK_KL_PER_DIM:
        signs["kl_per_dim"] = float(final.kl) / d
    base, nll = final.mean_image_nats, final.neg_elbo
    if _finite(base) and _finite(nll) and base > 0 and (base - nll) / base < WEAK_GAIN:
        signs["gain"] = float((base - nll) / base)
    return signs or None


def check_non_finite(metrics: Metrics, config: RunConfig) -> dict | None:
    steps = metrics.history.steps
    bad_steps = [s.global_step for s in steps
                 if not _finite(s.figures.get("loss")) or not _finite(s.figures.get("kl"))]
    failed = metrics.status == "failed"
    msg = metrics.message
    if not failed and not bad_steps:
        return None
    t = config.train
    return {
        "code": "non_finite", "severity": "error", "title": "The loss became NaN or infinite",
        "evidence": {"kind": "line", "x": _series(s.global_step for s in steps), "x_label": "step",
                     "series": {"loss": _figure(steps, "loss"), "grad_norm": _series(s.grad_norm for s in steps)},
                     "facts": {"status": metrics.status, "message": msg, "lr": t.lr,
                               "grad_clip": t.grad_clip, "non_finite_steps": bad_steps[:20]}},
        "advice": (f"Training stopped on a non-finite value ({msg or 'see the step log'}). Lower the learning "
                   f"rate tenfold and clip gradients; the run keeps its last good weights."),
        "suggested_changes": {"train": {"lr": max(t.lr / 10, 1e-5), "grad_clip": t.grad_clip or 5.0}},
    }


def check_posterior_collapse(metrics: Metrics, config: RunConfig) -> dict | None:
    kld = metrics.kl_per_dim(config.model.latent_dim)
    if kld is None:
        return None
    d = len(kld)
    final, epochs = metrics.final, metrics.history.epochs
    layers = final.kl_per_layer
    two = layers is not None and len(layers) == 2 and all(_finite(v) for v in layers)
    kl_total = (float(layers[0]) if two else float(final.kl) if _finite(final.kl) else float(sum(kld)))
    active = final.active_units
    if not _finite(active) and epochs:
        active = epochs[-1].active_units
    active = int(active) if _finite(active) else sum(v > UNUSED_KL_NATS for v in kld)
    frac = active / max(1, d)
    t, m = config.train, config.model
    after_warmup = [e.test["kl"] for e in epochs if e.epoch > t.warmup_epochs and _finite(e.test.get("kl"))]
    peak = max(after_warmup, default=0.0)
    collapsing = (len(after_warmup) >= 2 and peak >= COLLAPSING_MIN_PEAK
                  and after_warmup[-1] < COLLAPSING_FACTOR * peak)
    if not (kl_total < COLLAPSE_KL_NATS or active == 0 or frac < COLLAPSE_ACTIVE_FRACTION or collapsing):
        return None
    severe = kl_total < COLLAPSE_KL_NATS or active == 0
    train_ch: dict[str, Any] = {"free_bits": 0.5 if t.free_bits <= 0 else t.free_bits,
                                "warmup_epochs": max(t.warmup_epochs, max(1.0, t.epochs / 5))}
    if t.objective == "iwae":          # free bits and a warm-up belong to the ELBO: the suggestion switches back
        train_ch.update({"objective": "elbo", "iw_k": 1})
    if t.beta > 1:
        train_ch["beta"] = 1.0
    if lr_far_too_high(t):
        train_ch.update({"lr": max(t.lr / 10, 1e-5), "grad_clip": t.grad_clip or 5.0})
    model_ch: dict[str, Any] = {}
    if m.likelihood == "gaussian" and not m.learn_sigma and m.gaussian_sigma >= BLURRY_SIGMA:
        model_ch["learn_sigma"] = True
    why = []
    if collapsing:
        why.append(f"the test KL fell from {peak:.1f} to {after_warmup[-1]:.1f} nats during training")
    if t.beta > 1:
        why.append(f"beta={t.beta:g} prices every nat of KL {t.beta:g} times")
    if lr_far_too_high(t):
        why.append(f"a learning rate of {t.lr:g} at batch {t.batch_size} is {t.lr / standard_lr(t.batch_size):.0f}x "
                   "the usual one and can shut latent dimensions in the first steps")
    if model_ch:
        why.append(f"a Gaussian likelihood with sigma={m.gaussian_sigma:g} makes reconstruction cheap to give up")
    return {
        "code": "posterior_collapse", "severity": "error" if severe else "warning",
        "title": (f"Posterior collapse{' of the top layer z' if two else ''}: {active} of {d} latent dimensions "
                  f"active, KL {kl_total:.2f} nats"
                  + (f" (it was {peak:.1f} nats earlier in training)" if collapsing else "")),
        "evidence": {"kind": "bar", "x": list(range(d)), "x_label": "latent dimension",
                     "series": {"kl_per_dim": kld},
                     "epochs": {"x": _series(e.epoch for e in epochs), "kl": _test_figure(epochs, "kl"),
                                "active_units": _series(e.active_units for e in epochs)},
                     "facts": {"active_units": active, "latent_dim": d, "kl_nats": kl_total, "beta": t.beta,
                               "peak_test_kl": peak, "collapsing_in_training": collapsing}},
        "advice": (_collapse_state(active, d, kl_total) + (f" ({'; '.join(why)})" if why else "") +
                   ". Try beta <= 1 with a KL warm-up and free bits (0.5 nats per dimension)."),
        "suggested_changes": {"train": train_ch, **({"model": model_ch} if model_ch else {})},
    }


def check_lower_collapse(metrics: Metrics, config: RunConfig) -> dict | None:
    """A two-layer model whose lower layer z1 carries (almost) nothing: q(z1 | x, z) equals p(z1 | z), so the model
    is a one-layer VAE with extra noise at the decoder's input (the usual fate of a bottom-up hierarchy without a
    KL warm-up: Sonderby et al. 2016)."""
    final = metrics.final
    layers, kld = final.kl_per_layer, final.kl_per_dim_lower
    if not (layers is not None and len(layers) == 2 and kld):
        return None
    d, kl_low = len(kld), float(layers[1]) if _finite(layers[1]) else 0.0
    active = final.active_units_lower
    active = int(active) if _finite(active) else sum(float(v) > UNUSED_KL_NATS for v in kld if _finite(v))
    if not (kl_low < COLLAPSE_KL_NATS or active < COLLAPSE_ACTIVE_FRACTION * d):
        return None
    t = config.train
    train_ch: dict[str, Any] = {"warmup_epochs": max(t.warmup_epochs, max(1.0, t.epochs / 5))}
    if config.model.prior == "normal" and t.objective == "elbo":
        train_ch["free_bits"] = 0.5 if t.free_bits <= 0 else t.free_bits
    top = float(layers[0]) if _finite(layers[0]) else float("nan")
    return {
        "code": "lower_layer_collapse", "severity": "warning",
        "title": f"The lower layer z₁ is unused: {active} of {d} dimensions active, KL {kl_low:.2f} nats "
                 f"(top layer {top:.1f})",
        "evidence": {"kind": "bar", "x": list(range(d)), "x_label": "lower-layer dimension",
                     "series": {"kl_per_dim_lower": [float(v) if _finite(v) else 0.0 for v in kld]},
                     "facts": {"active_units_lower": active, "latent_dim": d, "kl_lower_nats": kl_low,
                               "kl_top_nats": top}},
        "advice": (f"q(z₁ | x, z) equals its prior p(z₁ | z) on {d - active} of {d} dimensions, so z₁ adds noise and "
                   "no information: the top layer z carries the whole code. Warm the KL up over the first epochs "
                   "(Sønderby et al. 2016)" + (" and give each dimension free bits" if "free_bits" in train_ch else "")
                   + " so the lower layer is used before the KL can shut it."),
        "suggested_changes": {"train": train_ch},
    }


def _collapse_state(active: int, d: int, kl_total: float) -> str:
    """What the collapse check measured, in words that hold for these numbers (``active``: dimensions whose
    posterior mean still varies across the test images)."""
    if active == 0:
        return (f"None of the {d} latent dimensions is in use (KL {kl_total:.2f} nats in all): every posterior "
                "equals the prior, so the decoder ignores z")
    if kl_total < COLLAPSE_KL_NATS:
        return (f"{active} of {d} latent dimensions still vary across images, but together they carry only "
                f"{kl_total:.2f} nats: the posteriors are close to the prior and the decoder gets little from z")
    if active < d:
        return (f"Only {active} of {d} latent dimensions are in use ({kl_total:.2f} nats of KL in all); the other "
                f"{d - active} posteriors equal the prior")
    return f"All {d} latent dimensions are still in use, with {kl_total:.2f} nats of KL, but the encoder gives it up"


def check_kl_explosion(metrics: Metrics, config: RunConfig) -> dict | None:
    steps = metrics.history.steps
    kld = metrics.kl_per_dim(config.model.latent_dim)
    d = config.model.latent_dim * config.model.latent_layers     # the KL is both layers' with two
    kl_total = metrics.final.kl if _finite(metrics.final.kl) else (sum(kld) if kld else None)
    per_dim = kl_total / d if kl_total is not None else None
    kl_steps = np.array([s.figures["kl"] for s in steps if _finite(s.figures.get("kl"))], float)
    spike = False
    if len(kl_steps) >= 10:
        med = float(np.median(kl_steps))
        spike = bool(kl_steps.max() > KL_SPIKE_FACTOR * max(med, 1.0) and kl_steps.max() > 100)
    if not ((per_dim is not None and per_dim > KL_PER_DIM_MAX) or spike):
        return None
    t = config.train
    train_ch: dict[str, Any] = {}
    if t.beta < 1:
        train_ch["beta"] = 1.0
    if spike or t.lr > LR_HIGH:
        train_ch.update({"lr": max(t.lr / 3, 1e-5), "grad_clip": t.grad_clip or 5.0})
    if not train_ch:
        train_ch = {"grad_clip": t.grad_clip or 5.0}
    return {
        "code": "kl_explosion", "severity": "warning",
        "title": (f"KL blew up: {per_dim:.1f} nats per latent dimension" if per_dim is not None
                  and per_dim > KL_PER_DIM_MAX else "KL spiked during training"),
        "evidence": {"kind": "line", "x": _series(s.global_step for s in steps), "x_label": "step",
                     "series": {"kl": _figure(steps, "kl"), "recon": _figure(steps, "recon")},
                     "facts": {"kl_nats": kl_total, "kl_per_dim": per_dim, "beta": t.beta, "spike": spike,
                               "threshold_per_dim": KL_PER_DIM_MAX}},
        "advice": ("The posteriors have become needle-thin (the model is behaving like a plain autoencoder, "
                   "so samples from the prior will be poor)" if t.beta < 1 else
                   "The KL term jumped, a sign of unstable optimisation") +
                  ". Use beta = 1 (the ELBO), and clip gradients / lower the learning rate if it spiked.",
        "suggested_changes": {"train": train_ch},
    }


def sharpness_ratio(model, images, labels: torch.Tensor | None = None) -> float:
    """Mean absolute image gradient of reconstructions (from posterior means) over that of the inputs.

    ``images``: uint8 [N, C, H, W] (or an ``ImageData``, whose labels a conditional model needs)."""
    from ..data import ImageData
    from ..latent import reconstruct
    if isinstance(images, ImageData):
        images, labels = images.x, images.y
    x = images.float().numpy() / 255.0
    rec = reconstruct(model, ImageData(images, labels if model.cfg.conditional else None))

    def grad(a: np.ndarray) -> float:
        return float(np.abs(np.diff(a, axis=-1)).mean() + np.abs(np.diff(a, axis=-2)).mean())
    return grad(rec) / max(grad(x), 1e-8)


def check_blurry(metrics: Metrics, config: RunConfig, model=None, test=None) -> dict | None:
    m, t = config.model, config.train
    causes = []
    if m.likelihood == "gaussian" and not m.learn_sigma and m.gaussian_sigma >= BLURRY_SIGMA:
        causes.append(f"Gaussian likelihood with a fixed sigma of {m.gaussian_sigma:g}: every squared pixel error "
                      f"costs only 1/(2*{m.gaussian_sigma:g}^2) = {1 / (2 * m.gaussian_sigma ** 2):.2g} nats")
    if t.beta >= BLURRY_BETA:
        causes.append(f"beta = {t.beta:g} trades reconstruction detail for a small KL")
    ratio = None
    if model is not None and test is not None and test.x.shape[0] > 0:
        if not model.cfg.conditional or test.y is not None:
            ratio = sharpness_ratio(model, test.x[:500], None if test.y is None else test.y[:500])
    measured_blurry = ratio is not None and ratio < BLURRY_SHARPNESS
    if not (measured_blurry or (causes and (ratio is None or ratio < BLURRY_SHARPNESS_CAUSED))):
        return None
    epochs = metrics.history.epochs
    model_ch: dict[str, Any] = {}
    train_ch: dict[str, Any] = {}
    if m.likelihood == "gaussian" and m.channels == 1:
        model_ch = {"likelihood": "bernoulli"}
    elif m.likelihood == "gaussian" and not m.learn_sigma:
        model_ch = {"learn_sigma": True}
    if t.beta >= BLURRY_BETA or (t.beta > 1 and not model_ch):
        train_ch["beta"] = 1.0
    if not model_ch and not train_ch and m.arch != "conv":
        model_ch = {"arch": "conv", "hidden": list(DEFAULT_CONV_HIDDEN)}
    changes: dict[str, Any] = {}
    if train_ch:
        changes["train"] = train_ch
    if model_ch:
        changes["model"] = model_ch
    return {
        "code": "blurry", "severity": "warning",
        "title": "Blurry reconstructions" + (f" (sharpness {ratio:.2f} of the inputs')" if ratio is not None else ""),
        "evidence": {"kind": "line", "x": _series(e.epoch for e in epochs), "x_label": "epoch",
                     "series": {"test_recon": _test_figure(epochs, "recon"), "test_kl": _test_figure(epochs, "kl")},
                     "facts": {"sharpness_ratio": ratio, "threshold": BLURRY_SHARPNESS, "likelihood": m.likelihood,
                               "sigma": m.gaussian_sigma if m.likelihood == "gaussian" else None, "beta": t.beta}},
        "advice": ("Reconstructions lose the strokes' edges" + (": " + "; ".join(causes) if causes else "") + ". "
                   + _blur_cure(model_ch, train_ch)),
        "suggested_changes": changes,
    }


def _blur_cure(model_ch: dict[str, Any], train_ch: dict[str, Any]) -> str:
    """The blur finding's advice, from the changes it suggests for this run (never one the run already has)."""
    parts = []
    if model_ch.get("likelihood") == "bernoulli":
        parts.append("use a Bernoulli likelihood, which charges every pixel's error in full on [0, 1] images")
    if model_ch.get("learn_sigma"):
        parts.append("learn sigma, so the model sets how much a pixel's error costs")
    if "beta" in train_ch:
        parts.append("set beta = 1")
    if model_ch.get("arch") == "conv":
        parts.append("try a convolutional model, whose filters keep local detail that an MLP averages away")
    if not parts:            # its likelihood, beta and model are already the usual cures
        return "Its likelihood, beta and model are already what usually cures this: train longer or widen the decoder."
    text = "; ".join(parts)
    return text[:1].upper() + text[1:] + "."


def check_lr_too_high(metrics: Metrics, config: RunConfig) -> dict | None:
    steps, epochs = metrics.history.steps, metrics.history.epochs
    loss = np.array(_figure(steps, "loss"), float)            # None (missing or not finite) becomes NaN
    gn = np.array(_series(s.grad_norm for s in steps), float)
    t = config.train
    window = 10
    spikes: list[int] = []
    if len(loss) > window + 2:
        med = _running_median(loss, window)
        ok = ~np.isnan(med) & ~np.isnan(loss)
        spikes = [steps[i].global_step for i in np.flatnonzero(ok) if loss[i] > SPIKE_FACTOR * med[i]]
    train_loss = [e.train["loss"] for e in epochs if _finite(e.train.get("loss"))]
    diverged = len(train_loss) >= 3 and train_loss[-1] > DIVERGENCE_FACTOR * min(train_loss)
    gspike = False
    if np.isfinite(gn).sum() >= window + 2:
        # far above both the run's median and the median of the steps just before: a run whose gradients die away
        # (a collapsed posterior) has early steps far above its overall median, and one taking off (the encoder
        # starting to use z) has steps far above the few before them; neither is a spike
        g = gn[np.isfinite(gn)]
        gmed = _running_median(g, window)
        ok = ~np.isnan(gmed)
        gspike = bool((g[ok] > GRAD_SPIKE_FACTOR * np.maximum(gmed[ok], max(np.median(g), 1e-8))).any())
    # the step log keeps ~20 records per epoch; an epoch mean far above the recorded steps' median
    # means spikes happened between records
    rec = loss[np.isfinite(loss)]
    hidden_spike = bool(len(rec) >= 5 and train_loss and max(train_loss) > HIDDEN_SPIKE_FACTOR * np.median(rec))
    weak = learned_little(metrics, config) if lr_far_too_high(t) else None
    signs = (len(spikes) >= SPIKE_MIN_COUNT) + diverged + gspike + hidden_spike + bool(weak)
    if signs == 0 or (signs == 1 and t.lr <= LR_HIGH and not diverged):
        return None
    return {
        "code": "lr_too_high", "severity": "warning",
        "title": f"Learning rate too high ({t.lr:g})",
        "evidence": {"kind": "line", "x": _series(s.global_step for s in steps), "x_label": "step",
                     "series": {"loss": _figure(steps, "loss"), "grad_norm": _series(s.grad_norm for s in steps),
                                "lr": _series(s.lr for s in steps)},
                     "facts": {"loss_spikes": len(spikes), "spike_steps": spikes[:20], "diverged": diverged,
                               "grad_norm_spike": gspike, "epoch_mean_spike": hidden_spike, "lr": t.lr,
                               "standard_lr": standard_lr(t.batch_size), "learned_little": weak,
                               "train_loss_by_epoch": train_loss}},
        "advice": (_lr_signs_text(spikes, diverged, gspike, max(train_loss) if hidden_spike else None,
                                  t.lr / standard_lr(t.batch_size), t.batch_size, weak)
                   + ". Lower the learning rate (3-10x), use the cosine schedule with a warm-up, and clip gradients."),
        "suggested_changes": {"train": {"lr": max(t.lr / 10, 1e-5), "lr_schedule": "cosine",
                                        "lr_warmup": max(t.lr_warmup, 0.1), "grad_clip": t.grad_clip or 5.0}},
    }


def _lr_signs_text(spikes: list[int], diverged: bool, gspike: bool, epoch_peak: float | None, ratio: float,
                   batch: int, weak: dict[str, float] | None) -> str:
    """The signs the learning-rate check found, and only those (it fires on one sign with a high rate)."""
    signs = []
    if len(spikes) >= SPIKE_MIN_COUNT:
        signs.append(f"the loss jumps above its running median ({len(spikes)} spikes)")
    if diverged:
        signs.append("the loss ends worse than its best epoch")
    if gspike:
        signs.append("the gradient norm spikes")
    if epoch_peak is not None:
        signs.append(f"an epoch's mean loss reached {epoch_peak:.3g}")
    if weak:
        signs.append(f"the rate is {ratio:.0f}x the usual one for batch {batch} and the run learned little "
                     f"({_weak_text(weak)})")
    text = "; ".join(signs) or "the rate is high for this batch size"
    return text[:1].upper() + text[1:]


def _weak_text(weak: dict[str, float]) -> str:
    parts = []
    if "kl_per_dim" in weak:
        parts.append(f"{weak['kl_per_dim']:.2f} nats of KL per latent dimension")
    if "gain" in weak:
        parts.append(f"a test -ELBO only {100 * weak['gain']:.0f}% below the model that ignores z")
    return " and ".join(parts)


def diagnose(metrics: Metrics | dict, config: RunConfig, *, model=None, test=None) -> list[dict]:
    """All findings for a run, most severe first; ``[]`` for a healthy run. ``metrics``: the run's record (a dict in
    the layout of ``metrics.json`` is read with ``Metrics.from_dict``). ``test`` (uint8 images) adds the
    reconstruction check and, for a run saved without it, the mean-image zero point."""
    metrics = metrics if isinstance(metrics, Metrics) else Metrics.from_dict(metrics)
    final = metrics.final
    if test is not None and len(test) and final.to_dict() and not _finite(final.mean_image_nats):
        sigma = model.likelihood_sigma() if model is not None else None
        final = dataclasses.replace(final, mean_image_nats=mean_image_nats(test.x, config.model, sigma))
        metrics = dataclasses.replace(metrics, final=final)      # the caller's record is left as it was
    found = [check_non_finite(metrics, config)]
    if not found[0]:
        found += [check_posterior_collapse(metrics, config), check_lower_collapse(metrics, config),
                  check_kl_explosion(metrics, config),
                  check_blurry(metrics, config, model, test), check_lr_too_high(metrics, config)]
    else:
        found.append(check_lr_too_high(metrics, config))
    out = [f for f in found if f]
    collapse = any(f["code"] == "posterior_collapse" for f in out)
    if collapse:  # a collapsed decoder draws the mean image; say it once, under collapse
        out = [f for f in out if not (f["code"] == "blurry" and f["evidence"]["facts"]["sharpness_ratio"] is not None
                                      and not _blur_cause(config))]
    return sorted(out, key=lambda f: SEVERITY_ORDER[f["severity"]])


def _blur_cause(config: RunConfig) -> bool:
    m = config.model
    return (m.likelihood == "gaussian" and not m.learn_sigma and m.gaussian_sigma >= BLURRY_SIGMA) or \
        config.train.beta >= BLURRY_BETA


def apply_changes(config: RunConfig, changes: dict[str, dict[str, Any]]) -> RunConfig:
    """The config of the run a finding suggests: ``changes = {"train": {...}, "model": {...}}``."""
    model, train = config.model, config.train
    if changes.get("model"):
        mc = dict(changes["model"])
        for key in ("hidden", "decoder_hidden"):
            if key in mc:
                mc[key] = tuple(mc[key])
        model = cfg_replace(model, **mc)
    if changes.get("train"):
        train = cfg_replace(train, **changes["train"])
    return RunConfig(model=model, train=train, data=config.data, kind=config.kind)
