"""Command-line entries for the use cases: semisup, probe, compress, rd, augment, anomaly, doctor.

Registered into ``vae.cli`` (same conventions: exit 2 and one ``error:`` line on bad input, one
JSON object as the last stdout line, a progress bar on stderr unless ``--quiet``).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from .cli import _add_data_args, _data_config, _load_data, _progress


def _labels_arg(text: str) -> int | None:
    if text.strip().lower() == "all":
        return None
    try:
        k = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--labels takes a positive integer or 'all', got {text!r}")
    if k < 1:
        raise argparse.ArgumentTypeError(f"--labels must be >= 1 or 'all', got {k}")
    return k


def _floats(text: str) -> list[float]:
    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers like 0.5,1,2,4, got {text!r}")
    if not vals:
        raise argparse.ArgumentTypeError("expected at least one number")
    return vals


def _budgets(text: str) -> list[int | None]:
    return [_labels_arg(v) for v in text.split(",") if v.strip()]


def _check_out(out: Path) -> None:
    from .cli import check_out
    check_out(out)


def _run_in_thread(fn):
    from .cli import run_in_thread
    return run_in_thread(fn)


def _bar_callback(total: int, quiet: bool, desc: str):
    bar = _progress(total, quiet)
    bar.set_description(desc)

    def on_event(e: dict) -> None:
        if e["type"] in ("step", "m2_step"):
            bar.update(1)
        if e["type"] == "epoch" and e.get("test"):
            bar.set_postfix_str(f"ep {e['epoch']} test -ELBO {e['test']['neg_elbo']:.1f}", refresh=False)
        if e["type"] == "m2_epoch":
            bar.set_postfix_str(f"M2 ep {e['epoch']} test error {e['test_error']:.4f}", refresh=False)
    return bar, on_event


def _load_run_data(args, run):
    data = _load_data(args, _data_config(args, base=run.config.data))
    m = run.config.model
    if (data.channels, data.image_size) != (m.channels, m.image_size):
        raise ValueError(f"data {data.name} has {data.channels}x{data.image_size}x{data.image_size} images, the run "
                         f"expects {m.channels}x{m.image_size}x{m.image_size}")
    return data


# ------------------------------------------------------------------------------------------ parsers

def add_parsers(sub) -> None:
    ss = sub.add_parser("semisup", help="semi-supervised classifier (M1+M2) with K labels; saves a run folder",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _add_data_args(ss, default_data="mnist5k")
    ss.add_argument("--labels", type=_labels_arg, default=100, help="labelled images (balanced per class) or 'all'")
    ss.add_argument("--epochs", type=int, default=10, help="M1 (VAE) epochs over all training images")
    ss.add_argument("--m2-epochs", type=int, default=20, help="M2 epochs over the latent codes")
    ss.add_argument("--latent-dim", type=int, default=50, help="M1 latent size (Kingma et al. used 50)")
    ss.add_argument("--alpha", type=float, default=None, help="classification weight (default 0.1*N/K)")
    ss.add_argument("--seed", type=int, default=0)
    ss.add_argument("--threads", type=int, default=0, help="CPU threads, 0 = all cores")
    ss.add_argument("--m1-from", default=None,
                    help="reuse the M1 (VAE) of an earlier semisup run on the same data: M1 never sees labels, so one "
                         "M1 serves every label budget; its minutes are reported as m1_minutes_reused")
    ss.add_argument("--no-baseline", action="store_true", help="skip the raw-pixel logistic regression baseline")
    ss.add_argument("--out", required=True, help="run folder to write")
    ss.add_argument("--quiet", action="store_true")

    pr = sub.add_parser("probe", help="linear probe on latent means vs raw pixels by label budget")
    pr.add_argument("run_dir")
    _add_data_args(pr, default_data=None)
    pr.add_argument("--budgets", type=_budgets, default=[100, 600, 1000, 10000], help="comma-separated, 'all' allowed")
    pr.add_argument("--seed", type=int, default=0)
    pr.add_argument("--threads", type=int, default=0)

    cp = sub.add_parser("compress", help="bits/dim of the VAE bound beside PNG and gzip")
    cp.add_argument("run_dir")
    _add_data_args(cp, default_data=None)
    cp.add_argument("--n", type=int, default=1000, help="test images to code")
    cp.add_argument("--iw-samples", type=int, default=100)
    cp.add_argument("--seed", type=int, default=0)
    cp.add_argument("--threads", type=int, default=0)

    rd = sub.add_parser("rd", help="rate-distortion sweep: one trained run per beta")
    _add_data_args(rd, default_data="mnist5k")
    rd.add_argument("--betas", type=_floats, default=[0.25, 0.5, 1.0, 2.0, 4.0, 8.0])
    rd.add_argument("--epochs", type=int, default=3)
    rd.add_argument("--latent-dim", type=int, default=20)
    rd.add_argument("--seed", type=int, default=0)
    rd.add_argument("--threads", type=int, default=0)
    rd.add_argument("--out", required=True, help="folder for the runs (one sub-folder per beta)")
    rd.add_argument("--plot", default=None, help="PNG of the curve to write")
    rd.add_argument("--quiet", action="store_true")

    au = sub.add_parser("augment", help="classifier on K labels with and without conditional-VAE samples")
    _add_data_args(au, default_data="mnist5k")
    au.add_argument("--labels", type=int, default=100)
    au.add_argument("--per-class", type=int, default=200, help="generated images per class")
    au.add_argument("--cvae-epochs", type=int, default=300)
    au.add_argument("--latent-dim", type=int, default=2,
                    help="CVAE latent size: small, so that the label (not z) must carry the class")
    au.add_argument("--temperature", type=float, default=1.0, help="prior temperature of the generated samples")
    au.add_argument("--seed", type=int, default=0)
    au.add_argument("--threads", type=int, default=0)
    au.add_argument("--export", default=None, help="folder to write samples.npz and samples.png (and the CVAE run)")
    au.add_argument("--quiet", action="store_true")

    an = sub.add_parser("anomaly", help="per-image -ELBO anomaly scores; with --holdout-class, train without it "
                                        "and report its AUROC")
    an.add_argument("run_dir", nargs="?", default=None, help="score with an existing run (no training)")
    _add_data_args(an, default_data=None)
    an.add_argument("--holdout-class", type=int, default=None, help="class left out of training; AUROC of it vs rest")
    an.add_argument("--epochs", type=int, default=10)
    an.add_argument("--latent-dim", type=int, default=20)
    an.add_argument("--top", type=int, default=16, help="most anomalous test images to list")
    an.add_argument("--png", default=None, help="PNG grid of the most anomalous test images")
    an.add_argument("--seed", type=int, default=0)
    an.add_argument("--threads", type=int, default=0)
    an.add_argument("--out", default=None, help="run folder to write when training")
    an.add_argument("--quiet", action="store_true")

    dr = sub.add_parser("doctor", help="read a run's history and flag problems, with the change to try")
    dr.add_argument("run_dir")
    _add_data_args(dr, default_data=None)
    dr.add_argument("--no-data", action="store_true", help="judge from the history only (no reconstructions)")


# ----------------------------------------------------------------------------------------- commands

def cmd_semisup(args) -> int:
    from .runs import save_run
    from .semisup import default_semisup_config, error_rate, fit_semisup, pixel_baseline
    from .util import set_threads
    out = Path(args.out)
    _check_out(out)
    if args.m2_epochs < 1:
        raise ValueError(f"--m2-epochs must be >= 1, got {args.m2_epochs}")
    set_threads(args.threads)
    data_cfg = _data_config(args)
    data = _load_data(args, data_cfg)
    if not data.has_labels:
        raise ValueError(f"semisup needs labelled data; {data.name} has no labels")
    from .semisup import labelled_indices
    labelled_indices(data.train.y, args.labels, args.seed)  # refuse a bad --labels before training starts
    config = default_semisup_config(data, epochs=args.epochs, seed=args.seed, threads=args.threads,
                                    latent_dim=args.latent_dim, data_cfg=data_cfg)
    n = data.train.x.shape[0]
    m1 = m1_hist = None
    m1_reused_seconds = None
    if args.m1_from:
        from .runs import load_run
        prev = load_run(args.m1_from)
        if prev.config.kind != "semisup" or prev.config.model != config.model or prev.config.train != config.train \
                or prev.config.data != config.data:
            raise ValueError(f"--m1-from {args.m1_from}: its M1 was trained with a different data/model/train config")
        m1, m1_hist = prev.model, prev.metrics.get("history")
        m1_reused_seconds = (prev.metrics.get("semisup") or {}).get("m1_seconds")
    total = (0 if m1 is not None else math.ceil(n / min(config.train.batch_size, n)) * args.epochs) + \
        math.ceil(n / min(100, n)) * args.m2_epochs
    bar, on_event = _bar_callback(total, args.quiet, f"semisup {data.name} k={args.labels or 'all'}")
    t0 = time.perf_counter()
    try:
        res = _run_in_thread(lambda cancel: fit_semisup(config, data, labels=args.labels, m2_epochs=args.m2_epochs,
                                                        alpha=args.alpha, callback=on_event, cancel=cancel,
                                                        m1=m1, m1_history=m1_hist))
    finally:
        bar.close()
    err = error_rate(res.model, data.test)
    from .evaluate import evaluate
    final = evaluate(res.model, data.test, seed=args.seed)
    base = None if args.no_baseline else pixel_baseline(data, res.labelled, seed=args.seed)
    semisup = {"method": "M1+M2 (Kingma et al. 2014)", "labels": int(len(res.labelled)),
               "labels_requested": args.labels if args.labels is not None else "all", "m2_epochs": args.m2_epochs,
               "m1_epochs": args.epochs, "alpha": args.alpha, "test_error": err, "baseline": base,
               "m1_seconds": res.m1_seconds if m1 is None else m1_reused_seconds, "m1_from": args.m1_from,
               "seconds": res.seconds, "m2_history": res.m2_history,
               "labelled_indices": res.labelled.tolist() if len(res.labelled) <= 5000 else None}
    metrics = {"status": res.status, "message": res.message, "seconds": res.seconds, "n_train": int(n),
               "history": res.history, "final": final, "test_error": err, "semisup": semisup,
               "data": {"name": data.name, "source": data.source, "class_names": data.class_names}}
    save_run(out, res.model, config, metrics)
    summary = {"run_dir": str(out), "status": res.status, "labels": int(len(res.labelled)), "test_error": err,
               "baseline_test_error": base["test_error"] if base else None,
               "minutes": round(res.seconds / 60, 2), "m1_minutes": round(res.m1_seconds / 60, 2),
               "m1_from": args.m1_from,
               "m1_minutes_reused": round(m1_reused_seconds / 60, 2) if m1_reused_seconds else None,
               "m2_epochs": args.m2_epochs,
               "threads": config.train.threads or None, "n_train": int(n), "n_test": int(data.test.x.shape[0])}
    if res.status == "failed":
        print(f"error: {res.message}", file=sys.stderr)
    print(json.dumps(summary))
    return 0 if res.status != "failed" else 1


def cmd_probe(args) -> int:
    from .runs import load_run
    from .usecases import linear_probe
    from .util import set_threads
    set_threads(args.threads)
    run = load_run(args.run_dir)
    data = _load_run_data(args, run)
    res = linear_probe(run.model, data, budgets=args.budgets, seed=args.seed)
    res.update({"run_dir": args.run_dir, "data": data.name})
    for r in res["rows"]:
        print(f"{r['labels']:>6} labels  latent {r['latent_accuracy']:.4f}  pixels {r['pixel_accuracy']:.4f}",
              file=sys.stderr)
    print(json.dumps(res))
    return 0


def cmd_compress(args) -> int:
    from .runs import load_run
    from .usecases import compression
    from .util import set_threads
    set_threads(args.threads)
    if not 1 <= args.n <= 100_000:
        raise ValueError(f"--n must be 1..100000, got {args.n}")
    run = load_run(args.run_dir)
    if run.config.model.conditional:
        raise ValueError("compress needs an unconditional run (a conditional one would need the labels sent too)")
    data = _load_run_data(args, run)
    res = compression(run.model, data.test, iw_samples=args.iw_samples, max_images=args.n, seed=args.seed)
    res.update({"run_dir": args.run_dir, "data": data.name})
    print(json.dumps(res))
    return 0


def cmd_rd(args) -> int:
    from .config import ModelConfig, RunConfig, TrainConfig
    from .usecases import MEASURED_MODEL, MEASURED_TRAIN, rate_distortion
    from .util import set_threads
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is not a folder")
    set_threads(args.threads)
    data_cfg = _data_config(args)
    data = _load_data(args, data_cfg)
    base = RunConfig(model=ModelConfig(channels=data.channels, image_size=data.image_size, latent_dim=args.latent_dim,
                                       **MEASURED_MODEL),
                     train=TrainConfig(epochs=args.epochs, seed=args.seed, threads=args.threads, **MEASURED_TRAIN),
                     data=data_cfg)
    n = data.train.x.shape[0]
    total = math.ceil(n / min(base.train.batch_size, n)) * args.epochs * len(args.betas)
    bar, on_event = _bar_callback(total, args.quiet, f"rd {data.name} {len(args.betas)} betas")
    try:
        res = _run_in_thread(lambda cancel: rate_distortion(data, args.betas, base=base, out_root=out,
                                                            callback=on_event, cancel=cancel))
    finally:
        bar.close()
    res["data"] = data.name
    if args.plot:
        from .usecase_plots import plot_rd
        plot_rd(res, args.plot)
        res["plot"] = args.plot
    print(json.dumps(res))
    return 0


def cmd_augment(args) -> int:
    import numpy as np
    from .usecases import augmentation
    from .util import set_threads
    set_threads(args.threads)
    data_cfg = _data_config(args)
    data = _load_data(args, data_cfg)
    if not 1 <= args.per_class <= 10_000:
        raise ValueError(f"--per-class must be 1..10000, got {args.per_class}")
    bar, on_event = _bar_callback(args.cvae_epochs * math.ceil(max(1, args.labels) / 64), args.quiet,
                                  f"augment {data.name} k={args.labels}")
    try:
        res = _run_in_thread(lambda cancel: augmentation(data, labels=args.labels, per_class=args.per_class,
                                                         cvae_epochs=args.cvae_epochs, seed=args.seed,
                                                         latent_dim=args.latent_dim, temperature=args.temperature,
                                                         threads=args.threads, callback=on_event, cancel=cancel))
    finally:
        bar.close()
    samples, model, config = res.pop("samples"), res.pop("model"), res.pop("config")
    if args.export:
        exp = Path(args.export)
        exp.mkdir(parents=True, exist_ok=True)
        from .usecase_plots import save_npz, save_sample_grid
        save_npz(exp / "samples.npz", x=samples["x"], y=samples["y"])
        save_sample_grid(samples["x"], samples["y"], exp / "samples.png", per_class=10)
        from .runs import save_run
        save_run(exp / "cvae", model, config, {"status": "completed", "augmentation": res})
        res["export"] = {"npz": str(exp / "samples.npz"), "png": str(exp / "samples.png"), "run_dir": str(exp / "cvae")}
    res["data"] = data.name
    print(f"accuracy without {res['accuracy_without']:.4f}, with generated {res['accuracy_with']:.4f}", file=sys.stderr)
    print(json.dumps(res))
    return 0


def cmd_anomaly(args) -> int:
    import numpy as np
    from .config import ModelConfig, RunConfig, TrainConfig
    from .runs import load_run, save_run
    from .train import fit
    from .usecases import (MEASURED_MODEL, MEASURED_TRAIN, anomaly_scores, holdout_anomaly, holdout_auroc,
                           top_anomalies, without_class)
    from .util import set_threads
    set_threads(args.threads)
    if not 1 <= args.top <= 1000:
        raise ValueError(f"--top must be 1..1000, got {args.top}")
    if args.run_dir is not None:
        if args.out:
            raise ValueError("give either RUN_DIR (score with it) or --out (train a new run), not both")
        run = load_run(args.run_dir)
        data = _load_run_data(args, run)
        model, holdout, run_dir, seconds = run.model, args.holdout_class, args.run_dir, None
        if holdout is None:
            holdout = (run.metrics.get("anomaly") or {}).get("holdout_class")
    else:
        if args.holdout_class is None or args.out is None:
            raise ValueError("to train, give --holdout-class D and --out RUN_DIR (or give a RUN_DIR to score)")
        out = Path(args.out)
        _check_out(out)
        if args.data is None:
            args.data = "mnist5k"
        data_cfg = _data_config(args)
        data = _load_data(args, data_cfg)
        train_data = without_class(data, args.holdout_class)
        cfg = RunConfig(model=ModelConfig(channels=data.channels, image_size=data.image_size,
                                          latent_dim=args.latent_dim, **MEASURED_MODEL),
                        train=TrainConfig(epochs=args.epochs, seed=args.seed, threads=args.threads, **MEASURED_TRAIN),
                        data=data_cfg)
        n = train_data.train.x.shape[0]
        bar, on_event = _bar_callback(math.ceil(n / min(cfg.train.batch_size, n)) * args.epochs, args.quiet,
                                      f"anomaly {data.name} without {args.holdout_class}")
        try:
            res = _run_in_thread(lambda cancel: fit(cfg, train_data, callback=on_event, cancel=cancel))
        finally:
            bar.close()
        from .evaluate import evaluate
        model, holdout, run_dir, seconds = res.model, args.holdout_class, str(out), res.seconds
        final = evaluate(model, data.test, seed=args.seed)
        save_run(out, model, cfg, {"status": res.status, "message": res.message, "seconds": res.seconds,
                                   "n_train": int(n), "history": res.history, "final": final,
                                   "anomaly": {"holdout_class": holdout}})
    if holdout is not None:
        if data.test.y is None:
            raise ValueError("--holdout-class needs labelled test data")
        if not 0 <= holdout < data.num_classes:
            raise ValueError(f"--holdout-class must be 0..{data.num_classes - 1}, got {holdout}")
        out_res = holdout_anomaly(model, data.test, holdout, seed=args.seed, top=args.top)
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
        from .usecase_plots import save_sample_grid
        idx = np.asarray(out_res["top_indices"])
        save_sample_grid(data.test.x[idx].numpy(), None, Path(args.png))
        out_res["png"] = args.png
    print(json.dumps(out_res))
    return 0


def cmd_doctor(args) -> int:
    from .doctor import diagnose, train_command
    from .runs import load_run
    run = load_run(args.run_dir)
    test = None
    if not args.no_data:
        from .config import replace as cfg_replace
        base = run.config.data
        if args.max_test is None:
            base = cfg_replace(base, max_test=min(base.max_test or 500, 500))
        data = _load_data(args, _data_config(args, base=base))
        test = data.test
    findings = diagnose(run.metrics, run.config, model=run.model, test=test)
    from .doctor import apply_changes
    for f in findings:
        try:
            cfg = apply_changes(run.config, f["suggested_changes"])
            f["command"] = " ".join(train_command(cfg, str(Path(args.run_dir).with_name(
                Path(args.run_dir).name + "-" + f["code"]))))
        except Exception as e:  # a suggestion that does not validate is reported, not fatal
            f["command"] = None
            f["command_error"] = str(e)
        print(f"[{f['severity']}] {f['code']}: {f['title']}\n  -> {f['advice']}", file=sys.stderr)
    if not findings:
        print("no problems found", file=sys.stderr)
    print(json.dumps({"run_dir": args.run_dir, "healthy": not findings, "findings": findings}))
    return 0


COMMANDS = {"semisup": cmd_semisup, "probe": cmd_probe, "compress": cmd_compress, "rd": cmd_rd,
            "augment": cmd_augment, "anomaly": cmd_anomaly, "doctor": cmd_doctor}
