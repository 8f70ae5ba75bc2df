"""Record the doctor's test histories: real runs, each made to show one trouble, saved as run metrics.

    ./run.sh python tests/data/doctor/record.py        # rewrites tests/data/doctor/*.json (about 1 minute)

A too-high learning rate ends differently on different CPUs (thread counts change the reduction order, and
the trajectory with it): spiking, NaN, a collapse, or a quiet run that learned little. Each ending is kept
here as it happened on the machine that recorded it (``recorded_with``), so tests/test_doctor.py checks the
detectors on every ending on any machine, and trains for real only the cases whose symptom has a wide margin.
"""
from __future__ import annotations

import json
import platform
from pathlib import Path

import torch

from vae.config import ModelConfig, RunConfig, TrainConfig
from vae.data import load_dataset
from vae.evaluate import evaluate
from vae.train import fit

HERE = Path(__file__).resolve().parent
BASE_MODEL = {"latent_dim": 8, "hidden": (256, 128)}
BASE_TRAIN = {"batch_size": 32, "epochs": 3, "lr": 2e-3, "lr_warmup": 0.0}
#: name -> (model changes, train changes, threads, seed): the run that showed the symptom when recorded
CASES = {
    "healthy": ({}, {}, 1, 0),
    "collapse": ({}, {"beta": 60.0}, 1, 0),
    "nan": ({}, {"lr": 5.0, "lr_schedule": "constant"}, 1, 0),
    "blurry": ({"likelihood": "gaussian", "gaussian_sigma": 1.0}, {}, 1, 0),
    "kl_blowup": ({"latent_dim": 4}, {"beta": 0.0, "lr": 5e-3, "lr_schedule": "constant"}, 1, 0),
    "lr_spiky": ({}, {"lr": 0.05, "lr_schedule": "constant"}, 2, 2),       # KL and loss spikes
    "lr_collapsed": ({}, {"lr": 0.03, "lr_schedule": "constant"}, 1, 0),  # every dimension shut
    "lr_quiet": ({}, {"lr": 0.03, "lr_schedule": "constant"}, 2, 0),      # no spike, learned little
    "kl_collapsing": ({}, {"lr": 0.05, "lr_schedule": "constant"}, 1, 1),  # KL 21 nats, then 1.5
}


def record(name: str, data) -> dict:
    mk, tk, threads, seed = CASES[name]
    cfg = RunConfig(model=ModelConfig(**{**BASE_MODEL, **mk}),
                    train=TrainConfig(**{**BASE_TRAIN, **tk, "threads": threads, "seed": seed}))
    r = fit(cfg, data)
    metrics = {"status": r.status, "message": r.message, "history": r.history, "final": evaluate(r.model, data.test)}
    text = json.dumps(metrics, default=float)  # as save_run writes them: non-finite numbers become null
    metrics = json.loads(text.replace("-Infinity", "null").replace("Infinity", "null").replace("NaN", "null"))
    return {"config": cfg.to_dict(), "metrics": metrics,
            "recorded_with": {"threads": threads, "seed": seed, "torch": torch.__version__,
                              "machine": platform.machine(), "cpu": platform.processor() or None}}


if __name__ == "__main__":
    data = load_dataset("mnist5k", max_train=2000, max_test=300)
    for name in CASES:
        rec = record(name, data)
        (HERE / f"{name}.json").write_text(json.dumps(rec, indent=None, separators=(",", ":")) + "\n")
        f = rec["metrics"]["final"]
        print(f"{name}: status {rec['metrics']['status']}, -ELBO {f['neg_elbo']}, KL {f['kl']}")
