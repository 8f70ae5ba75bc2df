"""The commands that read a trained run: ``probe``, ``compress``, ``doctor``, ``export``."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ..bundle import export_run
from ..config import replace as cfg_replace
from ..data import ImageData
from ..runs import Run, load_run
from ..usecases import DEFAULT_BUDGETS, compression, doctor, linear_probe
from ..util import set_threads
from .common import add_data_args, data_config, load_data, load_run_data
from .options import labels_arg
from .train import args_for


def budgets(text: str) -> list[int | None]:
    return [labels_arg(v) for v in text.split(",") if v.strip()]


def register(sub) -> None:
    p = sub.add_parser("probe", help="linear probe on latent means vs raw pixels by label budget")
    p.set_defaults(func=cmd_probe)
    p.add_argument("run_dir")
    add_data_args(p, default_data=None)
    p.add_argument("--budgets", type=budgets, default=list(DEFAULT_BUDGETS), help="comma-separated, 'all' allowed")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)

    p = sub.add_parser("compress", help="bits/dim of the VAE bound beside PNG and gzip")
    p.set_defaults(func=cmd_compress)
    p.add_argument("run_dir")
    add_data_args(p, default_data=None)
    p.add_argument("--n", type=int, default=1000, help="test images to code")
    p.add_argument("--iw-samples", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)

    p = sub.add_parser("doctor", help="read a run's history and flag problems, with the change to try")
    p.set_defaults(func=cmd_doctor)
    p.add_argument("run_dir")
    add_data_args(p, default_data=None)
    p.add_argument("--no-data", action="store_true", help="judge from the history only (no reconstructions)")

    p = sub.add_parser("export", help="the run as a zip, test codes as CSV, the map as PNG, an Embedding Projector "
                                      "folder")
    p.set_defaults(func=cmd_export)
    p.add_argument("run_dir")
    p.add_argument("--to", required=True, help="folder to write into (created if missing)")
    add_data_args(p, default_data=None)
    p.add_argument("--no-data", action="store_true", help="only the run's zip (no test images needed)")
    p.add_argument("--n", type=int, default=10_000, help="test images to encode (1..100000)")


def cmd_probe(args) -> int:
    set_threads(args.threads)
    run = load_run(args.run_dir)
    data = load_run_data(args, run)
    res = linear_probe(run.model, data, budgets=args.budgets, seed=args.seed)
    res.update({"run_dir": args.run_dir, "data": data.name})
    for r in res["rows"]:
        print(f"{r['labels']:>6} labels  latent {r['latent_accuracy']:.4f}  pixels {r['pixel_accuracy']:.4f}",
              file=sys.stderr)
    print(json.dumps(res))
    return 0


def cmd_compress(args) -> int:
    set_threads(args.threads)
    if not 1 <= args.n <= 100_000:
        raise ValueError(f"--n must be 1..100000, got {args.n}")
    run = load_run(args.run_dir)
    if run.config.model.conditional:
        raise ValueError("compress needs an unconditional run (a conditional one would need the labels sent too)")
    data = load_run_data(args, run)
    res = compression(run.model, data.test, iw_samples=args.iw_samples, max_images=args.n, seed=args.seed)
    res.update({"run_dir": args.run_dir, "data": data.name})
    print(json.dumps(res))
    return 0


def diagnose_run(run: Run, test: ImageData | None, out_stem: str | Path) -> list[dict]:
    """``vae.usecases.doctor.diagnose`` on ``run`` (its reconstructions of ``test`` too, when given), each finding
    with ``command``: the ``python -m vae train`` line of the run it suggests, written to ``<out_stem>-<code>``
    (or ``command_error`` when the suggestion does not validate)."""
    findings = doctor.diagnose(run.metrics, run.config, model=None if test is None else run.model, test=test)
    for f in findings:
        try:
            cfg = doctor.apply_changes(run.config, f["suggested_changes"])
            out = f"{out_stem}-{f['code']}"
            named = {section: set(changes) for section, changes in f["suggested_changes"].items()}
            f["command"] = " ".join(["python", "-m", "vae", "train", *args_for(cfg, always=named), "--out", out])
        except ValueError as e:
            f["command"], f["command_error"] = None, str(e)
    return findings


def cmd_doctor(args) -> int:
    run = load_run(args.run_dir)
    test = None
    if not args.no_data:
        base = run.config.data
        if args.max_test is None:
            base = cfg_replace(base, max_test=min(base.max_test or 500, 500))
        test = load_data(args, data_config(args, base=base)).test
    findings = diagnose_run(run, test, Path(args.run_dir))
    for f in findings:
        print(f"[{f['severity']}] {f['code']}: {f['title']}\n  -> {f['advice']}", file=sys.stderr)
    if not findings:
        print("no problems found", file=sys.stderr)
    print(json.dumps({"run_dir": args.run_dir, "healthy": not findings, "findings": findings}))
    return 0


def cmd_export(args) -> int:
    if not 1 <= args.n <= 100_000:
        raise ValueError(f"--n must be 1..100000, got {args.n}")
    run = load_run(args.run_dir)
    data = None if args.no_data else load_run_data(args, run)
    res = export_run(run, None if data is None else data.test, None if data is None else data.class_names, args.to,
                     max_images=args.n)
    for f in res["files"]:
        print(f, file=sys.stderr)
    res.update({"run_dir": args.run_dir, "data": None if data is None else data.name})
    print(json.dumps(res))
    return 0
