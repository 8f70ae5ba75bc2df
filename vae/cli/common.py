"""What every command shares: the one-line-error parser, the data options, the progress bar, Ctrl-C.

Conventions (README, "The command line"): exit 0 on success; on bad input exit 2 with one line on
stderr starting with ``error:`` and no traceback; a command that computes something prints one JSON
object as the last line of stdout.
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
from pathlib import Path
from typing import Any, Callable

from ..config import DataConfig
from ..config import replace as cfg_replace
from ..data import DataSplit, Limits, load_dataset
from ..runs import CONFIG, Run, RunError
from .options import DATA, add

EXIT_BAD_INPUT = 2


class UsageError(Exception):
    """A command-line mistake; the message is one line."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, no usage dump
        raise UsageError(f"{message} (see {self.prog} --help)")


def add_data_args(p: argparse.ArgumentParser, *, default_data: str | None) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--data", default=default_data,
                   help="built-in name (see `python -m vae datasets`) or a path to an .npz, a .zip or a folder of "
                        "images")
    g.add_argument("--data-roots", default=None, metavar="DIR[:DIR...]",
                   help="read a data set's path only inside these folders (after resolving links); built-in names "
                        "are always accepted. The app's training jobs run with its uploads folder here")
    g.add_argument("--data-dir", default=None,
                   help="folder with torchvision-layout data sets (default: $VAE_LAB_DATA_DIR or "
                        "~/.cache/vae-lab/data)")
    add(g, DATA)
    g.add_argument("--max-files", type=int, default=None, help="limit: files in a zip or folder")
    g.add_argument("--max-file-mb", type=float, default=None, help="limit: size of an upload on disk, MB")
    g.add_argument("--max-uncompressed-mb", type=float, default=None,
                   help="limit: declared uncompressed size of a zip or npz, MB")
    g.add_argument("--max-image-pixels", type=int, default=None, help="limit: pixels in one source image")
    g.add_argument("--max-total-pixels", type=int, default=None, help="limit: pixels of all the source images")


def limits(args) -> Limits:
    kw: dict[str, Any] = {}
    if getattr(args, "max_files", None) is not None:
        kw["max_files"] = args.max_files
    if getattr(args, "max_file_mb", None) is not None:
        kw["max_file_bytes"] = int(args.max_file_mb * (1 << 20))
    if getattr(args, "max_uncompressed_mb", None) is not None:
        kw["max_uncompressed_bytes"] = int(args.max_uncompressed_mb * (1 << 20))
    if getattr(args, "max_image_pixels", None) is not None:
        kw["max_image_pixels"] = args.max_image_pixels
    if getattr(args, "max_total_pixels", None) is not None:
        kw["max_total_pixels"] = args.max_total_pixels
    return Limits(**kw)


def data_config(args, base: DataConfig | None = None) -> DataConfig:
    """The data options as a ``DataConfig``; ``base`` (a run's own) fills what the options leave out.

    A path is stored absolute, so the run folder can reload its data from anywhere."""
    d = base or DataConfig(name=args.data)
    changes: dict[str, Any] = {"name": args.data or d.name}
    for key in ("image_size", "color", "test_fraction", "split_seed", "max_train", "max_test"):
        v = getattr(args, key, None)
        if v is not None:
            changes[key] = v
    if args.data and base is not None and args.data != base.name:
        changes.setdefault("max_train", None)
    if os.path.exists(changes["name"]):
        changes["name"] = str(Path(changes["name"]).resolve())
    return cfg_replace(d, **changes)


def load_data(args, cfg: DataConfig) -> DataSplit:
    roots = getattr(args, "data_roots", None)
    return load_dataset(cfg.name, data_dir=args.data_dir, image_size=cfg.image_size, color=cfg.color,
                        test_fraction=cfg.test_fraction, seed=cfg.split_seed, limits=limits(args),
                        max_train=cfg.max_train, max_test=cfg.max_test,
                        roots=None if roots is None else [r for r in roots.split(os.pathsep) if r])


def load_run_data(args, run: Run) -> DataSplit:
    """The run's own data set (or the one ``--data`` names), checked to have the run's image shape."""
    data = load_data(args, data_config(args, base=run.config.data))
    m = run.config.model
    if (data.channels, data.image_size) != (m.channels, m.image_size):
        raise ValueError(f"data {data.name} has {data.channels}x{data.image_size}x{data.image_size} images, the run "
                         f"expects {m.channels}x{m.image_size}x{m.image_size} (use --image-size/--color)")
    if m.conditional and not data.has_labels:
        raise ValueError("this run is conditional and needs labelled data")
    return data


def check_out(out: Path) -> None:
    """Refuse an ``--out`` that exists and is not a run folder (never overwrite a user's files)."""
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / CONFIG).is_file())):
        raise RunError(f"--out {out} exists and is not a run folder; choose a new folder")


def progress_bar(total: int | None, quiet: bool, desc: str = ""):
    """A tqdm bar with ETA on stderr (the notebook widget inside Jupyter, via ``tqdm.auto``)."""
    from tqdm.auto import tqdm
    return tqdm(total=total, unit="step", disable=quiet, dynamic_ncols=True, file=sys.stderr, desc=desc or None)


def bar_callback(total: int | None, quiet: bool, desc: str) -> tuple[Any, Callable[[dict], None]]:
    """A progress bar and the training-event subscriber that moves it (every stage's steps, epoch summaries).

    ``total`` may be None (or too small): the ``start`` event then sets it to the run's steps, so no command has to
    guess another module's batch size."""
    bar = progress_bar(total, quiet, desc)

    def on_event(e: dict) -> None:
        kind = e["type"]
        if kind == "start" and e["total_steps"] > (bar.total or 0):
            bar.total = e["total_steps"]
            bar.refresh()
        elif kind == "step":
            bar.update(1)
            if e["global_step"] % 20 == 0:
                shown = " ".join(f"{k} {e[k]:.{2 if k == 'ce' else 1}f}" for k in ("loss", "kl", "ce") if k in e)
                bar.set_postfix_str(f"{e.get('stage') or 'ep'} {e['epoch']} {shown}", refresh=False)
        elif kind == "epoch":
            test = e.get("test") or {}
            bits = [f"test -ELBO {test['neg_elbo']:.2f} nats ({test['bits_per_dim']:.4f} bits/dim)"] \
                if "neg_elbo" in test else []
            bits += [f"test error {test['test_error']:.4f}"] if "test_error" in test else []
            train = e.get("train") or {}
            lead = f"train -ELBO {train['neg_elbo']:.2f}, " if "neg_elbo" in train else ""
            if bits:
                stage = f" ({e['stage']})" if e.get("stage") else ""
                bar.write(f"epoch {e['epoch']}{stage}: {lead}{', '.join(bits)}", file=sys.stderr)
    return bar, on_event


def run_in_thread(fn: Callable[[threading.Event], Any], on_interrupt: str = "stopping after this batch") -> Any:
    """Run ``fn(cancel)`` in a worker thread so Ctrl-C sets ``cancel`` and the work stops cleanly after the
    current batch; returns its result or re-raises its error here."""
    cancel, done = threading.Event(), threading.Event()
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["result"] = fn(cancel)
        except BaseException as e:  # handed to the main thread
            box["error"] = e
        finally:
            done.set()

    threading.Thread(target=work, name="vae-work", daemon=True).start()
    interrupts = 0
    # wait on an event, not Thread.join: a KeyboardInterrupt inside join() can leave the thread looking
    # finished while it still runs (CPython's interrupted _tstate_lock), and the result would be lost
    while not done.is_set():
        try:
            done.wait(0.2)
        except KeyboardInterrupt:
            # the first stops after the batch and saves; a second (torchrun forwards the terminal's Ctrl-C
            # to its workers, which also got it directly) is ignored; a third quits without saving
            interrupts += 1
            if interrupts == 1:
                cancel.set()
                print(f"\ninterrupted: {on_interrupt} (press Ctrl-C twice more to quit without saving)",
                      file=sys.stderr)
            elif interrupts >= 3:
                raise
    if "error" in box:
        raise box["error"]
    return box["result"]


def with_progress(total: int | None, quiet: bool, desc: str, work: Callable[[Callable, threading.Event], Any],
                  on_interrupt: str = "stopping after this batch") -> Any:
    """``work(callback, cancel)`` in a worker thread with a progress bar fed by its events; Ctrl-C stops it."""
    bar, on_event = bar_callback(total, quiet, desc)
    try:
        return run_in_thread(lambda cancel: work(on_event, cancel), on_interrupt)
    finally:
        bar.close()


def steps_for(n: int, batch_size: int, epochs: int) -> int:
    """Optimiser steps of ``epochs`` passes over ``n`` images in batches of ``batch_size`` (the bar's total)."""
    return -(-n // max(1, min(batch_size, n))) * epochs if n else 0
