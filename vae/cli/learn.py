"""The use cases that train: ``semisup``, ``rd``, ``augment``, ``anomaly``. Each trains through the one
pipeline (``vae.pipeline.train_run``), so its run folders are like any other."""
from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path

import numpy as np

from ..config import ModelConfig, RunConfig, TrainConfig
from ..pipeline import train_run
from ..runs import load_run
from ..usecases import (
    MEASURED_MODEL,
    MEASURED_TRAIN,
    anomaly_scores,
    augmentation,
    balanced_subset,
    holdout_anomaly,
    rate_distortion,
    top_anomalies,
    without_class,
)
from ..usecases import semisup as ss
from ..util import set_threads
from .common import add_data_args, check_out, data_config, load_data, load_run_data, steps_for, with_progress


def labels_arg(text: str) -> int | None:
    if text.strip().lower() == "all":
        return None
    try:
        k = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes a positive integer or 'all', got {text!r}") from None
    if k < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1 or 'all', got {k}")
    return k


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
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.set_defaults(func=cmd_semisup)
    add_data_args(p, default_data="mnist5k")
    p.add_argument("--labels", type=labels_arg, default=100, help="labelled images (balanced per class) or 'all'")
    p.add_argument("--epochs", type=int, default=None,
                   help="M1 (VAE) epochs over all training images (default: 20, or on fewer than 60,000 images as "
                        "many as give MNIST's number of steps, at most 300)")
    p.add_argument("--m2-epochs", type=int, default=0,
                   help="M2 epochs on M1's frozen codes first (Kingma et al.'s M1+M2; the last recipe used 40)")
    p.add_argument("--joint-epochs", type=int, default=None,
                   help="epochs of M1 and M2 trained together: M1's ELBO, M2's objective, the labels' "
                        "cross-entropy reaching M1's encoder, and pseudo-labels from barely shifted to "
                        "distorted views (0 = Kingma et al.'s recipe: M1 stays as it was trained; default: 15, or "
                        "on fewer than 60,000 images as many as give MNIST's number of steps, at most 300)")
    p.add_argument("--augment", type=float, default=1.0,
                   help="strength of the distorted view in the joint epochs: 1 = up to 15 degrees, 15 %% zoom, "
                        "3 px shift at 28 px; 0 = no distortion")
    p.add_argument("--augment-weight", type=float, default=None,
                   help="weight of the distorted views' pseudo-label cross-entropy (default: alpha; 0 = off)")
    p.add_argument("--pseudo-threshold", type=float, default=0.95,
                   help="confidence a weak view's class needs to become a pseudo-label (0-1)")
    p.add_argument("--latent-dim", type=int, default=50, help="M1 latent size (Kingma et al. used 50)")
    p.add_argument("--alpha", type=float, default=None, help="classification weight (default 0.1*N/K)")
    p.add_argument("--consistency", type=float, default=0.0,
                   help="in the --m2-epochs stage: weight of KL(q(y|z1) || q(y|z1')) between two posterior draws "
                        "of each unlabelled image")
    p.add_argument("--label-seed", type=int, default=None,
                   help="seed of the labelled subset (default --seed); with --m1-from, subsets share one M1")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="CPU threads, 0 = all cores")
    p.add_argument("--m1-from", default=None,
                   help="reuse the M1 (VAE) of an earlier semisup run on the same data: M1 never sees labels, so one "
                        "M1 serves every label budget; its minutes are reported as m1_minutes_reused")
    p.add_argument("--no-baseline", action="store_true", help="skip the raw-pixel logistic regression baseline")
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


def cmd_semisup(args) -> int:
    out = Path(args.out)
    check_out(out)
    if args.epochs is not None and args.epochs < 1:
        raise ValueError(f"--epochs must be >= 1, got {args.epochs}")
    if args.m2_epochs < 0 or (args.joint_epochs is not None and (
            args.joint_epochs < 0 or args.m2_epochs + args.joint_epochs < 1)):
        raise ValueError(f"--m2-epochs and --joint-epochs must be >= 0 with at least one epoch in all, got "
                         f"{args.m2_epochs} and {args.joint_epochs}")
    if not 0 <= args.augment <= 3:
        raise ValueError(f"--augment must be between 0 and 3, got {args.augment}")
    if args.augment_weight is not None and args.augment_weight < 0:
        raise ValueError(f"--augment-weight must be >= 0, got {args.augment_weight}")
    if not 0 < args.pseudo_threshold <= 1:
        raise ValueError(f"--pseudo-threshold must be in (0, 1], got {args.pseudo_threshold}")
    set_threads(args.threads)
    data_cfg = data_config(args)
    data = load_data(args, data_cfg)
    if not data.has_labels:
        raise ValueError(f"semisup needs labelled data; {data.name} has no labels")
    label_seed = args.seed if args.label_seed is None else args.label_seed
    try:
        balanced_subset(data.train.y, args.labels, label_seed)  # refuse a bad --labels before training starts
    except ValueError as e:
        raise ValueError(f"--labels: {e}") from None
    if args.consistency < 0:
        raise ValueError(f"--consistency must be >= 0, got {args.consistency}")
    m1_epochs, joint_epochs = ss.recipe_epochs(len(data.train))
    args.epochs = m1_epochs if args.epochs is None else args.epochs
    args.joint_epochs = joint_epochs if args.joint_epochs is None else args.joint_epochs
    config = ss.default_semisup_config(data, epochs=args.epochs, seed=args.seed, threads=args.threads,
                                       latent_dim=args.latent_dim, data_cfg=data_cfg)
    m1 = m1_hist = m1_reused_seconds = None
    if args.m1_from:
        prev = load_run(args.m1_from)
        if prev.config.kind != "semisup" or prev.config.model != config.model or prev.config.train != config.train \
                or prev.config.data != config.data:
            raise ValueError(f"--m1-from {args.m1_from}: its M1 was trained with a different data/model/train config")
        prev_joint = (prev.metrics.get("semisup") or {}).get("joint_epochs") or 0
        if prev_joint:
            raise ValueError(f"--m1-from {args.m1_from}: its M1 was trained further with labels ({prev_joint} joint "
                             "epochs); reuse a run made with --joint-epochs 0, whose M1 never saw a label")
        m1, m1_hist = prev.model, prev.metrics.get("history")
        m1_reused_seconds = (prev.metrics.get("semisup") or {}).get("m1_seconds")
    trainer = functools.partial(ss.fit_semisup, labels=args.labels, m2_epochs=args.m2_epochs,
                                joint_epochs=args.joint_epochs, alpha=args.alpha, consistency=args.consistency,
                                augment=args.augment, augment_weight=args.augment_weight,
                                pseudo_threshold=args.pseudo_threshold, label_seed=label_seed, m1=m1,
                                m1_history=m1_hist)

    def figures(res, final) -> dict:
        err = ss.error_rate(res.model, data.test)
        base = None if args.no_baseline else ss.pixel_baseline(data, res.labelled, seed=args.seed)
        return {"test_error": err, "semisup": {
            "method": "M1+M2 (Kingma et al. 2014)" + (", then trained together" if args.joint_epochs else ""),
            "labels": int(len(res.labelled)),
            "labels_requested": args.labels if args.labels is not None else "all", "m2_epochs": args.m2_epochs,
            "joint_epochs": args.joint_epochs, "augment": args.augment, "augment_weight": args.augment_weight,
            "pseudo_threshold": args.pseudo_threshold,
            "m1_epochs": args.epochs, "alpha": args.alpha, "consistency": args.consistency,
            "label_seed": label_seed, "test_error": err,
            "baseline": base,
            "m1_seconds": res.m1_seconds if m1 is None else m1_reused_seconds, "m1_from": args.m1_from,
            "seconds": res.seconds, "m2_history": res.m2_history,
            "labelled_indices": res.labelled.tolist() if len(res.labelled) <= 5000 else None}}

    res = with_progress(None, args.quiet, f"semisup {data.name} k={args.labels or 'all'}",
                        lambda callback, cancel: train_run(config, data, out, callback=callback, cancel=cancel,
                                                           trainer=trainer, extra_metrics=figures))
    s = res.metrics["semisup"]
    summary = {"run_dir": str(out), "status": res.status, "labels": s["labels"], "test_error": s["test_error"],
               "baseline_test_error": s["baseline"]["test_error"] if s["baseline"] else None,
               "minutes": round(res.seconds / 60, 2), "m1_minutes": round((s["m1_seconds"] or 0) / 60, 2),
               "m1_from": args.m1_from,
               "m1_minutes_reused": round(m1_reused_seconds / 60, 2) if m1_reused_seconds else None,
               "m2_epochs": args.m2_epochs, "joint_epochs": args.joint_epochs, "augment": args.augment,
               "augment_weight": args.augment_weight, "consistency": args.consistency,
               "label_seed": label_seed,
               "threads": config.train.threads or None, "n_train": len(data.train),
               "n_test": len(data.test)}
    if res.status == "failed":
        print(f"error: {res.message}", file=sys.stderr)
    print(json.dumps(summary))
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
            holdout = (run.metrics.get("anomaly") or {}).get("holdout_class")
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
