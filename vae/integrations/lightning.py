"""A PyTorch Lightning callback that logs a LightningModule's VAE into a VAE Lab run folder, one record an epoch::

    from vae.integrations.lightning import VAELabCallback
    trainer = L.Trainer(callbacks=[VAELabCallback("runs/mine", test_images, labels=test_labels, output="probs")])
    trainer.fit(lit_module, ...)

Needs ``lightning`` (``pip install vae-lab[lightning]``). The module (or ``model=``, a part of it such as
``lit_module.vae``) needs ``encode``/``decode``, or pass ``encode=`` / ``decode=`` as to ``vae.track``. Each epoch's
``trainer.callback_metrics`` (the values the module logged with ``self.log``) become the run's named scalars.
Lightning runs the epoch's validation before ``on_train_epoch_end``, so validation figures are logged with the
epoch; the sanity check before training logs nothing; only the global rank zero writes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import lightning as L

from ..tracking import Tracker, track


class VAELabCallback(L.Callback):
    def __init__(self, path: str | Path, test_images: Any, labels: Any = None, *,
                 model: Callable[[L.LightningModule], Any] | None = None, **track_kw: Any):
        self.path, self.test_images, self.labels = path, test_images, labels
        self.pick, self.track_kw = model, track_kw
        self.lab: Tracker | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero and self.lab is None:
            target = self.pick(pl_module) if self.pick is not None else pl_module
            self.lab = track(self.path, target, self.test_images, self.labels, **self.track_kw)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.lab is None or trainer.sanity_checking:
            return
        scalars = {k: float(v) for k, v in trainer.callback_metrics.items()
                   if hasattr(v, "numel") and v.numel() == 1 or isinstance(v, (int, float))}
        self.lab.log(trainer.current_epoch + 1, **scalars)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.lab is not None:
            self.lab.close("cancelled" if trainer.interrupted else "completed")
            self.lab = None

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if self.lab is not None:
            self.lab.close("failed", f"training raised {type(exception).__name__}: {exception}"[:300])
            self.lab = None
