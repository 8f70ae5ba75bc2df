"""The one pipeline: train, evaluate on held-out data, write a run folder.

``train_run(config, data, out)`` is what ``python -m vae train``, the app's training jobs, every use
case that trains (semi-supervised, rate-distortion, anomaly, augmentation) and ``torchrun`` call, so a
run folder means the same thing whoever made it::

    from vae import load_dataset, train_run, RunConfig
    result = train_run(RunConfig(), load_dataset("mnist5k"), "runs/first")
    result.final["neg_elbo"]          # test -ELBO, nats per image

Like pythae's training pipeline, it owns the output folder's layout (``vae.runs``); like the training
loop, it never prints: progress goes to ``callback`` as ``vae.train`` events, and ``cancel`` (a
``threading.Event``) stops it after the current batch, keeping what was learned.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from . import jobs
from .checkpoint import has_checkpoint, load_checkpoint, remove_checkpoint
from .config import RunConfig
from .data import DataSplit
from .distributed import Dist
from .evaluate import evaluate, test_view
from .models import VAE
from .runlog import RunLog
from .runs import CONFIG, save_run
from .train import Callback, fit
from .util import atomic_write_bytes

#: ``trainer(config, data, callback=..., cancel=...)`` -> an object with ``model, status, message, history,
#: seconds`` (``vae.train.TrainResult``, or ``vae.usecases.semisup.SemiSupResult`` for M1+M2).
Trainer = Callable[..., Any]


@dataclass
class RunResult:
    """What a pipeline run produced: the trained model and exactly what was written to ``metrics.json``."""

    path: Path | None          # the run folder, or None when nothing was written
    model: VAE
    config: RunConfig
    status: str                # completed | cancelled | failed
    message: str
    metrics: dict[str, Any]
    seconds: float             # training time (the final evaluation excluded)

    @property
    def final(self) -> dict[str, Any]:
        """The final held-out evaluation (``vae.evaluate.evaluate``'s keys), empty without test images."""
        return self.metrics.get("final") or {}


def train_run(config: RunConfig, data: DataSplit, out: str | Path | None = None, *,
              callback: Callback | None = None, cancel: Any = None, iw_samples: int = 0,
              trainer: Trainer | None = None,
              extra_metrics: Callable[[Any, dict[str, Any]], dict[str, Any]] | None = None,
              resume: bool = False, launched_by: str = "", dist: Dist | None = None) -> RunResult:
    """Train ``config`` on ``data``, evaluate on ``data.test`` and write the run folder ``out``.

    - The final evaluation scores the test images as the run sees them (``vae.evaluate.test_view``:
      binarised once with the run's seed for a ``binarize`` run), with ``iw_samples`` importance samples
      for log p(x) when > 1; without test images it is skipped.
    - ``trainer`` replaces ``vae.train.fit`` (e.g. M1+M2); ``extra_metrics(train_result, final)`` adds
      keys to ``metrics.json`` (a use case's own figures).
    - With ``out``, the folder records the run while it trains (``vae.runlog``: events, snapshots, a job
      status, and after every epoch a checkpoint and a loadable run), so a killed process loses at most
      one epoch; ``resume=True`` continues from that checkpoint (or starts, if there is none yet).
    - ``out=None`` writes nothing. A run stopped before its first batch learned nothing: no weights are
      written (the folder keeps its job record).
    - ``dist`` (``vae.distributed.from_env()`` under torchrun): every rank trains; rank 0 alone evaluates
      and writes the folder, the others return a result without a path.
    """
    dist = dist or Dist()
    writes = out is not None and dist.is_main
    log = None
    if out is not None and dist.is_main:
        out = Path(out)
        if resume:
            check_resumable(out, config)
        else:                                   # a fresh run (perhaps over an old one): its own record only
            out.mkdir(parents=True, exist_ok=True)
            jobs.clear_progress(out)
            atomic_write_bytes(out / CONFIG, (config.to_json() + "\n").encode())
        (out / jobs.STOP).unlink(missing_ok=True)            # a stop request belongs to the previous process
        log = RunLog(out, config, data, launched_by=launched_by)

    def events(e: dict[str, Any]) -> None:
        if log is not None:
            log(e)
        if callback is not None:
            callback(e)

    kwargs: dict[str, Any] = {}
    if trainer is None:
        kwargs["dist"] = dist
        if log is not None:
            kwargs["on_epoch_end"] = log.on_epoch_end
        if out is not None and resume and has_checkpoint(out):
            kwargs["resume"] = load_checkpoint(out, config)       # every rank reads the same checkpoint
    try:
        result = (trainer or fit)(config, data, callback=events, cancel=cancel, **kwargs)
        test = test_view(data.test, config.train)
        final = {}
        if len(test) and dist.is_main:
            final = evaluate(result.model, test, iw_samples=iw_samples, seed=config.train.seed)
            if dist.active:
                final["world_size"], final["backend"] = dist.world_size, dist.backend
        metrics: dict[str, Any] = {
            "status": result.status, "message": result.message, "seconds": result.seconds,
            "n_train": len(data.train), "history": result.history, "final": final,
            "data": {"name": data.name, "source": data.source, "class_names": data.class_names},
        }
        reason = cancel.reason() if result.status == "cancelled" and hasattr(cancel, "reason") else None
        if reason:
            metrics["message"] = reason
        if extra_metrics is not None:
            metrics.update(extra_metrics(result, final))
        if dist.active:
            metrics["distributed"] = dist.describe()
        learned = bool((result.history or {}).get("steps")) or result.status != "cancelled"
        path = save_run(out, result.model, config, metrics) if writes and learned else None
    except BaseException as e:
        if writes:
            line = " ".join(str(e).split()) or type(e).__name__
            jobs.write_status(out, state="failed", ended=time.time(), message=f"training failed: {line}")
        raise
    finally:
        if log is not None:
            log.close()
    if writes:
        state = {"completed": "done", "cancelled": "stopped"}.get(result.status, "failed")
        message = metrics["message"] if path is not None else "stopped before the first batch; nothing was saved"
        message = (reason or message) if result.status == "cancelled" else message
        jobs.write_status(out, state=state, ended=time.time(), message=message,
                          final={k: final.get(k) for k in ("neg_elbo", "kl", "active_units") if k in final})
        (out / jobs.STOP).unlink(missing_ok=True)
        if result.status == "completed":
            remove_checkpoint(out)
    return RunResult(path=path, model=result.model, config=config, status=result.status, message=result.message,
                     metrics=metrics, seconds=result.seconds)


def check_resumable(out: Path, config: RunConfig) -> None:
    """Refuse to resume a folder that is not this run (its config.json must describe the same run)."""
    from .runs import RunError, config_from_bytes
    try:
        saved = config_from_bytes((out / CONFIG).read_bytes(), str(out / CONFIG))
    except OSError:
        raise RunError(f"{out} has no config.json: not a run folder to resume") from None
    if saved.model != config.model or saved.data != config.data:
        raise RunError(f"{out}: its config.json describes another run; resume takes the folder's own config")
