"""Rate-distortion: one trained run per beta; each gives a point (rate = test KL, distortion = test recon)."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Sequence

from ..config import RunConfig
from ..config import replace as cfg_replace
from ..data import DataSplit
from ..pipeline import train_run
from .common import Callback


def rate_distortion(data: DataSplit, betas: Sequence[float], *, base: RunConfig | None = None,
                    out_root: str | Path | None = None, callback: Callback | None = None,
                    cancel: threading.Event | None = None) -> dict[str, Any]:
    """Train one run per beta (same seed, data and model); each is a point (rate = test KL, distortion = test
    recon, nats per image). Runs are written to ``out_root/beta-<b>`` when ``out_root`` is given; ``callback``
    receives the training events with the run's beta added as ``rd_beta``."""
    base = base or RunConfig()
    points = []
    for b in betas:
        if cancel is not None and cancel.is_set():
            break
        cfg = RunConfig(model=base.model, train=cfg_replace(base.train, beta=float(b)), data=base.data)
        res = train_run(cfg, data, None if out_root is None else Path(out_root) / f"beta-{b:g}",
                        callback=(lambda e, b=b: callback({**e, "rd_beta": b})) if callback else None, cancel=cancel)
        ev = res.final
        pt = {"beta": float(b), "rate_nats": ev.kl, "distortion_nats": ev.recon, "neg_elbo": ev.neg_elbo,
              "active_units": ev.active_units, "seconds": res.seconds, "status": res.status}
        if res.path is not None:
            pt["run_dir"] = str(res.path)
        points.append(pt)
    return {"points": points, "epochs": base.train.epochs, "latent_dim": base.model.latent_dim,
            "likelihood": base.model.likelihood}
