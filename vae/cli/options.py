"""Command-line options generated from the config dataclasses, both ways.

Each :class:`Option` ties a flag to one field of a config section; its type, choices, default and help come from
that field's declaration (``vae.config.setting``), so the command line cannot drift from the config. ``add`` puts
options on a parser, ``values`` reads back the ones given, and :func:`args_for` writes the options that rebuild a
config (the doctor prints them; a round-trip test keeps the two directions in step).
"""
from __future__ import annotations

import argparse
import dataclasses
import re
import typing
from dataclasses import dataclass
from typing import Any, Callable, Literal

from ..config import ConfigError, DataConfig, ModelConfig, RunConfig, SemisupConfig, TrainConfig, parse_widths
from ..config import replace as cfg_replace

SECTIONS: dict[str, type] = {"model": ModelConfig, "train": TrainConfig, "data": DataConfig, "semisup": SemisupConfig}


def widths(text: str) -> tuple[int, ...]:
    """argparse type for ``--hidden 512,256``."""
    try:
        return parse_widths(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def decoder_widths(text: str) -> tuple[int, ...]:
    """argparse type for ``--decoder-hidden 512,1024`` or ``mirror`` (-> ``()``)."""
    try:
        return parse_widths(text, mirror=True)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def labels_arg(text: str) -> int | None:
    """argparse type for ``--labels K`` or ``all`` (-> None)."""
    if text.strip().lower() == "all":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes a positive integer or 'all', got {text!r}") from None


@dataclass(frozen=True)
class Option:
    flag: str                          # "--latent-dim"
    section: str                       # a key of SECTIONS
    field: str                         # "latent_dim"
    switch: Any = None                 # a switch (no value) sets the field to this when given
    parse: Callable[[str], Any] | None = None   # the value's type, when not the field's own
    help: str = ""                     # instead of the field's help
    default_text: str = ""             # what "(default: ...)" says, when not the field's default

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    def setting(self):
        from ..config import settings_of
        return settings_of(SECTIONS[self.section])[self.field]

    def add(self, parser) -> None:
        s = self.setting()
        default = self.default_text or _text(s.default)
        help_ = (self.help or s.help) + (f" ({s.range_text()})" if s.range_text() and self.switch is None else "")
        help_ = help_.replace("%", "%%")                      # argparse %-formats help texts
        if self.switch is not None:
            parser.add_argument(self.flag, dest=self.dest, action="store_const", const=self.switch, default=None,
                                help=help_)
            return
        kind = _scalar(typing.get_type_hints(SECTIONS[self.section])[self.field])
        choices = list(typing.get_args(kind)) if typing.get_origin(kind) is Literal else None
        parse = self.parse or (None if choices else kind)
        parser.add_argument(self.flag, dest=self.dest, type=parse, choices=choices, default=None,
                            metavar=None if choices else self.dest.upper(),
                            help=f"{help_} (default: {default.replace('%', '%%')})")


def _scalar(tp):
    """The annotation without ``| None``."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (typing.Union, getattr(__import__("types"), "UnionType", None)) and len(args) == 1:
        return args[0]
    return tp


def _text(v: Any) -> str:
    if isinstance(v, tuple):
        return ",".join(map(str, v)) or "mirror"
    return "none" if v is None else str(v)


def add(parser, options: tuple[Option, ...]) -> None:
    for o in options:
        o.add(parser)


def values(args, options: tuple[Option, ...]) -> dict[str, dict[str, Any]]:
    """The fields the given options set, by section: ``{"train": {"beta": 4.0}}``."""
    out: dict[str, dict[str, Any]] = {}
    for o in options:
        v = getattr(args, o.dest, None)
        if v is not None:
            out.setdefault(o.section, {})[o.field] = v
    return out


def given(args, options: tuple[Option, ...]) -> list[str]:
    return [o.flag for o in options if getattr(args, o.dest, None) is not None]


def build(cls: type, base: Any, changes: dict[str, Any], options: tuple[Option, ...]) -> Any:
    """``cls`` from ``base`` (or the defaults) with ``changes``; a refused value is reported by its flag."""
    try:
        return cfg_replace(base, **changes) if base is not None else cls(**changes)
    except ConfigError as e:
        raise ConfigError(flagged(str(e), options)) from None


def flagged(message: str, options: tuple[Option, ...]) -> str:
    """``"train.beta must be ..."`` -> ``"--beta must be ..."`` for the options of this command."""
    for o in options:
        message = re.sub(rf"\b{o.section}\.{o.field}\b", o.flag, message)
    return message


MODEL = (Option("--model", "model", "arch"), Option("--hidden", "model", "hidden", parse=widths,
                                                    default_text="1024 (mlp), 32,64 (conv)"),
         Option("--decoder-hidden", "model", "decoder_hidden", parse=decoder_widths,
                default_text="512,1024 (256,512,1024 for a 1- or 2-D latent) with the default --hidden, else mirror"),
         Option("--fc-dim", "model", "fc_dim"), Option("--activation", "model", "activation"),
         Option("--latent-dim", "model", "latent_dim"), Option("--likelihood", "model", "likelihood"),
         Option("--sigma", "model", "gaussian_sigma"), Option("--learn-sigma", "model", "learn_sigma", switch=True),
         Option("--conditional", "model", "conditional", switch=True), Option("--prior", "model", "prior"),
         Option("--prior-components", "model", "prior_components"),
         Option("--latent-layers", "model", "latent_layers"))
TRAIN = (Option("--epochs", "train", "epochs"), Option("--batch-size", "train", "batch_size"),
         Option("--lr", "train", "lr"), Option("--lr-schedule", "train", "lr_schedule"),
         Option("--lr-warmup", "train", "lr_warmup"), Option("--lr-min-factor", "train", "lr_min_factor"),
         Option("--beta", "train", "beta"), Option("--warmup", "train", "warmup_epochs"),
         Option("--free-bits", "train", "free_bits"), Option("--grad-clip", "train", "grad_clip"),
         Option("--weight-decay", "train", "weight_decay"), Option("--objective", "train", "objective"),
         Option("--k", "train", "iw_k", default_text="5 with --objective iwae"),
         Option("--tc-weight", "train", "tc_weight"), Option("--tc-estimator", "train", "tc_estimator"),
         Option("--binarize", "train", "binarize", switch=True), Option("--seed", "train", "seed"),
         Option("--threads", "train", "threads"), Option("--device", "train", "device"),
         Option("--precision", "train", "precision"), Option("--time-budget", "train", "time_budget"),
         Option("--no-bias-init", "train", "output_bias_init", switch=False,
                help="start the decoder's output bias at 0 (torch's init) instead of the mean pixel's logit"),
         Option("--no-test-eval", "train", "eval_every_epoch", switch=False, help="skip the per-epoch test evaluation"))
DATA = (Option("--image-size", "data", "image_size"), Option("--color", "data", "color"),
        Option("--test-fraction", "data", "test_fraction"), Option("--split-seed", "data", "split_seed"),
        Option("--max-train", "data", "max_train"), Option("--max-test", "data", "max_test"))
SEMISUP = (Option("--labels", "semisup", "labels", parse=labels_arg,
                  help="labelled images, balanced per class, or 'all'"),
           Option("--label-seed", "semisup", "label_seed", default_text="--seed"),
           Option("--m2-epochs", "semisup", "m2_epochs"),
           Option("--joint-epochs", "semisup", "joint_epochs",
                  default_text="25, or on fewer than 60,000 images as many as give MNIST's number of steps, at most "
                               "300"),
           Option("--m2-batch-size", "semisup", "batch_size"), Option("--m2-lr", "semisup", "lr"),
           Option("--alpha", "semisup", "alpha", default_text="0.1 N / labels"),
           Option("--consistency", "semisup", "consistency"), Option("--augment", "semisup", "augment"),
           Option("--elastic", "semisup", "elastic"), Option("--classifier", "semisup", "classifier", parse=str),
           Option("--augment-weight", "semisup", "augment_weight", default_text="--alpha"),
           Option("--pseudo-threshold", "semisup", "pseudo_threshold"), Option("--m2-hidden", "semisup", "m2_hidden"),
           Option("--m2-latent", "semisup", "m2_latent"), Option("--m1-from", "semisup", "m1_from", parse=str),
           Option("--no-baseline", "semisup", "baseline", switch=False,
                  help="skip the raw-pixel logistic regression baseline"))


def args_for(config: RunConfig, *, always: dict[str, set[str]] | None = None) -> list[str]:
    """``train`` options that rebuild ``config`` (a plain VAE run): every setting that differs from the default, plus
    the fields named in ``always`` (``{"train": {"beta"}}``: say ``--beta 1.0`` even though it is the default, so a
    suggested change reads as one). ``recon_every`` (how often the app's live view gets a snapshot) has no option
    and is not carried."""
    always = always or {}
    m = config.model
    defaults = {"data": DataConfig(name=config.data.name), "train": TrainConfig(),
                "model": ModelConfig(arch=m.arch, latent_dim=m.latent_dim, hidden=m.hidden)}
    out = ["--data", config.data.name, "--model", m.arch, "--latent-dim", str(m.latent_dim)]
    if m.hidden != ModelConfig(arch=m.arch).hidden or "hidden" in always.get("model", ()):
        out += ["--hidden", ",".join(map(str, m.hidden))]
    for o in (*MODEL, *TRAIN, *DATA):
        if o.field in ("arch", "latent_dim", "hidden"):
            continue
        v = getattr(getattr(config, o.section), o.field)
        differs = v != getattr(defaults[o.section], o.field) or o.field in always.get(o.section, ())
        if o.switch is not None:
            if v == o.switch and differs:
                out.append(o.flag)
        elif differs and not (o.field == "decoder_hidden" and m.arch != "mlp"):
            out += [o.flag, _text(v) if isinstance(v, tuple) else repr(v) if isinstance(v, float) else str(v)]
    return out


def fields_without_option() -> dict[str, set[str]]:
    """Config fields no ``train`` option sets (tests check this stays the documented few)."""
    covered = {(o.section, o.field) for o in (*MODEL, *TRAIN, *DATA)} | {("data", "name")}
    return {name: {f.name for f in dataclasses.fields(cls) if (name, f.name) not in covered}
            for name, cls in SECTIONS.items() if name != "semisup"}
