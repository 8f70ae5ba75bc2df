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

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .config import RunConfig
from .data import DataSplit
from .evaluate import evaluate, test_view
from .models import VAE
from .runs import save_run
from .train import Callback, fit

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
              callback: Callback | None = None, cancel: threading.Event | None = None, iw_samples: int = 0,
              trainer: Trainer | None = None,
              extra_metrics: Callable[[Any, dict[str, Any]], dict[str, Any]] | None = None) -> RunResult:
    """Train ``config`` on ``data``, evaluate on ``data.test`` and write the run folder ``out``.

    - The final evaluation scores the test images as the run sees them (``vae.evaluate.test_view``:
      binarised once with the run's seed for a ``binarize`` run), with ``iw_samples`` importance samples
      for log p(x) when > 1; without test images it is skipped.
    - ``trainer`` replaces ``vae.train.fit`` (e.g. M1+M2); ``extra_metrics(train_result, final)`` adds
      keys to ``metrics.json`` (a use case's own figures).
    - ``out=None`` writes nothing. A run stopped before its first batch learned nothing and is not written.
    """
    result = (trainer or fit)(config, data, callback=callback, cancel=cancel)
    test = test_view(data.test, config.train)
    final = evaluate(result.model, test, iw_samples=iw_samples, seed=config.train.seed) if len(test) else {}
    metrics: dict[str, Any] = {
        "status": result.status, "message": result.message, "seconds": result.seconds,
        "n_train": len(data.train), "history": result.history, "final": final,
        "data": {"name": data.name, "source": data.source, "class_names": data.class_names},
    }
    if extra_metrics is not None:
        metrics.update(extra_metrics(result, final))
    learned = bool((result.history or {}).get("steps")) or result.status != "cancelled"
    path = save_run(out, result.model, config, metrics) if out is not None and learned else None
    return RunResult(path=path, model=result.model, config=config, status=result.status, message=result.message,
                     metrics=metrics, seconds=result.seconds)
