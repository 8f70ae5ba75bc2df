"""``python -m vae train``: the options <-> a ``RunConfig`` (``vae.cli.options``, generated from the config's own
declarations), and the command that runs the pipeline with a progress bar and job control.

``--config FILE`` trains a config written by the app (or any run's ``config.json``, whatever its kind: a semisup
run's config re-runs it) instead of the options; ``--resume RUN_DIR`` continues a run from its folder.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from pathlib import Path

from ..config import ModelConfig, RunConfig, TrainConfig
from ..data import DEFAULT_DATASET, DataSplit
from ..distributed import Dist, from_env
from ..jobs import JobControl, StopSignal
from ..pipeline import RunResult, train_run
from ..runs import CONFIG, RunError, config_from_bytes, new_run_dir
from ..util import pick_device
from .common import add_data_args, check_out, data_config, load_data, steps_for, with_progress
from .options import DATA, MODEL, TRAIN, add, args_for, build, given, values  # noqa: F401  (args_for: the doctor prints the runs it suggests)

#: Options that may go with ``--config`` (everything else is in the file).
WITH_CONFIG = {"command", "func", "parser", "config", "resume", "nice", "data_dir", "out", "quiet", "iw_samples",
               "threads", "device", "precision", "max_files", "max_file_mb", "max_uncompressed_mb", "max_image_pixels",
               "max_total_pixels", "data_roots"}
OPTIONS = (*MODEL, *TRAIN, *DATA)


def register(sub) -> None:
    tr = sub.add_parser("train", help="train a VAE and save a run folder",
                        description="Train a VAE and save a run folder. Every option has a default; a run's "
                                    "config.json (--config) holds them all.")
    tr.set_defaults(func=cmd_train, parser=tr)  # the parser: its defaults tell which options were given
    tr.add_argument("--config", default=None,
                    help="train the RunConfig in this JSON file (a run's config.json, of any kind) instead of the "
                         "options below; only --data-dir, --out, --threads, --device, --precision, --iw-samples and "
                         "--quiet may go with it")
    tr.add_argument("--resume", default=None, metavar="RUN_DIR",
                    help="continue the run in RUN_DIR from its last completed epoch (or start it, when the folder "
                         "holds only its config.json, as a queued job does); same options as --config")
    tr.add_argument("--nice", type=int, default=0, help="lower this process's priority by N (Unix), e.g. for a "
                                                          "job beside a web server")
    add_data_args(tr, default_data=DEFAULT_DATASET)
    add(tr.add_argument_group("model"), MODEL)
    g = tr.add_argument_group("training")
    add(g, TRAIN)
    g.add_argument("--iw-samples", type=int, default=0, help="importance samples for the final log p(x) (default: 0)")
    tr.add_argument("--out", default=None, help="run folder to write (default runs/<data>-<model>-<latent>d-<time>)")
    tr.add_argument("--quiet", action="store_true", help="no progress bar")


def config_from_args(args, data: DataSplit) -> RunConfig:
    """The ``RunConfig`` the options describe, for ``data`` (which fixes channels, side and classes)."""
    ch = values(args, OPTIONS)
    model = ch.get("model", {})
    if model.get("conditional") and not data.has_labels:
        raise ValueError(f"a conditional model needs labelled data; {data.name} has no labels")
    shape = {"channels": data.channels, "image_size": data.image_size,
             "num_classes": data.num_classes if model.get("conditional") else 0}
    return RunConfig(model=build(ModelConfig, None, {**shape, **model}, OPTIONS),
                     train=build(TrainConfig, None, ch.get("train", {}), OPTIONS), data=data_config(args))


def _config_file(args, path: Path, flag: str) -> RunConfig:
    extra = [f for f in given(args, OPTIONS) if f.lstrip("-").replace("-", "_") not in WITH_CONFIG]
    if extra:
        raise ValueError(f"{', '.join(extra)} cannot go with {flag} (the file holds the whole run); edit the file "
                         "instead")
    try:
        blob = path.read_bytes()
    except OSError as e:
        raise RunError(f"{flag} {path}: {e.strerror or e}") from None
    config = config_from_bytes(blob, str(path))
    changes = {k: v for k, v in values(args, TRAIN).get("train", {}).items()
               if k in ("threads", "device", "precision")}
    return RunConfig(model=config.model, train=build(TrainConfig, config.train, changes, OPTIONS),
                     data=config.data, kind=config.kind, semisup=config.semisup)


def cmd_train(args) -> int:
    if args.nice and hasattr(os, "nice"):
        os.nice(args.nice)
    out = Path(args.out) if args.out else None
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
        build(TrainConfig, None, values(args, TRAIN).get("train", {}), OPTIONS)   # before any data
        data = load_data(args, data_config(args))
        config = config_from_args(args, data)
    result = run(args, config, data, out, resume=bool(args.resume))
    if result is None:
        return 0
    print(json.dumps(summary(result)))
    # under torchrun an orderly ending is never an exit code a restart policy would act on: the run folder
    # says how it ended (a NaN would only come back after a restart)
    return 0 if result.status != "failed" or result.metrics.distributed else 1


def precheck(config: RunConfig, data: DataSplit) -> None:
    """What can be refused before anything is written (a semisup run's labelled subset and the M1 it reuses)."""
    if config.kind == "semisup":
        from ..usecases import semisup as ss
        ss.labelled(config, data)
        if config.semisup.m1_from:
            ss.m1_source(config)


def run(args, config: RunConfig, data: DataSplit, out: Path | None, *, resume: bool = False) -> RunResult | None:
    """Train ``config`` through the pipeline with a progress bar and job control, on this process or on each rank
    under torchrun; returns the result on rank 0 (None on the others). Prints the failure's one line."""
    precheck(config, data)
    d = from_env(pick_device(config.train.device))      # torchrun's process group, or one process
    try:
        result = _train(args, config, data, out, d, resume)
        # an orderly ending leaves together: a rank that tore its group down while rank 0 was still writing the
        # run folder could abort in gloo's teardown (SIGABRT), which torchrun reports as a crash
        d.barrier()
        return result
    finally:
        d.close()


def _train(args, config: RunConfig, data: DataSplit, out: Path | None, d: Dist, resume: bool) -> RunResult | None:
    if out is None:                                     # rank 0 names the folder, every rank uses it
        out = d.broadcast_object(new_run_dir("runs", config, data.name) if d.is_main else None)
    job = [JobControl(out, launched_by=os.environ.get("VAE_LAB_LAUNCHED_BY", "cli"), fresh=not resume)] \
        if d.is_main else []
    m = config.model
    total = steps_for(len(data.train), config.train.batch_size, config.train.epochs) if config.kind == "vae" else None
    with stop_on_sigterm():
        result = with_progress(total, args.quiet or not d.is_main, f"{Path(data.name).name} {m.arch} {m.latent_dim}d",
                               lambda callback, cancel: train_run(
                                   config, data, out, callback=[callback, *job],
                                   cancel=StopSignal(out, cancel) if d.is_main else None,
                                   iw_samples=getattr(args, "iw_samples", 0), resume=resume, dist=d),
                               "stopping after this batch and saving the run")
    if not d.is_main:
        return None
    if result.status == "failed":
        print(f"error: {result.message}", file=sys.stderr)
    return result


def summary(result: RunResult) -> dict:
    """The JSON line a training command prints: where the run is, how it ended, its held-out figures."""
    final = result.final
    out = {"run_dir": str(result.path) if result.path else None, "status": result.status,
           "seconds": round(result.seconds, 2),
           **{k: v for k, v in final.to_dict().items() if k in ("neg_elbo", "recon", "kl", "bits_per_dim",
                                                                "active_units", "n_test", "nll_iw", "test_error")}}
    if result.metrics.distributed:
        out.update(result.metrics.distributed)
    return out


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

