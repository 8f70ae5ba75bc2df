"""The training loop: the only code that steps a VAE's optimizer. Data in memory, events out, cancel in; never prints.

``Trainer`` trains a model through its *stages*, each an objective (``vae.objectives``: the ELBO or IWAE bound,
the semi-supervised stages, ...) with its own ``TrainConfig`` (epochs, batch, schedule, clipping); a plain VAE run
has one (``vae.train`` plans the stages of each kind of run). The loop owns everything around the objective: the
epochs and their shuffling, cancel, the learning-rate schedule (:func:`learning_rate`), the KL warm-up, NaN stops,
gradient clipping, DDP, checkpoints, resume and events. ``Trainer.step`` is one step of it (the Loss forces page
steps a model one batch at a time). Subscribers (the CLI's progress bar, the run folder's log, the app's job
control, a test) receive plain dict events (fields in ``vae.record.EVENTS``):

- ``start`` (once per stage): ``stage, stages, epochs`` and ``total_steps`` (of the whole run), ``stage_epochs,
  steps_per_epoch, n_train, n_test, device, threads, resumed_at_epoch, world_size, reports``
- ``step``: ``stage, epoch, step, global_step``, the objective's figures (``loss, recon, kl``, ...), ``beta, lr,
  grad_norm, samples_per_sec, elapsed, eta``
- ``recon``: ``global_step, inputs, recons`` (uint8 numpy [K, C, H, W] of fixed test images), every
  ``recon_every`` steps and at each epoch end, just before the ``epoch`` event
- ``epoch``: a ``vae.record.EpochRecord`` as a dict, and ``latent`` (``mu``, ``logvar``, ``y`` of up to
  ``MAX_MAP_POINTS`` test images, numpy) when the epoch was evaluated
- ``end``: ``status`` (completed | cancelled | failed), ``message``, ``seconds``

A cancel request (anything with ``is_set()``: a ``threading.Event``, or ``vae.jobs.StopSignal`` that also reads a
run folder's stop file) is honoured before the next batch. A non-finite loss or gradient stops the run before the
optimiser step, so the weights are the last good ones. On several ranks (torchrun) every rank trains its slice of
each batch, DDP averages the gradients and one small all-reduce per step carries rank 0's clock and stop decision
and every rank's NaN flag; rank 0 alone evaluates, speaks and writes.
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

from .checkpoint import Checkpoint, check_optimizer_state, copy_history
from .config import TrainConfig
from .data import DataSplit, to_float
from .distributed import CommTimer, Dist, rank_device
from .evaluate import evaluate, test_view
from .models import VAE
from .objectives import Objective, for_config
from .schedule import adam, grad_norm, kl_weight, learning_rate
from .util import pick_device, set_threads

Callback = Callable[[dict[str, Any]], None]
N_RECON = 8            # images in each reconstruction snapshot
MAX_MAP_POINTS = 2000  # test points sent with each epoch event for the latent map


@dataclass(frozen=True)
class Stage:
    """One objective trained for ``cfg.epochs`` epochs with ``cfg``'s batch, schedule and clipping."""

    name: str                   # "" for a run's only stage
    objective: Objective
    cfg: TrainConfig


@dataclass
class TrainResult:
    model: VAE
    status: str                      # completed | cancelled | failed
    message: str
    history: dict[str, list] = field(default_factory=dict)  # "epochs": [...], "steps": [...] (vae.record's dicts)
    seconds: float = 0.0



def _uint8_images(t: torch.Tensor) -> np.ndarray:
    return (t.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def local_threads(cfg: TrainConfig, dist: Dist) -> int:
    """Torch threads for this process: the config's, or the cores shared among the ranks on this machine."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1")) if dist.active else 1
    return set_threads(cfg.threads or max(1, (os.cpu_count() or 1) // local))


def device_for(cfg: TrainConfig, dist: Dist) -> torch.device:
    return rank_device(pick_device(cfg.device), dist)


def wrap(model: VAE, device: torch.device, dist: Dist, comm: CommTimer) -> torch.nn.Module:
    """The module the forward pass goes through: DDP over the model on several ranks (it hands every rank rank 0's
    weights, then averages gradients), else the model itself."""
    if not dist.active:
        return model
    net = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    net.register_comm_hook(None, comm.hook)
    return net


@torch.no_grad()
def recon_event(model: VAE, x: torch.Tensor, y: torch.Tensor | None, global_step: int) -> dict[str, Any] | None:
    """The reconstructions of the fixed test images ``x`` (decoded posterior means), as a ``recon`` event."""
    if x.shape[0] == 0:
        return None
    was_training = model.training
    model.eval()
    if getattr(model, "lower", None) is not None:       # two layers: both posteriors' means, as Reconstructions
        rec = torch.sigmoid(model.decode_layers(*model.encode_means(x)))
    else:
        mu, _ = model.encode(x, y)
        rec = torch.sigmoid(model.decode(mu, y))
    model.train(was_training)
    return {"type": "recon", "global_step": global_step, "inputs": _uint8_images(x), "recons": _uint8_images(rec)}


def evaluate_epoch(model: VAE, test, cfg: TrainConfig, device) -> tuple[dict[str, Any], dict | None]:
    """An epoch's held-out figures (record fields) and its test means for the map."""
    ev = evaluate(model, test, binarized=False, seed=cfg.seed, device=device, return_latent=True)
    latent = ev.pop("latent", None)
    fields = {"test": {k: ev[k] for k in ("neg_elbo", "recon", "kl", "bits_per_dim")},
              "active_units": ev["active_units"], "test_kl_per_dim": ev["kl_per_dim"]}
    if latent is not None:
        k = min(MAX_MAP_POINTS, latent["mu"].shape[0])
        latent = {"mu": latent["mu"][:k], "logvar": latent["logvar"][:k],
                  "y": None if latent["y"] is None else latent["y"][:k]}
    return fields, latent


def recon_inputs(data: DataSplit, cfg: TrainConfig, model: VAE, device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The fixed test images every ``recon`` event reconstructs (as the run is scored on them)."""
    test = test_view(data.test, cfg)
    x = to_float(test.x[:N_RECON]).to(device)
    cond = model.cfg.conditional and test.y is not None
    return x, test.y[:N_RECON].to(device) if cond else None


@dataclass
class StepDone:
    """What one step added: ``sums`` [figures..., items] (each figure times the items), the KL per dimension."""

    sums: torch.Tensor
    kl_per_dim: torch.Tensor | None
    stop: tuple[str, str] | None = None      # on several ranks: rank 0's decision, taken after this step


def _noop(event: dict[str, Any]) -> None:
    pass


def _nonfinite(what: str, epoch: int, step: int) -> tuple[str, str]:
    return ("failed", f"training stopped: {what} at epoch {epoch}, step {step}; try a lower learning rate or gradient "
                      "clipping (the last good weights are kept)")


class Trainer:
    """Trains ``model`` in place through ``stages`` (or one ``TrainConfig``'s objective) on ``data.train``.

    ``run()`` is the loop, ``step(batch)`` one optimizer step of it. ``on_epoch_end(trainer)`` (optional) is called
    after each completed epoch, where ``trainer.checkpoint()`` captures what ``Trainer(..., resume=checkpoint)``
    continues from: the same stage, optimizer moments, shuffling stream, step count and clock. ``threads=False``
    leaves torch's thread count alone (a web server stepping a model for a page).
    """

    def __init__(self, model: VAE, data: DataSplit, stages: list[Stage] | TrainConfig, *,
                 callback: Callback | None = None, cancel: Any = None, resume: Checkpoint | None = None,
                 on_epoch_end: Callable[["Trainer"], None] | None = None, dist: Dist | None = None,
                 threads: bool = True):
        self.stages = ([Stage("", for_config(stages, model.cfg), stages)] if isinstance(stages, TrainConfig)
                       else list(stages))
        self.model, self.data = model, data
        self.dist = d = dist or Dist()
        self.emit = (callback or _noop) if d.is_main else _noop   # rank 0 alone speaks, decides and writes
        self.cancel, self.on_epoch_end = (cancel, on_epoch_end) if d.is_main else (None, None)
        if d.active and not all(s.objective.distributed for s in self.stages):
            raise ValueError("this kind of run trains on one process; run it without torchrun")
        first = self.stages[0].cfg
        self.threads = local_threads(first, d) if threads else torch.get_num_threads()
        self.device = device_for(first, d)
        model.to(self.device)
        self.comm = CommTimer()
        self.net = wrap(model, self.device, d, self.comm)
        self.gen = torch.Generator().manual_seed(first.seed)   # the epoch permutations: the same on every rank
        self.bin_gen = self.gen                                 # ... and, on one process, the binarisation draws
        if d.active:                                            # each rank its own noise and binarisation draws
            torch.manual_seed(first.seed * 1_000_003 + 7919 * (d.rank + 1))
            self.bin_gen = torch.Generator().manual_seed(first.seed * 1_000_003 + 104_729 * (d.rank + 1))
        self.recon_x, self.recon_y = recon_inputs(data, first, model, self.device)
        self.steps_per_epoch = [self._spe(s) for s in self.stages]
        self.total_steps = sum(n * s.cfg.epochs for n, s in zip(self.steps_per_epoch, self.stages))
        self.epoch, self.global_step, self.seen, self.train_time, self.elapsed0 = 0, 0, 0, 0.0, 0.0
        self.shared_clock = 0.0                                 # rank 0's elapsed, as of the last step
        self.history: dict[str, list] = {"epochs": [], "steps": []}
        self._announced: set[int] = set()
        if resume is not None:
            self._restore(resume)
        else:
            self._enter(0)

    # ---------------------------------------------------------------------------------- stages and state
    def _spe(self, stage: Stage) -> int:
        n = stage.objective.items(self.data)
        if n == 0:
            raise ValueError("the training set is empty")
        bs = min(stage.cfg.batch_size, n)
        return n // bs if stage.objective.drop_last else math.ceil(n / bs)

    @property
    def stage(self) -> Stage:
        return self.stages[self.si]

    def _enter(self, si: int) -> None:
        """Begin stage ``si``: its objective bound to this loop, a fresh optimizer over its parameters."""
        self.si = si
        st = self.stages[si]
        st.objective.bind(self)
        self.params = st.objective.parameters(self.model)
        self.opt = adam(self.params, lr=st.cfg.lr, weight_decay=st.cfg.weight_decay)
        self.aux = {name: (params, adam(params, **kw))
                    for name, (params, kw) in st.objective.aux_parameters(self.model).items()}
        self.n = st.objective.items(self.data)
        self.bs = min(st.cfg.batch_size, self.n)
        self.spe = self.steps_per_epoch[si]
        self.stage_total = self.spe * st.cfg.epochs
        self.stage_epoch, self.stage_step, self.stage_start = 0, 0, self.elapsed()
        self.test = test_view(self.data.test, st.cfg)

    def checkpoint(self) -> Checkpoint:
        return Checkpoint(epoch=self.epoch, global_step=self.global_step, seen=self.seen,
                          train_time=self.train_time, elapsed=self.elapsed(), history=copy_history(self.history),
                          optimizer=self.opt.state_dict(), generator=self.gen.get_state(), rng=torch.get_rng_state(),
                          stage=self.si, stage_epoch=self.stage_epoch, stage_step=self.stage_step,
                          stage_start=self.stage_start, objective_state=self.stage.objective.state_dict(),
                          aux_optimizers={name: opt.state_dict() for name, (_, opt) in self.aux.items()})

    def _restore(self, ck: Checkpoint) -> None:
        if not 0 <= ck.stage < len(self.stages):
            raise ValueError(f"the checkpoint is in stage {ck.stage + 1}; this run has {len(self.stages)}")
        self.epoch, self.global_step, self.seen, self.train_time = ck.epoch, ck.global_step, ck.seen, ck.train_time
        self.elapsed0 = ck.elapsed
        self.history = copy_history(ck.history)
        self._enter(ck.stage)
        self.stage_epoch, self.stage_step, self.stage_start = ck.stage_epoch, ck.stage_step, ck.stage_start
        check_optimizer_state(self.params, ck.optimizer, "checkpoint")
        self.opt.load_state_dict(ck.optimizer)
        self.gen.set_state(ck.generator)
        torch.set_rng_state(ck.rng)
        self.stage.objective.load_state_dict(ck.objective_state)
        for name, (params, opt) in self.aux.items():
            state = ck.aux_optimizers.get(name)
            if state is None:
                raise ValueError(f"checkpoint: no state for the {name} optimizer this stage trains")
            check_optimizer_state(params, state, f"checkpoint ({name})")
            opt.load_state_dict(state)

    def elapsed(self) -> float:
        """Seconds of training so far, across resumes."""
        return self.elapsed0 + (time.perf_counter() - self.t0 if hasattr(self, "t0") else 0.0)

    def clock(self) -> float:
        """The schedule's clock: this stage's seconds, by this process's clock or on several ranks rank 0's."""
        now = self.elapsed() if not self.dist.active or self.dist.is_main else self.shared_clock
        return now - self.stage_start

    # ---------------------------------------------------------------------------------- the loop
    def run(self) -> TrainResult:
        self.t0 = time.perf_counter()
        status, message = "completed", ""
        while True:
            st = self.stage
            if self.stage_epoch >= st.cfg.epochs:
                if self.si + 1 == len(self.stages):
                    break
                self._enter(self.si + 1)
                continue
            self._announce()
            stop = self._epoch()
            if stop is not None and stop[0] == "completed":       # a stage's time budget: on to the next stage
                message, self.stage_epoch = stop[1], st.cfg.epochs
            elif stop is not None:
                status, message = stop
                break
        if status == "completed" and not message:
            message = f"trained {self.epoch} epochs"
        self.model.eval()
        seconds = self.elapsed()
        self.emit({"type": "end", "status": status, "message": message, "seconds": seconds})
        return TrainResult(model=self.model, status=status, message=message, history=self.history, seconds=seconds)

    def _announce(self) -> None:
        if self.si in self._announced:
            return
        self._announced.add(self.si)
        st = self.stage
        self.emit({"type": "start", "stage": st.name, "stages": [s.name for s in self.stages],
                   "epochs": sum(s.cfg.epochs for s in self.stages), "total_steps": self.total_steps,
                   "stage_epochs": st.cfg.epochs, "steps_per_epoch": self.spe, "n_train": self.n,
                   "n_test": len(self.data.test), "device": str(self.device), "threads": self.threads,
                   "resumed_at_epoch": self.epoch, "world_size": self.dist.world_size,
                   "reports": list(st.objective.reports)})

    def _epoch(self) -> tuple[str, str] | None:
        """One pass over the stage's items; returns (status, message) when the run (or the stage) must stop."""
        d, obj = self.dist, self.stage.objective
        epoch = self.epoch + 1
        self.net.train()
        t_loop = time.perf_counter()
        obj.start_epoch(torch.randperm(self.n, generator=self.gen).to(self.device))
        sums = torch.zeros(len(obj.reports) + 1, dtype=torch.float64)
        kl_sum, stop = None, None
        for step in range(self.spe):
            if not d.active:                     # one process: checked before the batch
                stop = self._stop_requested(epoch, step)
                if stop is not None:
                    break
            lo, hi = step * self.bs, min((step + 1) * self.bs, self.n)
            if hi - lo < d.world_size:           # a last sliver smaller than the ranks: not a batch
                break
            part = slice(lo, hi) if not d.active else torch.tensor_split(torch.arange(lo, hi), d.world_size)[d.rank]
            done = self.step(obj.batch(part), epoch=epoch, index=step, global_batch=hi - lo, t_loop=t_loop)
            if isinstance(done, tuple):
                return done
            sums += done.sums
            if done.kl_per_dim is not None:
                kl_sum = done.kl_per_dim if kl_sum is None else kl_sum + done.kl_per_dim
            if done.stop is not None:
                stop = done.stop
                break
        self.train_time += time.perf_counter() - t_loop
        if d.active and kl_sum is not None:      # the KL per dimension over every rank's images
            kl_sum = d.all_reduce(kl_sum)
        count = int(sums[-1])
        if count == 0:
            return stop or ("cancelled", f"stopped by request at epoch {epoch}, step 0")
        self._end_epoch(epoch, sums, kl_sum, count, partial=stop is not None)
        return stop

    def step(self, batch: Any, *, beta: float | None = None, epoch: int | None = None, index: int = 0,
             global_batch: int | None = None, t_loop: float | None = None) -> StepDone | tuple[str, str]:
        """One optimizer step on ``batch`` (the objective's own batch): the schedule's rate, the loss, the NaN check,
        backward, clipping, the step and its events. ``beta`` overrides the KL weight's warm-up. Returns what the
        step added, or (``"failed"``, why) when the loss or the gradients were not finite (no step taken)."""
        st, d = self.stage, self.dist
        epoch = self.epoch + 1 if epoch is None else epoch
        lr = learning_rate(st.cfg, self.stage_step, self.stage_total, self.clock())
        for g in self.opt.param_groups:
            g["lr"] = lr
        beta = kl_weight(st.cfg, self.stage_step, self.spe) if beta is None else beta
        out = st.objective.loss(self.net, batch, beta)
        b = out.count
        finite = all(bool(torch.isfinite(t.detach())) for t in (out.loss, *out.aux.values()))
        if not finite and not d.active:
            return _nonfinite(f"the loss became {float(out.loss.detach())}", epoch, index)
        self.opt.zero_grad(set_to_none=True)
        # on several ranks DDP averages gradients: weighting each rank's mean by its share of the global batch makes
        # that average the global batch's mean; a NaN still goes through, so no rank waits alone
        (out.loss * (b * d.world_size / (global_batch or b)) if d.active else out.loss).backward()
        self._aux_backward(out.aux)
        row = torch.tensor([float(out.figures[k].detach()) * b if finite else 0.0 for k in st.objective.reports]
                           + [float(b)], dtype=torch.float64)
        flags = None
        if d.active:
            flags = self._consensus(epoch, index, finite, row)
            if flags["nonfinite"]:
                return _nonfinite(f"the loss became non-finite on {flags['nonfinite']} of {d.world_size} ranks",
                                  epoch, index)
        gnorm = grad_norm(self.params, st.cfg.grad_clip)
        if not math.isfinite(gnorm):
            return _nonfinite("non-finite gradients", epoch, index)
        self.opt.step()
        for _, opt in self.aux.values():
            opt.step()
        self.global_step += 1
        self.stage_step += 1
        self.seen += int(row[-1])
        self._step_event(epoch, index, row / max(1.0, float(row[-1])), beta, lr, gnorm,
                         time.perf_counter() if t_loop is None else t_loop)
        kl = None if out.kl_per_dim is None else out.kl_per_dim.detach().double().cpu()
        return StepDone(row, kl, None if flags is None else flags["stop"])

    def _aux_backward(self, losses: dict[str, torch.Tensor]) -> None:
        """The gradients of an objective's auxiliary losses (a discriminator's), each for its own parameters only:
        whatever the main loss left on them is cleared first; on several ranks they are averaged here (DDP wraps the
        model, not the objective's own modules)."""
        for name, loss in losses.items():
            params, opt = self.aux[name]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if self.dist.active:
                for p in params:
                    if p.grad is not None:
                        p.grad.copy_(self.dist.all_reduce(p.grad) / self.dist.world_size)

    def _stop_requested(self, epoch: int, step: int) -> tuple[str, str] | None:
        """Rank 0's (or the only process's) view: a Stop, or the stage's time budget spent."""
        cfg = self.stage.cfg
        if self.cancel is not None and self.cancel.is_set():
            return ("cancelled", f"stopped by request at epoch {epoch}, step {step}")
        if cfg.time_budget > 0 and self.clock() >= cfg.time_budget:
            return ("completed", f"time budget of {cfg.time_budget:g} s reached at epoch {epoch}")
        return None

    def _consensus(self, epoch: int, step: int, finite: bool, row: torch.Tensor) -> dict[str, Any]:
        """One all-reduce per step: NaN flags and figure sums of every rank, rank 0's clock and stop decision."""
        d = self.dist
        stop = self._stop_requested(epoch, step + 1) if d.is_main else None
        code = {None: 0, "cancelled": 1, "completed": 2}[stop[0] if stop else None]
        vec = torch.tensor([0.0 if finite else 1.0, float(code), self.elapsed() if d.is_main else 0.0],
                           dtype=torch.float64)
        t0 = time.perf_counter()
        vec = d.all_reduce(torch.cat([vec, row]))
        self.comm.consensus_s += time.perf_counter() - t0
        self.comm.steps += 1
        self.shared_clock = float(vec[2])
        row.copy_(vec[3:])
        code = int(vec[1])
        if code and stop is None:               # the other ranks learn rank 0's decision
            stop = ("cancelled", f"stopped by request at epoch {epoch}, step {step + 1}") if code == 1 else \
                ("completed", f"time budget of {self.stage.cfg.time_budget:g} s reached at epoch {epoch}")
        return {"nonfinite": int(vec[0]), "stop": stop}

    def _step_event(self, epoch: int, index: int, means: torch.Tensor, beta: float, lr: float, gnorm: float,
                    t_loop: float) -> None:
        busy = self.train_time + (time.perf_counter() - t_loop)
        elapsed = self.clock() + self.stage_start
        figures = {k: float(v) for k, v in zip(self.stage.objective.reports, means[:-1])}
        stage = {"stage": self.stage.name} if self.stage.name else {}
        ev = {"type": "step", **stage, "epoch": epoch, "step": index + 1, "global_step": self.global_step, **figures,
              "beta": beta, "lr": lr, "grad_norm": gnorm, "samples_per_sec": self.seen / busy if busy > 0 else 0.0,
              "elapsed": elapsed, "eta": (self.total_steps - self.global_step) * elapsed / max(1, self.global_step)}
        self.emit(ev)
        if self.stage_step % max(1, self.spe // 20) == 0 or index == self.spe - 1:
            self.history["steps"].append({k: ev[k] for k in ("epoch", "global_step", *stage, *figures, "beta", "lr",
                                                             "grad_norm", "elapsed")})
        if self.stage_step % self.stage.cfg.recon_every == 0 and self.dist.is_main:
            self._recon()

    def _recon(self) -> None:
        ev = recon_event(self.model, self.recon_x, self.recon_y, self.global_step)
        if ev is not None:
            self.emit(ev)

    def _end_epoch(self, epoch: int, sums: torch.Tensor, kl_sum: torch.Tensor | None, count: int, *,
                   partial: bool) -> None:
        """The epoch's record (training figures over all ranks, held-out figures by rank 0), events, checkpoint."""
        st, model = self.stage, self.model
        record, latent = None, None
        if self.dist.is_main:
            train = {k: float(v) / count for k, v in zip(st.objective.reports, sums[:-1])}
            if "recon" in train and "kl" in train:
                train["neg_elbo"] = train["recon"] + train["kl"]
            record = {"epoch": epoch, **({"stage": st.name} if st.name else {}), "partial": partial, "train": train,
                      "elapsed": self.elapsed()}
            if kl_sum is not None:
                record["kl_per_dim"] = (kl_sum / count).tolist()
            if st.cfg.eval_every_epoch and st.objective.evaluates and len(self.test) > 0:
                fields, latent = evaluate_epoch(model, self.test, st.cfg, self.device)
                record.update(fields)
            extra = st.objective.end_epoch(model)
            if extra:
                record["test"] = {**record.get("test", {}), **extra}
            record["train_seconds"] = self.train_time
            record["samples_per_sec"] = self.seen / self.train_time if self.train_time > 0 else 0.0
            if self.dist.active:
                record["communication"] = self.comm.per_step_ms()
        record = self.dist.broadcast_object(record)   # the other ranks wait here while rank 0 evaluates
        self.history["epochs"].append(record)
        self.epoch = epoch
        self.stage_epoch += 1
        if self.dist.is_main:
            self._recon()                              # the epoch's pictures first
            self.emit({"type": "epoch", **record, **({"latent": latent} if latent is not None else {})})
            if self.on_epoch_end is not None:
                self.on_epoch_end(self)
        self.net.train()
