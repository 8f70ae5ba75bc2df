"""The command line: ``python -m vae COMMAND ...`` (or ``vae-lab COMMAND ...`` once installed).

One module per command group, each with ``register(subparsers)`` that adds its sub-commands and sets
``func`` on each: :mod:`.core` (datasets, eval, sample), :mod:`.train` (train), :mod:`.learn` (semisup,
rd, augment, anomaly: the use cases that train) and :mod:`.analyse` (probe, compress, doctor, export: the
ones that read a run). Conventions in :mod:`.common`: exit 0 on success; on bad input exit 2 and one line on
stderr starting with ``error:`` (no traceback); a command that computes something prints one JSON object
as the last line of stdout, so scripts can read it with ``tail -n 1``.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from .. import __version__
from ..config import ConfigError
from ..data import DataError
from ..runs import RunError
from . import analyse, app, core, dims, learn, runs, train
from .common import EXIT_BAD_INPUT, Parser, UsageError

GROUPS = (core, train, learn, analyse, dims, runs, app)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m vae", description="VAE Lab: train and inspect variational autoencoders.")
    p.add_argument("--version", action="version", version=f"vae-lab {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    for group in GROUPS:
        group.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args, extra = build_parser().parse_known_args(argv)
        if extra:
            raise UsageError(f"unrecognized arguments: {' '.join(extra)} (see python -m vae {args.command} --help)")
        return args.func(args)
    except (UsageError, DataError, ConfigError, RunError, ValueError) as e:
        msg = " ".join(str(e).split()) or type(e).__name__
        print(f"error: {msg}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as e:
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        print(f"error: {e.strerror or e}{where}", file=sys.stderr)
        return EXIT_BAD_INPUT
