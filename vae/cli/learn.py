"""The use cases that train: ``semisup``, ``rd``, ``augment``, ``anomaly``. Each trains through the one
pipeline (``vae.pipeline.train_run``), so its run folders are like any other."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ..config import ModelConfig, RunConfig, SemisupConfig, TrainConfig
from ..config import replace as cfg_replace
from ..pipeline import train_run
from ..runs import load_run
from ..usecases import (
    MEASURED_MODEL,
    MEASURED_TRAIN,
    anomaly_scores,
    augmentation,
    holdout_anomaly,
    rate_distortion,
    top_anomalies,
    without_class,
)
from ..usecases import semisup as ss
from ..util import set_threads
from .common import add_data_args, check_out, data_config, load_data, load_run_data, steps_for, with_progress
from .options import SEMISUP, Option, add, build, values
from .train import run as run_training


def floats(text: str) -> list[float]:
    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers like 0.5,1,2,4, got {text!r}") from None
    if not vals:
        raise argparse.ArgumentTypeError("expected at least one number")
    return vals


def register(sub) -> None:
    p = sub.add_parser("semisup", help="semi-supervised classifier (M1+M2) with K labels; saves a run folder",
                       description="Semi-supervised M1+M2 with K labels (the settings are the run's config.json "
                                   "semisup section; `train --config RUN/config.json` re-runs it).")
    p.set_defaults(func=cmd_semisup)
    add_data_args(p, default_data="mnist5k")
    add(p.add_argument_group("M1 (the VAE)"), SEMISUP_M1)
    add(p.add_argument_group("M2"), SEMISUP)
    p.add_argument("--out", required=True, help="run folder to write")
    p.add_argument("--quiet", action="store_true")

    p = sub.add_parser("rd", help="rate-distortion sweep: one trained run per beta")
    p.set_defaults(func=cmd_rd)
    add_data_args(p, default_data="mnist5k")
    p.add_argument("--betas", type=floats, default=[0.25, 0.5, 1.0, 2.0, 4.0, 8.0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--latent-dim", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", required=True, help="folder for the runs (one sub-folder per beta)")
    p.add_argument("--plot", default=None, help="PNG of the curve to write")
    p.add_argument("--quiet", action="store_true")

    p = sub.add_parser("augment", help="classifier on K labels with and without conditional-VAE samples")
    p.set_defaults(func=cmd_augment)
    add_data_args(p, default_data="mnist5k")
    p.add_argument("--labels", type=int, default=100)
    p.add_argument("--per-class", type=int, default=200, help="generated images per class")
    p.add_argument("--cvae-epochs", type=int, default=300)
    p.add_argument("--latent-dim", type=int, default=2,
                   help="CVAE latent size: small, so that the label (not z) must carry the class")
    p.add_argument("--temperature", type=float, default=1.0, help="prior temperature of the generated samples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--export", default=None, help="folder to write samples.npz and samples.png (and the CVAE run)")
    p.add_argument("--quiet", action="store_true")

    p = sub.add_parser("anomaly", help="per-image -ELBO anomaly scores; with --holdout-class, train without it "
                                       "and report its AUROC")
    p.set_defaults(func=cmd_anomaly)
    p.add_argument("run_dir", nargs="?", default=None, help="score with an existing run (no training)")
    add_data_args(p, default_data=None)
    p.add_argument("--holdout-class", type=int, default=None, help="class left out of training; AUROC of it vs rest")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--latent-dim", type=int, default=20)
    p.add_argument("--top", type=int, default=16, help="most anomalous test images to list")
    p.add_argument("--png", default=None, help="PNG grid of the most anomalous test images")
    p.add_argument("--iw-samples", type=int, default=20,
                   help="with --holdout-class: importance samples for the -log p(x) score (0 = skip it)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", default=None, help="run folder to write when training")
    p.add_argument("--quiet", action="store_true")


SEMISUP_M1 = (Option("--epochs", "train", "epochs", help="M1 (VAE) epochs over all training images",
                     default_text="5, or on fewer than 60,000 images as many as give MNIST's number of steps, at "
                                  "most 300"),
              Option("--latent-dim", "model", "latent_dim", help="M1's latent dimensions",
                     default_text="50, Kingma et al.'s M1"),
              Option("--seed", "train", "seed"), Option("--threads", "train", "threads"))


def semisup_from_args(args, data) -> RunConfig:
    """The semisup run the options describe: the measured recipe (``semisup_config``) with the options given."""
    opts = (*SEMISUP_M1, *SEMISUP)
    ch = values(args, opts)
    m1 = {**ch.get("train", {}), **ch.get("model", {})}
    base = ss.semisup_config(data, data_cfg=data_config(args), seed=m1.get("seed", 0), threads=m1.get("threads", 0),
                             latent_dim=m1.get("latent_dim", 50), epochs=m1.get("epochs"))
    semi = build(SemisupConfig, base.semisup, ch.get("semisup", {}), opts)
    return cfg_replace(base, semisup=semi)


def cmd_semisup(args) -> int:
    out = Path(args.out)
    check_out(out)
    data = load_data(args, data_config(args))
    if not data.has_labels:
        raise ValueError(f"semisup needs labelled data; {data.name} has no labels")
    set_threads(args.threads or 0)
    config = semisup_from_args(args, data)
    res = run_training(args, config, data, out)
    s, semi = res.metrics.semisup or {}, config.semisup
    base = s.get("baseline") or {}
    print(json.dumps({
        "run_dir": str(out), "status": res.status, "labels": s.get("labels"), "test_error": s.get("test_error"),
        "baseline_test_error": base.get("test_error"), "minutes": round(res.seconds / 60, 2),
        "m1_minutes": round((s.get("m1_seconds") or 0) / 60, 2), "m1_from": semi.m1_from,
        "m1_epochs": config.train.epochs, "m2_epochs": semi.m2_epochs, "joint_epochs": semi.joint_epochs,
        "augment": semi.augment, "elastic": semi.elastic, "classifier": semi.classifier,
        "augment_weight": semi.augment_weight, "consistency": semi.consistency,
        "label_seed": ss.label_seed(config), "threads": config.train.threads or None, "n_train": len(data.train),
        "n_test": len(data.test)}))
    return 0 if res.status != "failed" else 1


def _measured(data, args) -> RunConfig:
    """The recipe the use-case figures were measured with, at this data set's shape."""
    return RunConfig(model=ModelConfig(channels=data.channels, image_size=data.image_size, latent_dim=args.latent_dim,
                                       **MEASURED_MODEL),
                     train=TrainConfig(epochs=args.epochs, seed=args.seed, threads=args.threads, **MEASURED_TRAIN),
                     data=data_config(args))


def cmd_rd(args) -> int:
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is not a folder")
    set_threads(args.threads)
    data = load_data(args, data_config(args))
    base = _measured(data, args)
    total = steps_for(len(data.train), base.train.batch_size, args.epochs) * len(args.betas)
    res = with_progress(total, args.quiet, f"rd {data.name} {len(args.betas)} betas",
                        lambda callback, cancel: rate_distortion(data, args.betas, base=base, out_root=out,
                                                                 callback=callback, cancel=cancel))
    res["data"] = data.name
    if args.plot:
        from ..usecases.plots import plot_rd
        plot_rd(res, args.plot)
        res["plot"] = args.plot
    print(json.dumps(res))
    return 0


def cmd_augment(args) -> int:
    set_threads(args.threads)
    data = load_data(args, data_config(args))
    if not 1 <= args.per_class <= 10_000:
        raise ValueError(f"--per-class must be 1..10000, got {args.per_class}")
    exp = Path(args.export) if args.export else None
    if exp is not None:
        check_out(exp / "cvae")
    res = with_progress(None, args.quiet, f"augment {data.name} k={args.labels}",
                        lambda callback, cancel: augmentation(
                            data, labels=args.labels, per_class=args.per_class, cvae_epochs=args.cvae_epochs,
                            seed=args.seed, latent_dim=args.latent_dim, temperature=args.temperature,
                            threads=args.threads, out=exp / "cvae" if exp else None, callback=callback,
                            cancel=cancel))
    samples = res.pop("samples")
    res.pop("model")
    if exp is not None:
        from ..usecases.plots import save_npz, save_sample_grid
        save_npz(exp / "samples.npz", x=samples["x"], y=samples["y"])
        save_sample_grid(samples["x"], samples["y"], exp / "samples.png", per_class=10)
        res["export"] = {"npz": str(exp / "samples.npz"), "png": str(exp / "samples.png"),
                         "run_dir": str(exp / "cvae")}
    res["data"] = data.name
    print(f"accuracy without {res['accuracy_without']:.4f}, with generated {res['accuracy_with']:.4f}", file=sys.stderr)
    print(json.dumps(res))
    return 0


def cmd_anomaly(args) -> int:
    set_threads(args.threads)
    if not 1 <= args.top <= 1000:
        raise ValueError(f"--top must be 1..1000, got {args.top}")
    if not 0 <= args.iw_samples <= 10_000:
        raise ValueError(f"--iw-samples must be 0..10000, got {args.iw_samples}")
    seconds = None
    if args.run_dir is not None:
        if args.out:
            raise ValueError("give either RUN_DIR (score with it) or --out (train a new run), not both")
        run = load_run(args.run_dir)
        data = load_run_data(args, run)
        model, holdout, run_dir = run.model, args.holdout_class, args.run_dir
        if holdout is None:
            holdout = (run.metrics.anomaly or {}).get("holdout_class")
    else:
        if args.holdout_class is None or args.out is None:
            raise ValueError("to train, give --holdout-class D and --out RUN_DIR (or give a RUN_DIR to score)")
        out = Path(args.out)
        check_out(out)
        args.data = args.data or "mnist5k"
        data = load_data(args, data_config(args))
        if not data.has_labels:
            raise ValueError(f"--holdout-class needs labelled data; {data.name} has no labels")
        if not 0 <= args.holdout_class < data.num_classes:
            raise ValueError(f"--holdout-class must be 0..{data.num_classes - 1}, got {args.holdout_class}")
        cfg = _measured(data, args)
        train_data = without_class(data, args.holdout_class)
        total = steps_for(len(train_data.train), cfg.train.batch_size, args.epochs)
        res = with_progress(total, args.quiet, f"anomaly {data.name} without {args.holdout_class}",
                            lambda callback, cancel: train_run(
                                cfg, train_data, out, callback=callback, cancel=cancel,
                                extra_metrics=lambda r, f: {"anomaly": {"holdout_class": args.holdout_class}}))
        model, holdout, run_dir, seconds = res.model, args.holdout_class, str(out), res.seconds
    if holdout is not None:
        if data.test.y is None:
            raise ValueError("--holdout-class needs labelled test data")
        if not 0 <= holdout < data.num_classes:
            raise ValueError(f"--holdout-class must be 0..{data.num_classes - 1}, got {holdout}")
        out_res = holdout_anomaly(model, data.test, holdout, seed=args.seed, top=args.top,
                                  reference=without_class(data, holdout).train, iw_samples=args.iw_samples)
    else:
        scores = anomaly_scores(model, data.test, seed=args.seed)
        idx = top_anomalies(scores, args.top)
        out_res = {"top_indices": idx.tolist(), "top_scores": scores[idx].tolist(), "scores": scores,
                   "top_labels": data.test.y[idx].tolist() if data.test.y is not None else None}
    scores = out_res.pop("scores")
    out_res.update({"run_dir": run_dir, "data": data.name, "n_test": int(len(scores)),
                    "score": "-ELBO (nats per image)", "mean_score": float(np.mean(scores)),
                    "train_seconds": seconds})
    if args.png:
        from ..usecases.plots import save_sample_grid
        idx = np.asarray(out_res["top_indices"])
        save_sample_grid(data.test.x[idx].numpy(), None, Path(args.png))
        out_res["png"] = args.png
    print(json.dumps(out_res))
    return 0
