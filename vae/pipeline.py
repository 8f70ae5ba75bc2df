"""The one pipeline: train, evaluate on held-out data, write a run folder.

``train_run(config, data, out)`` is what ``python -m vae train``, the app's training jobs, every use case that
trains (semi-supervised, rate-distortion, anomaly, augmentation) and ``torchrun`` call, for every kind of run
(``config.kind``; ``vae.train.plan`` says what each trains), so a run folder means the same thing whoever made it::

    from vae import load_dataset, train_run, RunConfig
    result = train_run(RunConfig(), load_dataset("mnist5k"), "runs/first")
    result.final.neg_elbo             # test -ELBO, nats per image

Like pythae's training pipeline, it owns the output folder's layout (``vae.record.FILES``): the config, the weights,
the metrics, and while it trains the events, snapshots and a checkpoint after every epoch (``vae.runlog``). It never
prints: progress goes to the subscribers in ``callback`` as ``vae.loop`` events, and ``cancel`` stops the run after
the current batch, keeping what was learned. Job control (``job.json``, the stop file) is one more subscriber, which
the command line and the app's jobs attach (``vae.jobs.JobControl``); the pipeline adds three events for it:

- ``saved``: ``epoch, test`` once an epoch's checkpoint and run are on disk;
- ``finished``: ``status, message, final, saved`` once the run folder is final;
- ``error``: ``message`` when training raised.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from .checkpoint import has_checkpoint, load_checkpoint, remove_checkpoint
from .config import RunConfig
from .data import DataSplit
from .distributed import Dist
from .evaluate import evaluate, test_view
from .models import VAE
from .record import DataInfo, Final, History, Metrics
from .runlog import RunLog, clear_record
from .runs import CONFIG, RunError, config_from_bytes, save_run
from .train import Callback, TrainResult, fit, plan
from .util import atomic_write_bytes


@dataclass
class RunResult:
    """What a pipeline run produced: the trained model and exactly what was written to ``metrics.json``."""

    path: Path | None          # the run folder, or None when nothing was written
    model: VAE
    config: RunConfig
    status: str                # completed | cancelled | failed
    message: str
    metrics: Metrics
    seconds: float             # training time (the final evaluation excluded)

    @property
    def final(self) -> Final:
        """The final held-out evaluation (empty without test images)."""
        return self.metrics.final


def _fan_out(callback: Callback | Iterable[Callback] | None) -> list[Callback]:
    if callback is None:
        return []
    return [callback] if callable(callback) else list(callback)


def train_run(config: RunConfig, data: DataSplit, out: str | Path | None = None, *,
              callback: Callback | Iterable[Callback] | None = None, cancel: Any = None, iw_samples: int = 0,
              extra_metrics: Callable[[TrainResult, Metrics], dict[str, Any]] | None = None,
              resume: bool = False, dist: Dist | None = None) -> RunResult:
    """Train ``config`` on ``data``, evaluate on ``data.test`` and write the run folder ``out``.

    - The final evaluation scores the test images as the run sees them (``vae.evaluate.test_view``: binarised once
      with the run's seed for a ``binarize`` run), with ``iw_samples`` importance samples for log p(x) when > 1;
      without test images it is skipped.
    - ``callback``: one subscriber or several, each called with every event.
    - ``extra_metrics(train_result, metrics)`` returns fields of ``vae.record.Metrics`` to set (a use case's own).
    - With ``out``, the folder records the run while it trains, so a killed process loses at most one epoch;
      ``resume=True`` continues from its checkpoint (or starts, if there is none yet). ``out=None`` writes nothing.
      A run stopped before its first batch learned nothing: no weights are written.
    - ``dist`` (``vae.distributed.from_env()`` under torchrun): every rank trains; rank 0 alone evaluates and writes
      the folder, the others return a result without a path.
    """
    dist = dist or Dist()
    subscribers = _fan_out(callback)
    log = _open_record(config, data, Path(out), resume) if out is not None and dist.is_main else None

    def events(e: dict[str, Any]) -> None:
        if log is not None:
            log(e)
        for s in subscribers:
            s(e)

    if log is not None:
        log.emit = events
    try:
        result, metrics, path = _train_and_save(config, data, out, events, cancel, iw_samples, extra_metrics, resume,
                                                dist, log)
    except BaseException as e:
        if dist.is_main:
            events({"type": "error", "message": " ".join(str(e).split()) or type(e).__name__})
        raise
    finally:
        if log is not None:
            log.close()
    if log is not None and result.status == "completed":
        remove_checkpoint(out)
    events({"type": "finished", "status": result.status, "message": metrics.message, "saved": path is not None,
            "final": {k: v for k, v in metrics.final.to_dict().items() if k in ("neg_elbo", "kl", "active_units")}})
    return RunResult(path=path, model=result.model, config=config, status=result.status, message=result.message,
                     metrics=metrics, seconds=result.seconds)


def _open_record(config: RunConfig, data: DataSplit, out: Path, resume: bool) -> RunLog:
    if resume:
        check_resumable(out, config)
    else:                                   # a fresh run (perhaps over an old one): its own record only
        out.mkdir(parents=True, exist_ok=True)
        clear_record(out)
        atomic_write_bytes(out / CONFIG, (config.to_json() + "\n").encode())
    return RunLog(out, config, data)


def _train_and_save(config, data, out, events, cancel, iw_samples, extra_metrics, resume, dist, log
                    ) -> tuple[TrainResult, Metrics, Path | None]:
    p = plan(config, data)
    ck = load_checkpoint(out) if out is not None and resume and has_checkpoint(out) else None
    result = fit(config, data, callback=events, cancel=cancel, prepared=p, dist=dist, resume=ck,
                 on_epoch_end=None if log is None else log.on_epoch_end)
    test = test_view(data.test, config.train)
    final = {}
    if len(test) and dist.is_main:
        final = evaluate(result.model, test, iw_samples=iw_samples, seed=config.train.seed)
    reason = cancel.reason() if result.status == "cancelled" and hasattr(cancel, "reason") else None
    metrics = Metrics(status=result.status, message=reason or result.message, seconds=result.seconds,
                      n_train=len(data.train), history=History.from_dict(result.history), final=Final.from_dict(final),
                      data=DataInfo(data.name, data.source, data.class_names),
                      distributed=dist.describe() if dist.active else None)
    for extra in (p.report, extra_metrics):
        if extra is not None:
            metrics = dataclasses.replace(metrics, **extra(result, metrics))
    learned = bool(result.history.get("steps")) or result.status != "cancelled"
    path = save_run(out, result.model, config, metrics) if out is not None and dist.is_main and learned else None
    if path is None and out is not None and result.status == "cancelled":
        metrics.message = reason or "stopped before the first batch; nothing was saved"
    return result, metrics, path


def check_resumable(out: Path, config: RunConfig) -> None:
    """Refuse to resume a folder that is not this run (its config.json must describe the same run)."""
    try:
        saved = config_from_bytes((out / CONFIG).read_bytes(), str(out / CONFIG))
    except OSError:
        raise RunError(f"{out} has no config.json: not a run folder to resume") from None
    if saved.model != config.model or saved.data != config.data or saved.kind != config.kind:
        raise RunError(f"{out}: its config.json describes another run; resume takes the folder's own config")
