"""The training loop: data already in memory, events out, cancel in; never prints.

``fit(config, data, callback=..., cancel=...)`` builds a fresh model and trains it (or continues a run
from a ``Checkpoint``: ``resume=(weights, checkpoint)``); ``Trainer`` is the loop itself.
Subscribers (the CLI's progress bar, the run folder's log, tests) receive plain dict events:

- ``start``: ``epochs, steps_per_epoch, total_steps, n_train, n_test, device, threads, resumed_at_epoch``
- ``step``: ``epoch, step, global_step, loss, recon, kl, beta, lr, grad_norm, samples_per_sec,
  elapsed, eta`` (every step)
- ``recon``: ``global_step, inputs, recons`` (uint8 numpy [K, C, H, W], fixed test images) every
  ``recon_every`` steps and at each epoch end, just before the ``epoch`` event
- ``epoch``: ``epoch, partial, train{loss, recon, kl, neg_elbo}, test{neg_elbo, recon, kl, bits_per_dim},
  kl_per_dim (train), test_kl_per_dim, active_units, elapsed, train_seconds, samples_per_sec, latent``
  (``mu``, ``logvar``, ``y`` of up to ``MAX_MAP_POINTS`` test images, numpy)
- ``end``: ``status`` (completed | cancelled | failed), ``message``

A cancel request (anything with ``is_set()``: a ``threading.Event``, or ``vae.jobs.StopSignal`` that also
reads a run folder's stop file) is honoured before the next batch. A non-finite loss or gradient stops the
run before the optimiser step, so the weights are the last good ones.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from . import losses
from .config import RunConfig, TrainConfig
from .data import DataSplit, binarize, to_float
from .distributed import CommTimer, Dist, rank_device
from .evaluate import evaluate, test_view
from .models import VAE, build_model
from .util import pick_device, set_threads

Callback = Callable[[dict[str, Any]], None]
N_RECON = 8          # images in each reconstruction snapshot
MAX_MAP_POINTS = 2000  # test points sent with each epoch event for a 2-D latent map


@dataclass
class TrainResult:
    model: VAE
    status: str                      # completed | cancelled | failed
    message: str
    history: dict[str, list] = field(default_factory=dict)  # "epochs": [...], "steps": [...]
    seconds: float = 0.0


def kl_weight(cfg: TrainConfig, global_step: int, steps_per_epoch: int) -> float:
    """beta, ramped linearly from 0 over ``warmup_epochs``."""
    if cfg.warmup_epochs <= 0:
        return cfg.beta
    return cfg.beta * min(1.0, global_step / (cfg.warmup_epochs * steps_per_epoch))


def progress(cfg: TrainConfig, global_step: int, total_steps: int, elapsed: float) -> float:
    """Fraction of the run done: by steps, or by the clock when a time budget is set (whichever is further)."""
    t = global_step / total_steps if total_steps > 0 else 1.0
    if cfg.time_budget > 0:
        t = max(t, elapsed / cfg.time_budget)
    return min(1.0, t)


def learning_rate(cfg: TrainConfig, global_step: int, total_steps: int, elapsed: float = 0.0) -> float:
    """Linear warm-up over the first ``lr_warmup`` of the run, then constant or cosine decay to
    ``lr_min_factor * lr`` at the end (by steps, or by the clock under a time budget)."""
    if total_steps <= 1:
        return cfg.lr
    t = progress(cfg, global_step, total_steps, elapsed)
    w = cfg.lr_warmup
    if w > 0 and t < w:
        return cfg.lr * max(0.01, t / w)
    if cfg.lr_schedule == "constant":
        return cfg.lr
    t = (t - w) / (1 - w)
    lo = cfg.lr * cfg.lr_min_factor
    return lo + 0.5 * (cfg.lr - lo) * (1 + math.cos(math.pi * t))


def fit(config: RunConfig, data: DataSplit, *, callback: Callback | None = None, cancel: Any = None,
        resume: tuple[dict[str, torch.Tensor], Checkpoint] | None = None,
        on_epoch_end: Callable[["Trainer"], None] | None = None, dist: Dist | None = None) -> TrainResult:
    """Seed, build a fresh model for ``config.model`` and train it on ``data``; or, with ``resume`` (the weights
    and the ``Checkpoint`` of a run's last completed epoch), continue that run where it stopped."""
    torch.manual_seed(config.train.seed)
    model = build_model(config.model)
    if resume is not None:
        model.load_state_dict(resume[0])
    else:
        if config.train.output_bias_init:
            init_output_bias(model, data.train.x)
        init_prior(model, data.train.x, config.train.seed)
    return train(model, data, config.train, callback=callback, cancel=cancel,
                 resume=None if resume is None else resume[1], on_epoch_end=on_epoch_end, dist=dist)


@torch.no_grad()
def init_prior(model: VAE, x: torch.Tensor, seed: int) -> None:
    """Start a VampPrior's pseudo-inputs at randomly chosen training images (pixels kept in 0.05..0.95, so their
    logits stay finite and movable), as Tomczak & Welling's data initialisation does; no-op for N(0, I).
    ``x``: uint8 [N, C, H, W]."""
    if model.pseudo_inputs is None:
        return
    k = model.pseudo_inputs.shape[0]
    gen = torch.Generator().manual_seed(seed + 104729)
    pick = torch.randint(len(x), (k,), generator=gen)
    p = to_float(x[pick]).clamp(0.05, 0.95)
    model.pseudo_inputs.copy_(torch.log(p / (1 - p)).to(model.pseudo_inputs.device))


@torch.no_grad()
def init_output_bias(model: VAE, x: torch.Tensor) -> None:
    """Start the decoder's output bias at the logit of the mean training pixel (per pixel for an
    MLP, per channel for a conv decoder), so the first steps refine the mean image instead of
    learning it from grey. ``x``: uint8 [N, C, H, W]. Its gain is measured in
    bench/recipe_ablation.sh (README, Benchmarks)."""
    last = model.decoder.net[-1]
    if x.shape[0] == 0 or getattr(last, "bias", None) is None:
        return
    total = torch.zeros(x.shape[1:], dtype=torch.float64)
    for i in range(0, x.shape[0], 4096):               # in chunks: no float copy of the whole set
        total += x[i:i + 4096].sum(0, dtype=torch.float64)
    mean = (total / (x.shape[0] * 255.0)).float()     # [C, H, W]
    if model.cfg.arch == "mlp":
        mean = mean.flatten()
    else:
        mean = mean.mean(dim=(1, 2))
    if mean.shape != last.bias.shape:
        return
    mean = mean.clamp(1e-3, 1 - 1e-3)
    last.bias.copy_(torch.log(mean) - torch.log1p(-mean))


def adam(params, **kw) -> torch.optim.Adam:
    """Adam with torch's fused kernel where the device has one.

    On a CPU, torch's default Adam loops over the parameters one at a time; the fused
    kernel makes the optimiser step about 3-4x cheaper (10-20% more samples per second for a
    784-1024 MLP at batch 256: bench/optimizer_step.py), with the same update rule.
    """
    params = list(params)
    try:
        return torch.optim.Adam(params, fused=True, **kw)
    except (RuntimeError, TypeError, ValueError):  # no fused kernel for this device or torch
        return torch.optim.Adam(params, **kw)


def _uint8_images(t: torch.Tensor) -> np.ndarray:
    return (t.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def _grad_norm(params: list[torch.nn.Parameter], clip: float) -> float:
    """Total gradient L2 norm (clipping in place when ``clip`` > 0)."""
    if clip > 0:
        return float(torch.nn.utils.clip_grad_norm_(params, clip))
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return 0.0
    total_norm = getattr(torch.nn.utils, "get_total_norm", None)  # torch >= 2.6: one fused pass
    if total_norm is not None:
        return float(total_norm(grads))
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))


@dataclass
class Checkpoint:
    """Everything needed to continue a run after its last completed epoch (``Trainer.checkpoint``)."""

    epoch: int                          # epochs completed
    global_step: int
    seen: int                           # training images seen
    train_time: float                   # seconds inside the batch loops
    elapsed: float                      # seconds of training wall time (the time budget's clock)
    history: dict[str, list]
    optimizer: dict[str, Any]           # torch optimizer state_dict
    generator: torch.Tensor             # the shuffling / binarising generator's state (uint8)
    rng: torch.Tensor                   # torch's global generator (the reparameterisation noise), uint8


class Trainer:
    """Trains ``model`` in place on ``data.train`` and evaluates on ``data.test`` after each epoch.

    ``run()`` is the loop; ``on_epoch_end(trainer)`` (optional) is called after each completed epoch, where
    ``trainer.checkpoint()`` captures what a later ``Trainer(..., resume=checkpoint)`` continues from: same
    optimizer moments, same shuffling stream, same step count and the same clock for the schedule and the
    time budget. A cancel request (anything with ``is_set()``) is honoured before the next batch.
    """

    def __init__(self, model: VAE, data: DataSplit, cfg: TrainConfig, *, callback: Callback | None = None,
                 cancel: Any = None, resume: Checkpoint | None = None,
                 on_epoch_end: Callable[["Trainer"], None] | None = None, dist: Dist | None = None):
        self.model, self.data, self.cfg = model, data, cfg
        self.dist = dist or Dist()
        main = self.dist.is_main          # rank 0 alone speaks (events), decides (stop, clock) and writes
        self.emit = (callback or (lambda e: None)) if main else (lambda e: None)
        self.cancel, self.on_epoch_end = (cancel, on_epoch_end) if main else (None, None)
        local = int(os.environ.get("LOCAL_WORLD_SIZE", "1")) if self.dist.active else 1
        self.threads = set_threads(cfg.threads or max(1, (os.cpu_count() or 1) // local))
        self.device = rank_device(pick_device(cfg.device), self.dist)
        model.to(self.device)
        self.net = model
        self.comm = CommTimer()
        if self.dist.active:              # DDP hands every rank rank 0's weights, then averages gradients
            self.net = DDP(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
            self.net.register_comm_hook(None, self.comm.hook)
        self.n = len(data.train)
        if self.n == 0:
            raise ValueError("the training set is empty")
        self.bs = min(cfg.batch_size, self.n)
        self.steps_per_epoch = math.ceil(self.n / self.bs)
        self.total_steps = self.steps_per_epoch * cfg.epochs
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.opt = adam(self.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.gen = torch.Generator().manual_seed(cfg.seed)   # the epoch permutations: the same on every rank
        self.bin_gen = self.gen                               # ... and, on one process, the binarisation draws
        if self.dist.active:                                  # each rank its own noise and binarisation draws
            torch.manual_seed(cfg.seed * 1_000_003 + 7919 * (self.dist.rank + 1))
            self.bin_gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + 104_729 * (self.dist.rank + 1))
        self.x_train = data.train.x.to(self.device)           # uint8 on the device: a GPU run copies no batch
        self.y_train = data.train.y.to(self.device) if model.cfg.conditional else None
        self.shared_clock = 0.0                               # rank 0's elapsed, as of the last step
        self.fault = _fault_from_env()
        self.test = test_view(data.test, cfg)
        self.recon_x = to_float(self.test.x[:N_RECON]).to(self.device)
        cond = model.cfg.conditional and self.test.y is not None
        self.recon_y = self.test.y[:N_RECON].to(self.device) if cond else None
        self.epoch, self.global_step, self.seen, self.train_time, self.elapsed0 = 0, 0, 0, 0.0, 0.0
        self.history: dict[str, list] = {"epochs": [], "steps": []}
        if resume is not None:
            self._restore(resume)

    # ---------------------------------------------------------------------------------- state
    def checkpoint(self) -> Checkpoint:
        return Checkpoint(epoch=self.epoch, global_step=self.global_step, seen=self.seen,
                          train_time=self.train_time, elapsed=self.elapsed(), history=copy_history(self.history),
                          optimizer=self.opt.state_dict(), generator=self.gen.get_state(),
                          rng=torch.get_rng_state())

    def _restore(self, ck: Checkpoint) -> None:
        self.opt.load_state_dict(ck.optimizer)
        self.gen.set_state(ck.generator)
        torch.set_rng_state(ck.rng)
        self.epoch, self.global_step, self.seen, self.train_time = ck.epoch, ck.global_step, ck.seen, ck.train_time
        self.elapsed0 = ck.elapsed
        self.history = copy_history(ck.history)

    def elapsed(self) -> float:
        """Seconds of training so far, across resumes (the clock the schedule and the time budget follow)."""
        return self.elapsed0 + (time.perf_counter() - self.t0 if hasattr(self, "t0") else 0.0)

    def clock(self) -> float:
        """The schedule's clock: this process's, or on several ranks rank 0's (every rank follows it)."""
        return self.elapsed() if not self.dist.active or self.dist.is_main else self.shared_clock

    # ---------------------------------------------------------------------------------- the loop
    def run(self) -> TrainResult:
        cfg = self.cfg
        self.emit({"type": "start", "epochs": cfg.epochs, "steps_per_epoch": self.steps_per_epoch,
                   "total_steps": self.total_steps, "n_train": self.n, "n_test": len(self.data.test),
                   "device": str(self.device), "threads": self.threads, "resumed_at_epoch": self.epoch,
                   "world_size": self.dist.world_size})
        self.t0 = time.perf_counter()
        status, message = "completed", f"trained {cfg.epochs} epochs"
        while self.epoch < cfg.epochs:
            stop = self._epoch()
            if stop is not None:
                status, message = stop
                break
        self.model.eval()
        seconds = self.elapsed()
        self.emit({"type": "end", "status": status, "message": message, "seconds": seconds})
        return TrainResult(model=self.model, status=status, message=message, history=self.history, seconds=seconds)

    def _epoch(self) -> tuple[str, str] | None:
        """One pass over the training set; returns (status, message) when the run must stop."""
        cfg, model, mcfg, d = self.cfg, self.model, self.model.cfg, self.dist
        epoch = self.epoch + 1
        self.net.train()
        t_loop = time.perf_counter()
        perm = torch.randperm(self.n, generator=self.gen).to(self.device)
        xs = self.x_train[perm]                  # one gather per epoch; batches are then views
        ys = self.y_train[perm] if self.y_train is not None else None
        sums = torch.zeros(4, dtype=torch.float64)              # loss, recon, kl (sums over images), images
        kl_dim_sum = torch.zeros(mcfg.latent_dim, dtype=torch.float64)
        stop = None
        for step in range(self.steps_per_epoch):
            if not d.active:                     # one process: checked before the batch
                stop = self._stop_requested(epoch, step)
                if stop is not None:
                    break
            lr = learning_rate(cfg, self.global_step, self.total_steps, self.clock())
            for g in self.opt.param_groups:
                g["lr"] = lr
            beta = kl_weight(cfg, self.global_step, self.steps_per_epoch)
            lo, hi = step * self.bs, min((step + 1) * self.bs, self.n)
            if hi - lo < d.world_size:           # a last sliver smaller than the ranks: not a batch
                break
            part = slice(lo, hi) if not d.active else torch.tensor_split(torch.arange(lo, hi), d.world_size)[d.rank]
            xb = to_float(xs[part])
            if cfg.binarize:
                xb = binarize(xb.cpu(), self.bin_gen).to(self.device) if xb.is_cuda else binarize(xb, self.bin_gen)
            yb = ys[part] if ys is not None else None
            k = cfg.iw_k if cfg.objective == "iwae" else 1
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
                out = self.net(xb, yb, k) if k > 1 else self.net(xb, yb)
            sigma = model.sigma() if mcfg.likelihood == "gaussian" else None
            prior = None if out.prior is None else tuple(t.float() for t in out.prior)
            if cfg.objective == "iwae":
                terms = losses.iwae_terms(out.recon_logits.float(), xb, out.mu.float(), out.logvar.float(),
                                          out.z.float().view(k, xb.shape[0], -1), mcfg, sigma, prior=prior)
            else:
                terms = losses.elbo_terms(out.recon_logits.float(), xb, out.mu.float(), out.logvar.float(), mcfg,
                                          sigma, z=out.z.float(), prior=prior)
            loss = losses.training_loss(terms, beta=beta, free_bits=cfg.free_bits)
            if self.fault == (d.rank, self.global_step + 1):
                loss = loss * float("nan")
            b, finite = xb.shape[0], bool(torch.isfinite(loss.detach()))
            if not finite and not d.active:
                return ("failed", f"training stopped: the loss became {float(loss.detach())} at epoch {epoch}, step "
                                  f"{step}; try a lower learning rate or gradient clipping (the last good weights "
                                  "are kept)")
            self.opt.zero_grad(set_to_none=True)
            # on several ranks DDP averages gradients: weighting each rank's mean by its share of the global
            # batch makes that average the global batch's mean; a NaN still goes through, so no rank waits alone
            (loss * (b * d.world_size / (hi - lo)) if d.active else loss).backward()
            batch = torch.tensor([float(loss.detach()) * b if finite else 0.0,
                                  float(terms["recon"].detach().sum()), float(terms["kl"].detach().sum()), b],
                                 dtype=torch.float64)
            if d.active:
                flags = self._consensus(epoch, step, finite, batch)
                if flags["nonfinite"]:
                    return ("failed", f"training stopped: the loss became non-finite on {flags['nonfinite']} of "
                                      f"{d.world_size} ranks at epoch {epoch}, step {step}; try a lower learning "
                                      "rate or gradient clipping (the last good weights are kept)")
            gnorm = _grad_norm(self.params, cfg.grad_clip)
            if not math.isfinite(gnorm):
                return ("failed", f"training stopped: non-finite gradients at epoch {epoch}, step {step}; try a "
                                  "lower learning rate or gradient clipping (the last good weights are kept)")
            self.opt.step()
            self.global_step += 1
            gb = int(batch[3])                   # images in this step, over all ranks
            self.seen += gb
            sums += batch
            kl_dim_sum += terms["kl_per_dim"].detach().sum(0).double().cpu()
            self._step_event(epoch, step, batch / max(1, gb), beta, lr, gnorm, t_loop)
            if d.active and flags["stop"] is not None:
                stop = flags["stop"]
                break
        self.train_time += time.perf_counter() - t_loop
        if stop is not None and stop[0] == "failed":
            return stop
        if d.active:                             # the KL per dimension over every rank's images
            kl_dim_sum = d.all_reduce(kl_dim_sum)
        count = int(sums[3])
        if count == 0:
            return stop or ("cancelled", f"stopped by request at epoch {epoch}, step 0")
        self._end_epoch(epoch, sums, kl_dim_sum, count, partial=stop is not None)
        return stop

    def _stop_requested(self, epoch: int, step: int) -> tuple[str, str] | None:
        """Rank 0's (or the only process's) view: a Stop, or the time budget spent."""
        cfg = self.cfg
        if self.cancel is not None and self.cancel.is_set():
            return ("cancelled", f"stopped by request at epoch {epoch}, step {step}")
        if cfg.time_budget > 0 and self.elapsed() >= cfg.time_budget:
            return ("completed", f"time budget of {cfg.time_budget:g} s reached at epoch {epoch}")
        return None

    def _consensus(self, epoch: int, step: int, finite: bool, batch: torch.Tensor) -> dict[str, Any]:
        """One all-reduce per step: NaN flags and loss sums of every rank, rank 0's clock and stop decision."""
        d = self.dist
        stop = self._stop_requested(epoch, step + 1) if d.is_main else None
        code = {None: 0, "cancelled": 1, "completed": 2}[stop[0] if stop else None]
        vec = torch.tensor([0.0 if finite else 1.0, float(code), self.elapsed() if d.is_main else 0.0],
                           dtype=torch.float64)
        t0 = time.perf_counter()
        vec = d.all_reduce(torch.cat([vec, batch]))
        self.comm.consensus_s += time.perf_counter() - t0
        self.comm.steps += 1
        self.shared_clock = float(vec[2])
        batch.copy_(vec[3:])
        code = int(vec[1])
        if code and stop is None:               # the other ranks learn rank 0's decision
            stop = ("cancelled", f"stopped by request at epoch {epoch}, step {step + 1}") if code == 1 else \
                ("completed", f"time budget of {self.cfg.time_budget:g} s reached at epoch {epoch}")
        return {"nonfinite": int(vec[0]), "stop": stop}

    def _step_event(self, epoch: int, step: int, means: torch.Tensor, beta: float, lr: float, gnorm: float,
                    t_loop: float) -> None:
        busy = self.train_time + (time.perf_counter() - t_loop)
        elapsed = self.clock()
        loss_v, recon_m, kl_m = (float(v) for v in means[:3])
        ev = {"type": "step", "epoch": epoch, "step": step + 1, "global_step": self.global_step,
              "loss": loss_v, "recon": recon_m, "kl": kl_m, "beta": beta, "lr": lr, "grad_norm": gnorm,
              "samples_per_sec": self.seen / busy if busy > 0 else 0.0, "elapsed": elapsed,
              "eta": (self.total_steps - self.global_step) * elapsed / max(1, self.global_step)}
        self.emit(ev)
        if self.global_step % max(1, self.steps_per_epoch // 20) == 0 or step == self.steps_per_epoch - 1:
            self.history["steps"].append({k: ev[k] for k in ("epoch", "global_step", "loss", "recon", "kl",
                                                             "beta", "lr", "grad_norm", "elapsed")})
        if self.global_step % self.cfg.recon_every == 0 and self.dist.is_main:
            _emit_recon(self.model, self.recon_x, self.recon_y, self.emit, self.global_step)

    def _end_epoch(self, epoch: int, sums: torch.Tensor, kl_dim_sum: torch.Tensor, count: int, *,
                   partial: bool) -> None:
        """The epoch's record (train figures over all ranks, test figures by rank 0), its events and checkpoint."""
        model = self.model
        record: dict[str, Any] | None = None
        latent = None
        if self.dist.is_main:
            train_stats = {k: float(v) / count for k, v in zip(("loss", "recon", "kl"), sums[:3])}
            train_stats["neg_elbo"] = train_stats["recon"] + train_stats["kl"]
            record = {"epoch": epoch, "partial": partial, "train": train_stats,
                      "kl_per_dim": (kl_dim_sum / count).tolist(), "elapsed": self.elapsed()}
            if self.cfg.eval_every_epoch and len(self.test) > 0:
                ev_stats = evaluate(model, self.test, binarized=False, seed=self.cfg.seed, device=self.device,
                                    return_latent=True)
                latent = ev_stats.pop("latent", None)
                record["test"] = {k: ev_stats[k] for k in ("neg_elbo", "recon", "kl", "bits_per_dim")}
                record["active_units"] = ev_stats["active_units"]
                record["test_kl_per_dim"] = ev_stats["kl_per_dim"]
            record["train_seconds"] = self.train_time
            record["samples_per_sec"] = self.seen / self.train_time if self.train_time > 0 else 0.0
            if self.dist.active:
                record["communication"] = self.comm.per_step_ms()
        record = self.dist.broadcast_object(record)   # the other ranks wait here while rank 0 evaluates
        self.history["epochs"].append(record)
        self.epoch = epoch
        if self.dist.is_main:
            ev = {"type": "epoch", **record}
            if latent is not None:
                k = min(MAX_MAP_POINTS, latent["mu"].shape[0])
                ev["latent"] = {"mu": latent["mu"][:k], "logvar": latent["logvar"][:k],
                                "y": None if latent["y"] is None else latent["y"][:k]}
            _emit_recon(model, self.recon_x, self.recon_y, self.emit, self.global_step)   # the epoch's pictures first
            self.emit(ev)
            if self.on_epoch_end is not None:
                self.on_epoch_end(self)
        self.net.train()


def _fault_from_env() -> tuple[int, int] | None:
    """Test hook: ``VAE_LAB_FAULT_NAN=RANK:STEP`` makes that rank's loss NaN at that (1-based) optimizer step,
    so tests can show a NaN on one rank ends every rank cleanly (tests/test_distributed.py)."""
    text = os.environ.get("VAE_LAB_FAULT_NAN", "")
    try:
        rank, step = (int(v) for v in text.split(":"))
    except ValueError:
        return None
    return rank, step


def copy_history(h: dict[str, list]) -> dict[str, list]:
    return {k: [dict(r) for r in v] for k, v in h.items()}


def train(model: VAE, data: DataSplit, cfg: TrainConfig, *, callback: Callback | None = None,
          cancel: Any = None, resume: Checkpoint | None = None,
          on_epoch_end: Callable[[Trainer], None] | None = None, dist: Dist | None = None) -> TrainResult:
    """Train ``model`` in place on ``data.train``; evaluate on ``data.test`` after each epoch (see ``Trainer``)."""
    return Trainer(model, data, cfg, callback=callback, cancel=cancel, resume=resume,
                   on_epoch_end=on_epoch_end, dist=dist).run()


@torch.no_grad()
def _emit_recon(model: VAE, x: torch.Tensor, y: torch.Tensor | None, emit: Callback, global_step: int) -> None:
    if x.shape[0] == 0:
        return
    was_training = model.training
    model.eval()
    mu, _ = model.encode(x, y)
    rec = torch.sigmoid(model.decode(mu, y))
    model.train(was_training)
    emit({"type": "recon", "global_step": global_step, "inputs": _uint8_images(x), "recons": _uint8_images(rec)})
