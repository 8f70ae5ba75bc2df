"""The Train page's number fields: text boxes whose defaults and accepted ranges are the core's.

A stock ``st.number_input`` keeps its last good value when the browser holds one out of range (the box turns
red, Python never sees it) and drops letters as they are typed, so Start trained other numbers than the ones
on the screen. Here every number is a text box: Python sees exactly what was typed, checks it against
``vae.config``'s dataclasses (the same checks a saved ``config.json`` goes through) and, while any field is
wrong, Start stays disabled and one line names each wrong field and what it accepts.

Defaults, accepted ranges and help are the dataclasses' own, read as data from ``vae.config.settings_of``
(``Setting.default``, ``lo``/``hi``, ``range_text()``, ``help``), so a range changed in ``vae/config.py`` shows
here unchanged. Seed and the two image caps have no range in the core; their ranges here are the page's. The
objective (ELBO, IWAE, beta-TCVAE, FactorVAE) is a choice from the core's own list; the settings that only some
objectives take are checked together by the core (``objective_errors``), so Start stays disabled while they clash.
"""
from __future__ import annotations

import functools
import math
import re
import typing
from dataclasses import dataclass

import streamlit as st

from vae.config import Activation, Arch, ConfigError, Likelihood, ModelConfig, RunConfig, TrainConfig, settings_of

from . import datasets, quotas
from . import state as S

SECTIONS = {"model": ModelConfig, "train": TrainConfig}
SETTINGS = {name: settings_of(cls) for name, cls in SECTIONS.items()}
ARCHS = tuple(a for a in typing.get_args(Arch) if a != "foreign")   # foreign: a model logged with vae.track
ACTIVATIONS = list(typing.get_args(Activation))
LIKELIHOODS = list(typing.get_args(Likelihood))
BATCH_SIZES = sorted({32, 64, 128, 256, 512, TrainConfig().batch_size})
SEED_MAX = 2**31 - 1          # the core takes any int; the training loop derives others from it (seed * 1e6 ...)
OBJECTIVES = list(SETTINGS["train"]["objective"].choices)
OBJECTIVE_NAMES = {"elbo": "ELBO (a β-VAE when β ≠ 1)", "iwae": "IWAE", "btcvae": "β-TCVAE", "factorvae": "FactorVAE"}
TC_OBJECTIVES = ("btcvae", "factorvae")            # the objectives that weigh a total correlation (tc_weight)
NOT_IN_APP = datasets.NOT_IN_APP      # built-in sets the app does not train (the full shapes grid)


@dataclass(frozen=True)
class Field:
    key: str                  # session-state key of the text box
    label: str
    section: str              # "model" | "train": the dataclass that checks it; "" = the page's own range
    name: str                 # the dataclass field (or the page's value name)
    whole: bool               # a whole number
    help: str = ""
    own: tuple[float, float] | None = None   # the page's range, for values the core does not bound
    own_text: str = ""


FIELDS = (
    Field(S.TRAIN_LATENT, "Latent dimensions", "model", "latent_dim", True,
          "2 gives a latent map you can see directly; 16 reconstructs better."),
    Field(S.TRAIN_SIGMA, "Gaussian σ (pixel scale 0..1)", "model", "gaussian_sigma", False,
          "The likelihood's fixed standard deviation per pixel: large σ makes reconstruction cheap, and images "
          "blurry."),
    Field(S.TRAIN_BETA, "β (KL weight)", "train", "beta", False,
          "1 is the ELBO; above 1 trades sharpness for a smoother latent space."),
    Field(S.TRAIN_TC_WEIGHT, "TC weight", "train", "tc_weight", False),
    Field(S.TRAIN_WARMUP, "KL warm-up, epochs", "train", "warmup_epochs", False,
          "β ramps up from 0 over this many epochs."),
    Field(S.TRAIN_FREE_BITS, "Free bits, nats per dim", "train", "free_bits", False,
          "KL below this per dimension is not penalised, against unused dimensions."),
    Field(S.TRAIN_EPOCHS, "Epochs", "train", "epochs", True),
    Field(S.TRAIN_LR, "Learning rate", "train", "lr", False),
    Field(S.TRAIN_SEED, "Seed", "", "seed", True, "The same seed and settings train the same run.",
          (0, SEED_MAX), f"0 to {SEED_MAX:,}"),
    Field(S.TRAIN_BUDGET, "Time budget, s (0 = off)", "train", "time_budget", False,
          "Stop on the clock even if epochs remain; the learning-rate schedule follows the clock. Handy in front "
          "of a class."),
    Field(S.TRAIN_MAX_TRAIN, "Max training images (0 = all)", "", "max_train", True, "", (0, math.inf),
          "0 (all) or more"),
    Field(S.TRAIN_MAX_TEST, "Max test images (0 = all)", "", "max_test", True, "", (0, math.inf), "0 (all) or more"),
)
BY_KEY = {f.key: f for f in FIELDS}
_DEFAULTS = {"seed": TrainConfig().seed, "max_train": 0, "max_test": 0}


def default(f: Field) -> int | float:
    """The field's default: the core dataclass's own (the image caps: 0, all images)."""
    return SETTINGS[f.section][f.name].default if f.section else _DEFAULTS[f.name]


def help_of(f: Field) -> str:
    """The field's help: the page's own words, else the core's (``Setting.help``)."""
    return f.help or (SETTINGS[f.section][f.name].help if f.section else "")


def fmt(value) -> str:
    """A number as the text box shows it: ``10``, ``0.005``, ``1e-05``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else f"{value:g}"


def _number(text: str) -> str:
    return f"{float(text):,.0f}" if float(text).is_integer() and abs(float(text)) >= 10_000 else text


@functools.cache
def rule(f: Field) -> str:
    """What the field accepts, in words, e.g. "1 to 128" (the core's declared range, ``Setting.range_text``)."""
    if not f.section:
        return f.own_text
    return _words(SETTINGS[f.section][f.name].range_text()) or "any number"


def _words(core: str) -> str:
    """The core's "1..128", "in (0, 10]", ">= 0", "0..604800 s" as "1 to 128", "above 0, up to 10", ..."""
    if m := re.fullmatch(r"(-?[\d.e+-]+)\.\.(-?[\d.e+-]+)( \w+)?", core):
        return f"{_number(m.group(1))} to {_number(m.group(2))}{m.group(3) or ''}"
    if m := re.fullmatch(r"in ([(\[])(-?[\d.e+-]+), (-?[\d.e+-]+)([)\]])( \w+)?", core):
        lo = f"above {m.group(2)}" if m.group(1) == "(" else f"from {m.group(2)}"
        hi = f"up to {_number(m.group(3))}" if m.group(4) == "]" else f"below {_number(m.group(3))}"
        return f"{lo}, {hi}{m.group(5) or ''}"
    if m := re.fullmatch(r"(>=|>|<=) (-?[\d.e+-]+)( \w+)?", core):
        op, v, unit = m.group(1), _number(m.group(2)), m.group(3) or ""
        return {">=": f"{v} or more", ">": f"above {v}", "<=": f"{v} or less"}[op] + unit
    return core


def parse(f: Field, text) -> int | float:
    """The value typed into ``f``, checked as the core checks it; raises ValueError with one line naming the field
    and what it accepts."""
    raw = str(text if text is not None else "").strip()
    kind = "a whole number" if f.whole else "a number"
    wrong = ValueError(f"{f.label} takes {kind} ({accepted(f)}); got {raw!r}" if raw else
                       f"{f.label} is empty; it takes {kind} ({accepted(f)})")
    try:
        value = float(raw.replace(",", "").replace("_", ""))
    except ValueError:
        raise wrong from None
    if not math.isfinite(value) or (f.whole and not value.is_integer()):
        raise wrong
    value = int(value) if f.whole else value
    outside = ValueError(f"{f.label} takes {kind} ({accepted(f)}), not {raw}")   # a number, but out of range
    if not (SETTINGS[f.section][f.name].accepts(value) if f.section else f.own[0] <= value <= f.own[1]):
        raise outside
    if value > (_server_limit(f) or math.inf):
        raise outside
    return value


def _server_limit(f: Field) -> float | None:
    """This server's limit on a run's epochs or time budget (``ui.quotas``; settings read on every call)."""
    return {"epochs": quotas.epochs_limit, "time_budget": quotas.time_limit}.get(f.name, lambda: None)()


def accepted(f: Field) -> str:
    """What the field accepts here: the core's range (``rule``), narrowed by the server's limits."""
    cap = _server_limit(f) if f.section == "train" else None
    if cap is None:
        return rule(f)
    if f.name == "time_budget":
        return f"0 to {cap:g} s, this server's limit; 0 means {cap:g} s here"
    return f"{SETTINGS['train'][f.name].lo:g} to {cap:,g}: this server's limit"


def objective_errors(objective: str, numbers: dict) -> list[str]:
    """What the core says about the objective with the other training numbers typed (IWAE takes no β, warm-up or
    free bits; β-TCVAE and FactorVAE take no free bits): one line, or nothing when they go together."""
    keys = ("beta", "warmup_epochs", "free_bits", "tc_weight")
    try:
        TrainConfig(objective=objective, **{k: numbers[k] for k in keys if k in numbers})
    except ConfigError as e:
        return [str(e)]
    return []


def layer_errors(layers: int, arch: str, conditional: bool, objective: str) -> list[str]:
    """What the core says about a second stochastic layer with this architecture, conditioning and objective (the
    unconditional MLP with the ELBO or IWAE only): one line, or nothing when they go together."""
    if layers == 1:
        return []
    try:
        RunConfig(model=ModelConfig(arch=arch, conditional=conditional, num_classes=2 if conditional else 0,
                                    latent_layers=layers), train=TrainConfig(objective=objective))
    except ConfigError as e:
        return [f"Stochastic layers: {e}"]
    return []


def init_state() -> None:
    """Each field starts at the core's default (once per session)."""
    for f in FIELDS:
        st.session_state.setdefault(f.key, fmt(default(f)))
    if st.session_state.get(S.TRAIN_DATA) in NOT_IN_APP:      # set by a link or a button, not by the list
        st.session_state[S.TRAIN_ERROR] = NOT_IN_APP[st.session_state.pop(S.TRAIN_DATA)]
    model, train = ModelConfig(), TrainConfig()
    for key, value in ((S.TRAIN_BATCH, train.batch_size), (S.TRAIN_ACTIVATION, model.activation),
                       (S.TRAIN_LIKELIHOOD, model.likelihood), (S.TRAIN_OBJECTIVE, train.objective)):
        st.session_state.setdefault(key, value)


def set_values(values: dict) -> None:
    """Button callbacks (Quick demo, a guided experiment): put settings into the form, numbers as text."""
    st.session_state.update({k: fmt(v) if k in BY_KEY else v for k, v in values.items()})


def number(where, key: str) -> str:
    """Draw the text box of field ``key`` in ``where`` with what it accepts under it, in red when the typed text
    is not accepted. Returns the text."""
    f = BY_KEY[key]
    text = where.text_input(f.label, key=f.key, help=help_of(f) or None)
    try:
        parse(f, text)
        where.caption(accepted(f))
    except ValueError:
        where.caption(f":red[{accepted(f)}]")
    return text


def values(keys) -> tuple[dict[str, int | float], list[str]]:
    """The parsed values of the fields ``keys`` by their value name, and one line per field that is wrong."""
    out, errors = {}, []
    for key in keys:
        f = BY_KEY[key]
        try:
            out[f.name] = parse(f, st.session_state.get(f.key))
        except ValueError as e:
            errors.append(str(e))
    return out, errors


# the Train page's "Press Enter to apply" hint sat on top of the typed value in these narrow boxes; a text box
# applies its value when it loses focus too, and the accepted range is written under each box
HIDE_ENTER_HINT = "<style>[data-testid='stMain'] [data-testid='InputInstructions'] { display: none; }</style>"
