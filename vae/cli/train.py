"""``python -m vae train``: options <-> ``RunConfig`` both ways, and the command that runs the pipeline.

``config_from_args`` turns the options into a ``RunConfig``; ``args_for`` is its inverse (the command
line that rebuilds a config), used by the doctor to print the run it suggests and by the app's jobs.
A round-trip test keeps the two in step. ``--config FILE`` trains a config written by the app (or any
run's ``config.json``) instead of the options.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
from pathlib import Path

from ..config import DataConfig, ModelConfig, RunConfig, TrainConfig
from ..config import replace as cfg_replace
from ..data import DEFAULT_DATASET, DataSplit
from ..distributed import Dist, from_env
from ..jobs import StopSignal
from ..pipeline import train_run
from ..runs import CONFIG, RunError, config_from_bytes, new_run_dir
from ..util import pick_device
from .common import add_data_args, check_out, data_config, decoder_widths, load_data, steps_for, widths, with_progress

#: Options that may go with ``--config`` (everything else is in the file).
WITH_CONFIG = {"command", "func", "parser", "config", "resume", "nice", "data_dir", "out", "quiet", "iw_samples",
               "threads", "device", "precision", "max_files", "max_file_mb", "max_uncompressed_mb", "max_image_pixels"}


def register(sub) -> None:
    m, t = ModelConfig(), TrainConfig()
    tr = sub.add_parser("train", help="train a VAE and save a run folder",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    tr.set_defaults(func=cmd_train, parser=tr)  # the parser: its defaults tell which options were given
    tr.add_argument("--config", default=None,
                    help="train the RunConfig in this JSON file (a run's config.json) instead of the options below; "
                         "only --data-dir, --out, --threads, --device, --iw-samples and --quiet may go with it")
    tr.add_argument("--resume", default=None, metavar="RUN_DIR",
                    help="continue the run in RUN_DIR from its last completed epoch (or start it, when the folder "
                         "holds only its config.json, as a queued job does); same options as --config")
    tr.add_argument("--nice", type=int, default=0, help="lower this process's priority by N (Unix), e.g. for a "
                                                          "job beside a web server")
    add_data_args(tr, default_data=DEFAULT_DATASET)
    tr.add_argument("--split-seed", type=int, default=None, help="seed of the train/test split of data without one")
    g = tr.add_argument_group("model")
    g.add_argument("--model", choices=["mlp", "conv"], default=m.arch)
    g.add_argument("--hidden", type=widths, default=None,
                   help=f"mlp: the encoder's hidden widths (default {','.join(map(str, m.hidden))}); conv: channels "
                        f"per stride-2 layer (default {','.join(map(str, ModelConfig(arch='conv').hidden))})")
    g.add_argument("--decoder-hidden", type=decoder_widths, default=None,
                   help=f"mlp: the decoder's widths from z outward, or 'mirror' for the reverse of --hidden "
                        f"(default {','.join(map(str, m.decoder_hidden))} with the default --hidden, else mirror)")
    g.add_argument("--fc-dim", type=int, default=m.fc_dim, help="conv: dense layer width")
    g.add_argument("--activation", choices=["relu", "elu", "silu", "leaky_relu"], default=m.activation)
    g.add_argument("--latent-dim", type=int, default=m.latent_dim)
    g.add_argument("--likelihood", choices=["bernoulli", "gaussian"], default=m.likelihood)
    g.add_argument("--sigma", type=float, default=m.gaussian_sigma, help="gaussian: fixed sigma")
    g.add_argument("--learn-sigma", action="store_true", help="gaussian: learn sigma per channel")
    g.add_argument("--conditional", action="store_true", help="conditional VAE: encoder and decoder see the label")
    g.add_argument("--prior", choices=["normal", "vamp"], default=m.prior,
                   help="vamp: the VampPrior (Tomczak & Welling 2018), a mixture over learned pseudo-inputs")
    g.add_argument("--prior-components", type=int, default=m.prior_components, help="vamp: pseudo-inputs")
    g = tr.add_argument_group("training")
    g.add_argument("--epochs", type=int, default=t.epochs)
    g.add_argument("--batch-size", type=int, default=t.batch_size)
    g.add_argument("--lr", type=float, default=t.lr)
    g.add_argument("--lr-schedule", choices=["constant", "cosine"], default=t.lr_schedule)
    g.add_argument("--lr-warmup", type=float, default=t.lr_warmup,
                   help="share of the run (0..0.5) over which the learning rate ramps up linearly from near 0")
    g.add_argument("--lr-min-factor", type=float, default=t.lr_min_factor,
                   help="the cosine schedule ends at this share of --lr")
    g.add_argument("--beta", type=float, default=t.beta, help="KL weight")
    g.add_argument("--warmup", type=float, default=t.warmup_epochs, help="KL warm-up, epochs")
    g.add_argument("--free-bits", type=float, default=t.free_bits, help="nats per latent dim")
    g.add_argument("--grad-clip", type=float, default=t.grad_clip, help="max gradient norm, 0 = off")
    g.add_argument("--weight-decay", type=float, default=t.weight_decay)
    g.add_argument("--objective", choices=["elbo", "iwae"], default=t.objective,
                   help="iwae: the importance-weighted bound (Burda et al. 2016) with --k samples per image")
    g.add_argument("--k", type=int, default=None, help="iwae: importance samples per image (default 5)")
    g.add_argument("--binarize", action="store_true", help="dynamic binarisation of the pixels")
    g.add_argument("--seed", type=int, default=t.seed)
    g.add_argument("--threads", type=int, default=t.threads, help="CPU threads, 0 = all cores")
    g.add_argument("--device", default=t.device, help="auto, cpu, cuda or mps")
    g.add_argument("--precision", choices=["fp32", "bf16"], default=t.precision,
                   help="bf16: the forward pass under autocast (losses and optimizer in fp32); for GPUs")
    g.add_argument("--time-budget", type=float, default=t.time_budget,
                   help="train for at most this many seconds (0 = off); the lr schedule follows the clock")
    g.add_argument("--no-bias-init", action="store_true",
                   help="start the decoder's output bias at 0 (torch's init) instead of the mean pixel's logit")
    g.add_argument("--no-test-eval", action="store_true", help="skip the per-epoch test evaluation")
    g.add_argument("--iw-samples", type=int, default=0, help="importance samples for the final log p(x)")
    tr.add_argument("--out", default=None, help="run folder to write (default runs/<data>-<model>-<latent>d-<time>)")
    tr.add_argument("--quiet", action="store_true", help="no progress bar")


def iw_k(args) -> int:
    """--k, which only the IWAE objective takes (5 when it is not given)."""
    if args.k is not None and args.objective != "iwae":
        raise ValueError(f"--k is the IWAE objective's sample count; add --objective iwae (got --k {args.k})")
    return (5 if args.k is None else args.k) if args.objective == "iwae" else 1


def config_from_args(args, data: DataSplit) -> RunConfig:
    """The ``RunConfig`` the options describe, for ``data`` (which fixes channels, side and classes)."""
    if args.conditional and not data.has_labels:
        raise ValueError(f"a conditional model needs labelled data; {data.name} has no labels")
    dcfg = data_config(args)
    model = ModelConfig(arch=args.model, channels=data.channels, image_size=data.image_size,
                        latent_dim=args.latent_dim, hidden=args.hidden, decoder_hidden=args.decoder_hidden,
                        fc_dim=args.fc_dim, activation=args.activation, likelihood=args.likelihood,
                        gaussian_sigma=args.sigma, learn_sigma=args.learn_sigma, conditional=args.conditional,
                        num_classes=data.num_classes if args.conditional else 0, prior=args.prior,
                        prior_components=args.prior_components)
    train = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, lr_schedule=args.lr_schedule,
                        lr_warmup=args.lr_warmup, lr_min_factor=args.lr_min_factor, beta=args.beta,
                        warmup_epochs=args.warmup, free_bits=args.free_bits, grad_clip=args.grad_clip,
                        weight_decay=args.weight_decay, seed=args.seed, binarize=args.binarize,
                        threads=args.threads, device=args.device, eval_every_epoch=not args.no_test_eval,
                        time_budget=args.time_budget, output_bias_init=not args.no_bias_init,
                        precision=args.precision, objective=args.objective, iw_k=iw_k(args))
    return RunConfig(model=model, train=train, data=dcfg)


#: (option, section, field) of every valued option that maps one-to-one onto a config field
_VALUED = (("--image-size", "data", "image_size"), ("--color", "data", "color"),
           ("--test-fraction", "data", "test_fraction"), ("--split-seed", "data", "split_seed"),
           ("--max-train", "data", "max_train"), ("--max-test", "data", "max_test"),
           ("--fc-dim", "model", "fc_dim"), ("--activation", "model", "activation"),
           ("--likelihood", "model", "likelihood"), ("--sigma", "model", "gaussian_sigma"),
           ("--prior", "model", "prior"), ("--prior-components", "model", "prior_components"),
           ("--epochs", "train", "epochs"), ("--batch-size", "train", "batch_size"), ("--lr", "train", "lr"),
           ("--lr-schedule", "train", "lr_schedule"), ("--lr-warmup", "train", "lr_warmup"),
           ("--lr-min-factor", "train", "lr_min_factor"), ("--beta", "train", "beta"),
           ("--warmup", "train", "warmup_epochs"), ("--free-bits", "train", "free_bits"),
           ("--grad-clip", "train", "grad_clip"), ("--weight-decay", "train", "weight_decay"),
           ("--seed", "train", "seed"), ("--threads", "train", "threads"), ("--device", "train", "device"),
           ("--time-budget", "train", "time_budget"), ("--precision", "train", "precision"),
           ("--objective", "train", "objective"), ("--k", "train", "iw_k"))
#: (switch, section, field, the field's value when the switch is given)
_SWITCHES = (("--learn-sigma", "model", "learn_sigma", True), ("--conditional", "model", "conditional", True),
             ("--binarize", "train", "binarize", True), ("--no-bias-init", "train", "output_bias_init", False),
             ("--no-test-eval", "train", "eval_every_epoch", False))


def args_for(config: RunConfig, *, always: dict[str, set[str]] | None = None) -> list[str]:
    """``train`` options that rebuild ``config`` (a plain VAE run): every setting that differs from the default,
    plus the fields named in ``always`` (``{"train": {"beta"}}``: say ``--beta 1.0`` even though it is the
    default, so a suggested change reads as one). ``recon_every`` (how often the app's live view gets a
    snapshot) has no option and is not carried."""
    always = always or {}
    m = config.model
    defaults = {"data": DataConfig(name=config.data.name), "train": TrainConfig(),
                "model": ModelConfig(arch=m.arch, latent_dim=m.latent_dim)}
    out = ["--data", config.data.name, "--model", m.arch, "--latent-dim", str(m.latent_dim)]
    if m.hidden != defaults["model"].hidden or "hidden" in always.get("model", ()):
        out += ["--hidden", ",".join(map(str, m.hidden))]
    if m.arch == "mlp" and m.decoder_hidden != ModelConfig(hidden=m.hidden, latent_dim=m.latent_dim).decoder_hidden:
        out += ["--decoder-hidden", ",".join(map(str, m.decoder_hidden)) or "mirror"]
    for flag, section, name in _VALUED:
        v = getattr(getattr(config, section), name)
        if v != getattr(defaults[section], name) or name in always.get(section, ()):
            out += [flag, repr(v) if isinstance(v, float) else str(v)]
    for flag, section, name, when_given in _SWITCHES:
        if getattr(getattr(config, section), name) == when_given:
            out.append(flag)
    return out


def _config_file(args, path: Path, flag: str) -> RunConfig:
    parser_defaults = vars(args.parser.parse_args([]))
    extra = sorted(k for k, v in vars(args).items() if k not in WITH_CONFIG and v != parser_defaults.get(k))
    if extra:
        flags = ", ".join("--" + k.replace("_", "-") for k in extra)
        raise ValueError(f"{flags} cannot go with {flag} (the file holds the whole run); edit the file instead")
    try:
        blob = path.read_bytes()
    except OSError as e:
        raise RunError(f"{flag} {path}: {e.strerror or e}") from None
    config = config_from_bytes(blob, str(path))
    if config.kind != "vae":
        raise ValueError(f"{flag} {path} describes a {config.kind!r} run; `train` trains plain VAE runs")
    changes = {k: getattr(args, k) for k in ("threads", "device", "precision")
               if getattr(args, k) != parser_defaults.get(k)}
    return RunConfig(model=config.model, train=cfg_replace(config.train, **changes), data=config.data)


def cmd_train(args) -> int:
    if args.nice and hasattr(os, "nice"):
        os.nice(args.nice)
    out = Path(args.out) if args.out else None
    iw_k(args)                              # a bad --k is reported before any data is read
    if args.resume and (args.config or out):
        raise ValueError("--resume RUN_DIR takes the folder's own config and writes to that folder; "
                         "drop --config / --out")
    if out is not None:
        check_out(out)
    if args.resume or args.config:
        flag = "--resume" if args.resume else "--config"
        path = Path(args.resume) / CONFIG if args.resume else Path(args.config)
        config = _config_file(args, path, flag)
        data = load_data(args, config.data)
        m = config.model
        if (data.channels, data.image_size) != (m.channels, m.image_size):
            raise ValueError(f"{flag}: the data has {data.channels}x{data.image_size}px images, the model "
                             f"{m.channels}x{m.image_size}px")
        out = Path(args.resume) if args.resume else out
    else:
        data = load_data(args, data_config(args))
        config = config_from_args(args, data)
    d = from_env(pick_device(config.train.device))      # torchrun's process group, or one process
    try:
        return _train(args, config, data, out, d)
    finally:
        d.close()


def _train(args, config: RunConfig, data: DataSplit, out: Path | None, d: Dist) -> int:
    if out is None:                                     # rank 0 names the folder, every rank uses it
        out = d.broadcast_object(new_run_dir("runs", config, data.name) if d.is_main else None)
    m = config.model
    total = steps_for(len(data.train), config.train.batch_size, config.train.epochs)
    with stop_on_sigterm():
        result = with_progress(total, args.quiet or not d.is_main, f"{Path(data.name).name} {m.arch} {m.latent_dim}d",
                               lambda callback, cancel: train_run(
                                   config, data, out, callback=callback,
                                   cancel=StopSignal(out, cancel) if d.is_main else None,
                                   iw_samples=args.iw_samples, resume=bool(args.resume), dist=d,
                                   launched_by=os.environ.get("VAE_LAB_LAUNCHED_BY", "cli")),
                               "stopping after this batch and saving the run")
    if not d.is_main:
        return 0
    final = result.final
    summary = {"run_dir": str(result.path) if result.path else None, "status": result.status,
               "seconds": round(result.seconds, 2),
               **{k: final[k] for k in ("neg_elbo", "recon", "kl", "bits_per_dim", "active_units", "n_test")
                  if k in final}}
    if "nll_iw" in final:
        summary["nll_iw"] = final["nll_iw"]
    if d.active:
        summary.update(d.describe())
    if result.status == "failed":
        print(f"error: {result.message}", file=sys.stderr)
    print(json.dumps(summary))
    # under torchrun an orderly ending is never an exit code a restart policy would act on: the run folder
    # says how it ended (a NaN would only come back after a restart)
    return 0 if result.status != "failed" or d.active else 1


@contextlib.contextmanager
def stop_on_sigterm():
    """SIGTERM (from torchrun when a peer fails or it is interrupted, from a cluster's scheduler, from kill)
    stops after the current batch and saves, like Ctrl-C, instead of killing the process mid-write."""
    def handler(signum, frame):
        raise KeyboardInterrupt
    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:                                  # not the main thread (a notebook, a test runner)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)

