"""The command line: ``python -m vae {datasets,train,eval,sample} ...`` and the use cases
(``semisup, probe, compress, rd, augment, anomaly, doctor``, in ``vae/cli_usecases.py``).

Exit code 0 on success; on bad input, exit code 2 and one line on stderr starting with
``error:`` (no traceback). Commands that compute something print one JSON object as the
last line of stdout, so scripts can read it with ``tail -n 1``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any, Sequence

from . import __version__

EXIT_BAD_INPUT = 2


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, no usage dump
        raise UsageError(f"{message} (see python -m vae {self.prog.split()[-1]} --help)"
                         if " " in self.prog else message)


def _widths(text: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes comma-separated integers like 512,256, got {text!r}")
    if not vals:
        raise argparse.ArgumentTypeError("needs at least one width")
    return vals


def _decoder_widths(text: str) -> tuple[int, ...]:
    return () if text.strip().lower() == "mirror" else _widths(text)


def _add_data_args(p: argparse.ArgumentParser, *, default_data: str | None) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--data", default=default_data,
                   help="built-in name (see `python -m vae datasets`) or a path to an .npz, a .zip or a folder of images")
    g.add_argument("--data-dir", default=None,
                   help="folder with torchvision-layout data sets (default: $VAE_LAB_DATA_DIR or ~/.cache/vae-lab/data)")
    g.add_argument("--image-size", type=int, default=None, help="resize images to this side (8..64)")
    g.add_argument("--color", choices=["grey", "rgb"], default=None, help="convert images to grey or RGB")
    g.add_argument("--test-fraction", type=float, default=None, help="held-out share when the data has no test split")
    g.add_argument("--max-train", type=int, default=None, help="use at most this many training images")
    g.add_argument("--max-test", type=int, default=None, help="use at most this many test images")
    g.add_argument("--max-files", type=int, default=None, help="limit: files in a zip or folder")
    g.add_argument("--max-file-mb", type=float, default=None, help="limit: size of an upload on disk, MB")
    g.add_argument("--max-uncompressed-mb", type=float, default=None,
                   help="limit: declared uncompressed size of a zip or npz, MB")
    g.add_argument("--max-image-pixels", type=int, default=None, help="limit: pixels in one source image")


def build_parser() -> argparse.ArgumentParser:
    from .config import ModelConfig, TrainConfig
    from .data import DEFAULT_DATASET
    m, t = ModelConfig(), TrainConfig()
    p = _Parser(prog="python -m vae", description="VAE Lab: train and inspect variational autoencoders.")
    p.add_argument("--version", action="version", version=f"vae-lab {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("datasets", help="list the data sets and where each comes from")

    tr = sub.add_parser("train", help="train a VAE and save a run folder",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _add_data_args(tr, default_data=DEFAULT_DATASET)
    g = tr.add_argument_group("model")
    g.add_argument("--model", choices=["mlp", "conv"], default=m.arch)
    g.add_argument("--hidden", type=_widths, default=None,
                   help=f"mlp: hidden widths (default {','.join(map(str, m.hidden))}); conv: channels per layer "
                        "(default 32,64)")
    g.add_argument("--decoder-hidden", type=_decoder_widths, default=None,
                   help=f"mlp: the decoder's widths from z outward, or 'mirror' for the reverse of --hidden "
                        f"(default {','.join(map(str, m.decoder_hidden))} with the default --hidden, else mirror)")
    g.add_argument("--fc-dim", type=int, default=m.fc_dim, help="conv: dense layer width")
    g.add_argument("--activation", choices=["relu", "elu", "silu", "leaky_relu"], default=m.activation)
    g.add_argument("--latent-dim", type=int, default=m.latent_dim)
    g.add_argument("--likelihood", choices=["bernoulli", "gaussian"], default=m.likelihood)
    g.add_argument("--sigma", type=float, default=m.gaussian_sigma, help="gaussian: fixed sigma")
    g.add_argument("--learn-sigma", action="store_true", help="gaussian: learn sigma per channel")
    g.add_argument("--conditional", action="store_true", help="conditional VAE: encoder and decoder see the label")
    g = tr.add_argument_group("training")
    g.add_argument("--epochs", type=int, default=t.epochs)
    g.add_argument("--batch-size", type=int, default=t.batch_size)
    g.add_argument("--lr", type=float, default=t.lr)
    g.add_argument("--lr-schedule", choices=["constant", "cosine"], default=t.lr_schedule)
    g.add_argument("--lr-warmup", type=float, default=t.lr_warmup,
                   help="share of the run (0..0.5) over which the learning rate ramps up linearly from near 0")
    g.add_argument("--beta", type=float, default=t.beta, help="KL weight")
    g.add_argument("--warmup", type=float, default=t.warmup_epochs, help="KL warm-up, epochs")
    g.add_argument("--free-bits", type=float, default=t.free_bits, help="nats per latent dim")
    g.add_argument("--grad-clip", type=float, default=t.grad_clip, help="max gradient norm, 0 = off")
    g.add_argument("--weight-decay", type=float, default=t.weight_decay)
    g.add_argument("--binarize", action="store_true", help="dynamic binarisation of the pixels")
    g.add_argument("--seed", type=int, default=t.seed)
    g.add_argument("--threads", type=int, default=t.threads, help="CPU threads, 0 = all cores")
    g.add_argument("--device", default=t.device, help="auto, cpu, cuda or mps")
    g.add_argument("--time-budget", type=float, default=t.time_budget,
                   help="train for at most this many seconds (0 = off); the lr schedule follows the clock")
    g.add_argument("--no-bias-init", action="store_true",
                   help="start the decoder's output bias at 0 (torch's init) instead of the mean pixel's logit")
    g.add_argument("--no-test-eval", action="store_true", help="skip the per-epoch test evaluation")
    g.add_argument("--iw-samples", type=int, default=0, help="importance samples for the final log p(x)")
    tr.add_argument("--out", default=None, help="run folder to write (default runs/<data>-<model>-<latent>d-<time>)")
    tr.add_argument("--quiet", action="store_true", help="no progress bar")

    ev = sub.add_parser("eval", help="evaluate a run on held-out data; prints one JSON object")
    ev.add_argument("run_dir")
    _add_data_args(ev, default_data=None)
    ev.add_argument("--iw-samples", type=int, default=0, help="importance samples K for log p(x); >1 adds nll_iw")
    ev.add_argument("--batch-size", type=int, default=500)
    ev.add_argument("--seed", type=int, default=0)

    sm = sub.add_parser("sample", help="write a grid of images sampled from the prior")
    sm.add_argument("run_dir")
    sm.add_argument("--n", type=int, default=64)
    sm.add_argument("--out", required=True, help="PNG file to write")
    sm.add_argument("--seed", type=int, default=0)
    sm.add_argument("--label", type=int, default=None, help="conditional runs: the class (default: all, in rows)")
    sm.add_argument("--temperature", type=float, default=1.0)
    sm.add_argument("--scale", type=int, default=2, help="nearest-neighbour upscaling of the grid")
    return p


def _limits(args) -> Any:
    from .data import Limits
    kw = {}
    if getattr(args, "max_files", None) is not None:
        kw["max_files"] = args.max_files
    if getattr(args, "max_file_mb", None) is not None:
        kw["max_file_bytes"] = int(args.max_file_mb * (1 << 20))
    if getattr(args, "max_uncompressed_mb", None) is not None:
        kw["max_uncompressed_bytes"] = int(args.max_uncompressed_mb * (1 << 20))
    if getattr(args, "max_image_pixels", None) is not None:
        kw["max_image_pixels"] = args.max_image_pixels
    return Limits(**kw)


def _load_data(args, data_cfg):
    from .data import load_dataset
    return load_dataset(data_cfg.name, data_dir=args.data_dir, image_size=data_cfg.image_size, color=data_cfg.color,
                        test_fraction=data_cfg.test_fraction, seed=data_cfg.split_seed, limits=_limits(args),
                        max_train=data_cfg.max_train, max_test=data_cfg.max_test)


def _data_config(args, base=None):
    from .config import DataConfig
    from .config import replace as cfg_replace
    d = base or DataConfig(name=args.data)
    changes = {"name": args.data or d.name}
    for attr, key in (("image_size", "image_size"), ("color", "color"), ("test_fraction", "test_fraction"),
                      ("max_train", "max_train"), ("max_test", "max_test")):
        v = getattr(args, attr, None)
        if v is not None:
            changes[key] = v
    if args.data and base is not None and args.data != base.name:
        changes.setdefault("max_train", None)
    name = changes["name"]
    if os.path.exists(name):
        changes["name"] = str(Path(name).resolve())
    return cfg_replace(d, **changes)


def cmd_datasets(args) -> int:
    from .data import list_datasets
    rows = list_datasets()
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        mark = "ready" if r.get("available") else "needs files/download"
        print(f"{r['name']:<{width}}  {r['description']}  [{mark}; {r['source']}]")
    print("user data: a path to an .npz (x: [N,H,W] | [N,H,W,C] | [N,C,H,W], optional y), a .zip or a folder "
          "of PNG/JPEG images (one sub-folder per class, or flat)")
    return 0


def _progress(total_steps: int, quiet: bool):
    """A tqdm bar with ETA on stderr, fed by training events."""
    from tqdm import tqdm
    bar = tqdm(total=total_steps, unit="step", disable=quiet, dynamic_ncols=True, file=sys.stderr,
               bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}] {postfix}")
    return bar


def check_out(out: Path) -> None:
    """Refuse an --out that exists and is not a run folder (never overwrite a user's files)."""
    from .runs import RunError, is_run_dir
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not is_run_dir(out))):
        raise RunError(f"--out {out} exists and is not a run folder; choose a new folder")


def run_in_thread(fn, on_interrupt: str = "stopping after this batch"):
    """Run ``fn(cancel)`` in a worker thread so Ctrl-C sets ``cancel`` and the work stops cleanly
    after the current batch; returns its result or re-raises its error here."""
    cancel = threading.Event()
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["result"] = fn(cancel)
        except BaseException as e:  # handed to the main thread
            box["error"] = e

    th = threading.Thread(target=work, name="vae-work", daemon=True)
    th.start()
    try:
        while th.is_alive():
            th.join(0.2)
    except KeyboardInterrupt:
        cancel.set()
        print(f"\ninterrupted: {on_interrupt}", file=sys.stderr)
        th.join()
    if "error" in box:
        raise box["error"]
    return box["result"]


def cmd_train(args) -> int:
    from .config import ModelConfig, RunConfig, TrainConfig
    from .evaluate import evaluate
    from .runs import save_run
    from .train import fit

    data_cfg = _data_config(args)
    out = Path(args.out) if args.out else None
    if out is not None:
        check_out(out)
    hidden = args.hidden or ((32, 64) if args.model == "conv" else ModelConfig().hidden)
    tcfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, lr_schedule=args.lr_schedule,
                       lr_warmup=args.lr_warmup,
                       beta=args.beta, warmup_epochs=args.warmup, free_bits=args.free_bits, grad_clip=args.grad_clip,
                       weight_decay=args.weight_decay, seed=args.seed, binarize=args.binarize, threads=args.threads,
                       device=args.device, eval_every_epoch=not args.no_test_eval,
                       time_budget=args.time_budget, output_bias_init=not args.no_bias_init)
    data = _load_data(args, data_cfg)
    if args.conditional and not data.has_labels:
        raise ValueError(f"--conditional needs labelled data; {data.name} has no labels")
    mcfg = ModelConfig(arch=args.model, channels=data.channels, image_size=data.image_size,
                       latent_dim=args.latent_dim, hidden=hidden, decoder_hidden=args.decoder_hidden, fc_dim=args.fc_dim,
                       activation=args.activation,
                       likelihood=args.likelihood, gaussian_sigma=args.sigma, learn_sigma=args.learn_sigma,
                       conditional=args.conditional, num_classes=data.num_classes if args.conditional else 0)
    config = RunConfig(model=mcfg, train=tcfg, data=data_cfg)
    if out is None:
        import time
        stem = Path(data_cfg.name).stem if os.path.sep in data_cfg.name else data_cfg.name
        out = Path("runs") / f"{stem}-{mcfg.arch}-{mcfg.latent_dim}d-{time.strftime('%Y%m%d-%H%M%S')}"

    bar = None
    def on_event(e: dict) -> None:
        nonlocal bar
        if e["type"] == "start":
            bar = _progress(e["total_steps"], args.quiet)
            bar.set_description(f"{data.name} {mcfg.arch} {mcfg.latent_dim}d")
        elif e["type"] == "step" and bar is not None:
            bar.update(1)
            if e["global_step"] % 20 == 0:
                bar.set_postfix_str(f"ep {e['epoch']} loss {e['loss']:.1f} kl {e['kl']:.1f}", refresh=False)
        elif e["type"] == "epoch" and bar is not None:
            test = e.get("test")
            msg = f"epoch {e['epoch']}: train -ELBO {e['train']['neg_elbo']:.2f}"
            if test:
                msg += f", test -ELBO {test['neg_elbo']:.2f} nats ({test['bits_per_dim']:.4f} bits/dim)"
            bar.write(msg, file=sys.stderr)

    try:
        result = run_in_thread(lambda cancel: fit(config, data, callback=on_event, cancel=cancel),
                               "stopping after this batch and saving the run")
    finally:
        if bar is not None:
            bar.close()
    final = evaluate(result.model, _eval_view(data.test, tcfg), iw_samples=args.iw_samples, seed=tcfg.seed)
    metrics = {"status": result.status, "message": result.message, "seconds": result.seconds,
               "n_train": int(data.train.x.shape[0]), "history": result.history, "final": final,
               "data": {"name": data.name, "source": data.source, "class_names": data.class_names}}
    save_run(out, result.model, config, metrics)
    summary = {"run_dir": str(out), "status": result.status, "seconds": round(result.seconds, 2),
               **{k: final[k] for k in ("neg_elbo", "recon", "kl", "bits_per_dim", "active_units", "n_test")}}
    if "nll_iw" in final:
        summary["nll_iw"] = final["nll_iw"]
    if result.status == "failed":
        print(f"error: {result.message}", file=sys.stderr)
    print(json.dumps(summary))
    return 0 if result.status != "failed" else 1


def _eval_view(test, tcfg):
    """Binarised runs are scored on a once-binarised test set."""
    from .data import ImageData
    from .evaluate import fixed_binarized
    if not tcfg.binarize:
        return test
    return ImageData(x=fixed_binarized(test.x, seed=tcfg.seed), y=test.y)


def cmd_eval(args) -> int:
    from .evaluate import evaluate
    from .runs import load_run
    from .util import set_threads
    set_threads(0)
    run = load_run(args.run_dir)
    data_cfg = _data_config(args, base=run.config.data)
    data = _load_data(args, data_cfg)
    mcfg = run.config.model
    if (data.channels, data.image_size) != (mcfg.channels, mcfg.image_size):
        raise ValueError(f"data {data.name} has {data.channels}x{data.image_size}x{data.image_size} images, the run "
                         f"expects {mcfg.channels}x{mcfg.image_size}x{mcfg.image_size} (use --image-size/--color)")
    if mcfg.conditional and not data.has_labels:
        raise ValueError("this run is conditional and needs labelled data")
    res = evaluate(run.model, _eval_view(data.test, run.config.train), iw_samples=args.iw_samples,
                   batch_size=args.batch_size, seed=args.seed)
    if run.config.kind == "semisup" and data.test.y is not None:
        from .semisup import error_rate
        res["test_error"] = error_rate(run.model, data.test)
    res["data"] = data.name
    print(json.dumps(res))
    return 0


def cmd_sample(args) -> int:
    import numpy as np
    from PIL import Image

    from .latent import image_grid, sample_prior
    from .runs import load_run
    if not 1 <= args.n <= 10_000:
        raise ValueError(f"--n must be 1..10000, got {args.n}")
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise ValueError(f"--out must be a .png file, got {out}")
    run = load_run(args.run_dir)
    mcfg = run.config.model
    y = None
    nrow = None
    if mcfg.conditional:
        if args.label is not None:
            if not 0 <= args.label < mcfg.num_classes:
                raise ValueError(f"--label must be 0..{mcfg.num_classes - 1}")
            y = np.full(args.n, args.label)
        else:
            per = max(1, args.n // mcfg.num_classes)
            y = np.repeat(np.arange(mcfg.num_classes), per)[:args.n]
            y = np.concatenate([y, np.zeros(args.n - len(y), int)]) if len(y) < args.n else y
            nrow = per
    _, imgs = sample_prior(run.model, args.n, seed=args.seed, y=y, temperature=args.temperature)
    grid = image_grid(imgs, nrow, scale=max(1, args.scale))
    from .util import atomic_write_bytes
    import io
    buf = io.BytesIO()
    Image.fromarray(grid).save(buf, format="PNG")
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, buf.getvalue())
    print(json.dumps({"out": str(out), "n": args.n, "shape": list(grid.shape)}))
    return 0


COMMANDS = {"datasets": cmd_datasets, "train": cmd_train, "eval": cmd_eval, "sample": cmd_sample}


def main(argv: Sequence[str] | None = None) -> int:
    from .config import ConfigError
    from .data import DataError
    from .runs import RunError
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except (UsageError, DataError, ConfigError, RunError, ValueError) as e:
        msg = " ".join(str(e).split()) or type(e).__name__
        print(f"error: {msg}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as e:
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        print(f"error: {e.strerror or e}{where}", file=sys.stderr)
        return EXIT_BAD_INPUT


# --- use-case commands (vae/cli_usecases.py): semisup, probe, compress, rd, augment, anomaly, doctor ---
def _with_usecases(build):
    def build_parser_with_usecases() -> argparse.ArgumentParser:
        from .cli_usecases import add_parsers
        p = build()
        sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
        add_parsers(sub)
        return p
    return build_parser_with_usecases


build_parser = _with_usecases(build_parser)


def _usecase(name: str):
    def run(args) -> int:
        from .cli_usecases import COMMANDS as UC
        return UC[name](args)
    return run


COMMANDS.update({name: _usecase(name) for name in ("semisup", "probe", "compress", "rd", "augment", "anomaly",
                                                    "doctor")})
