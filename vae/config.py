"""Frozen configuration dataclasses with a strict JSON round trip.

A run folder's ``config.json`` holds ``{"model": ModelConfig, "train": TrainConfig,
"data": DataConfig}``: everything needed to rebuild the model and the data pipeline.
Loading is strict: unknown keys, wrong types and out-of-range values are refused
with one clear line (``ConfigError``), because a config may come from a user upload.
"""
from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

Arch = Literal["mlp", "conv"]
Likelihood = Literal["bernoulli", "gaussian"]
Activation = Literal["relu", "elu", "silu", "leaky_relu"]
Prior = Literal["normal", "vamp"]

MIN_SIDE, MAX_SIDE = 8, 64
# The default MLP: one wide encoder layer and a deeper decoder. Measured on full MNIST (README, Benchmarks:
# bench/recipe_ablation.sh and bench/recipe_search.py):
# a deeper decoder pays and a deeper encoder does not; a 20-D latent wants a wide first decoder layer
# (512, 1024: 97.5 nats in 98 s against 99.4 for 256, 512, 1024), a 2-D latent, which the decoder must
# unfold from a sheet, one more layer (256, 512, 1024: 144.3-144.9 nats in 60 s against 144.7-145.0; two seeds each).
DEFAULT_HIDDEN: tuple[int, ...] = (1024,)
DEFAULT_DECODER: tuple[int, ...] = (512, 1024)
DEFAULT_DECODER_LOW_D: tuple[int, ...] = (256, 512, 1024)  # for latent_dim <= 2
# The conv default: two stride-2 layers of 32 and 64 channels (28 -> 14 -> 7), the usual small MNIST conv VAE.
DEFAULT_CONV_HIDDEN: tuple[int, ...] = (32, 64)
MAX_LATENT = 128


class ConfigError(ValueError):
    """A configuration value is wrong; the message is one line."""


def default_hidden(arch: str) -> tuple[int, ...]:
    """The measured default widths for ``arch``: the MLP encoder's hidden layers or the conv channels."""
    return DEFAULT_CONV_HIDDEN if arch == "conv" else DEFAULT_HIDDEN


def parse_widths(text: str, *, mirror: bool = False) -> tuple[int, ...]:
    """``"512,256"`` -> ``(512, 256)``; with ``mirror=True``, ``"mirror"`` -> ``()`` (the decoder mirrors the
    encoder). The one parser of layer widths for the command line and the app; one-line ``ConfigError``."""
    text = (text or "").strip()
    if mirror and text.lower() == "mirror":
        return ()
    try:
        vals = tuple(int(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        raise ConfigError(f"layer widths are comma-separated whole numbers like 512,256"
                          f"{' (or mirror)' if mirror else ''}, got {text!r}") from None
    if not vals:
        raise ConfigError("layer widths need at least one number, like 512,256")
    return vals


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the model. Every tensor shape in ``vae.models`` derives from this."""

    arch: Arch = "mlp"                    # mlp: fastest on a CPU at 28x28; conv: sharper, slower
    channels: int = 1                     # 1 grey, 3 RGB
    image_size: int = 28                  # square side, 8..64
    latent_dim: int = 20                  # 20 as in Kingma & Welling's MNIST experiments
    hidden: tuple[int, ...] | None = None  # mlp: the encoder's hidden widths, from the pixels inward; conv: channels
                                          # per stride-2 layer. None: DEFAULT_HIDDEN (one wide layer learns fastest
                                          # per CPU second) or DEFAULT_CONV_HIDDEN; a saved config holds the widths
    decoder_hidden: tuple[int, ...] | None = None  # mlp: the decoder's widths from z outward; () mirrors hidden;
                                          # None: the measured recipe (DEFAULT_DECODER, or DEFAULT_DECODER_LOW_D
                                          # for a 1- or 2-D latent) with the default hidden, else the mirror.
                                          # conv: unused (its decoder mirrors the channels)
    fc_dim: int = 256                     # conv only: width of the dense layer between features and latent
    activation: Activation = "relu"       # relu is the cheapest on a CPU; elu/silu are smoother
    likelihood: Likelihood = "bernoulli"  # Bernoulli on logits suits [0,1] pixels; gaussian for photos
    gaussian_sigma: float = 0.1           # fixed sigma of the Gaussian likelihood (pixel scale 0..1)
    learn_sigma: bool = False             # learn one log-sigma per channel instead (sigma-VAE)
    conditional: bool = False             # CVAE: encoder and decoder also see the one-hot label
    num_classes: int = 0                  # label count for a conditional model
    prior: Prior = "normal"               # normal: N(0, I). vamp: the VampPrior (Tomczak & Welling 2018), a mixture
                                          # of the posteriors of learned pseudo-inputs; about 1.9 nats better
                                          # IW-NLL at equal CPU time on binarised MNIST (bench/binarized_nll.py)
    prior_components: int = 500           # vamp: pseudo-inputs (500, as in the paper)

    def __post_init__(self) -> None:
        _check(self.arch in ("mlp", "conv"), f"model.arch must be 'mlp' or 'conv', got {self.arch!r}")
        if self.hidden is None:
            object.__setattr__(self, "hidden", default_hidden(self.arch))
        if self.decoder_hidden is None:  # resolve once; a saved config always holds the widths
            recipe = self.arch == "mlp" and tuple(self.hidden) == DEFAULT_HIDDEN
            low_d = DEFAULT_DECODER_LOW_D if self.latent_dim <= 2 else DEFAULT_DECODER
            object.__setattr__(self, "decoder_hidden", low_d if recipe else ())
        _check(all(1 <= h <= 4096 for h in self.decoder_hidden),
               "model.decoder_hidden must be widths in 1..4096 (or empty to mirror hidden), "
               f"got {list(self.decoder_hidden)}")
        _check(self.channels in (1, 3), f"model.channels must be 1 or 3, got {self.channels}")
        _check(MIN_SIDE <= self.image_size <= MAX_SIDE,
               f"model.image_size must be {MIN_SIDE}..{MAX_SIDE}, got {self.image_size}")
        _check(1 <= self.latent_dim <= MAX_LATENT, f"model.latent_dim must be 1..{MAX_LATENT}, got {self.latent_dim}")
        _check(len(self.hidden) >= 1 and all(1 <= h <= 4096 for h in self.hidden),
               f"model.hidden must be 1+ widths in 1..4096, got {list(self.hidden)}")
        if self.arch == "conv":
            _check(len(self.hidden) <= 4, f"model.hidden for conv is 1..4 channel counts, got {list(self.hidden)}")
            _check(self.image_size >> len(self.hidden) >= 1,
                   f"{len(self.hidden)} conv layers are too many for image_size {self.image_size}")
        _check(self.activation in typing.get_args(Activation),
               f"model.activation must be one of {list(typing.get_args(Activation))}, got {self.activation!r}")
        _check(1 <= self.fc_dim <= 4096, f"model.fc_dim must be 1..4096, got {self.fc_dim}")
        _check(self.likelihood in ("bernoulli", "gaussian"),
               f"model.likelihood must be 'bernoulli' or 'gaussian', got {self.likelihood!r}")
        _check(1e-3 <= self.gaussian_sigma <= 10, f"model.gaussian_sigma must be 0.001..10, got {self.gaussian_sigma}")
        _check(0 <= self.num_classes <= 1000, f"model.num_classes must be 0..1000, got {self.num_classes}")
        _check(not self.conditional or self.num_classes >= 2,
               "a conditional model needs labelled data with at least 2 classes")
        _check(self.prior in typing.get_args(Prior),
               f"model.prior must be one of {list(typing.get_args(Prior))}, got {self.prior!r}")
        _check(1 <= self.prior_components <= 5000,
               f"model.prior_components must be 1..5000, got {self.prior_components}")
        _check(self.prior == "normal" or not self.conditional,
               "the VampPrior's pseudo-inputs have no labels: a conditional model takes prior 'normal'")

    @property
    def decoder_widths(self) -> tuple[int, ...]:
        """The MLP decoder's hidden widths from z outward."""
        return tuple(self.decoder_hidden) or tuple(reversed(self.hidden))

    @property
    def data_dim(self) -> int:
        """Number of pixel values per image (C*H*W)."""
        return self.channels * self.image_size * self.image_size


@dataclass(frozen=True)
class TrainConfig:
    """How to train. Defaults are the fast, good recipe measured in bench/."""

    epochs: int = 10
    batch_size: int = 512                 # 4x the standard 128: 1.6x the samples/s of batch 128 on 2 CPU cores
    lr: float = 5e-3                      # with batch 512, the warm-up and the cosine decay (bench/README.md)
    lr_schedule: Literal["constant", "cosine"] = "cosine"  # cosine decay to lr_min_factor*lr over the run
    lr_min_factor: float = 0.05
    lr_warmup: float = 0.15               # share of the run (0..0.5) over which the lr ramps up linearly first;
                                          # without it, at this rate the 20-D model shuts most latent dims early
                                          # (124.4 nats, 7 active units, against 97.4 and 17: recipe_ablation.sh)
    beta: float = 1.0                     # weight of the KL term (1 = the ELBO)
    warmup_epochs: float = 0.0            # KL weight ramps 0 -> beta linearly over this many epochs
    free_bits: float = 0.0                # nats per latent dim below which KL is not penalised (Kingma et al. 2016)
    grad_clip: float = 0.0                # max gradient L2 norm; 0 = no clipping
    weight_decay: float = 0.0
    seed: int = 0
    binarize: bool = False                # dynamic binarisation: resample x ~ Bernoulli(pixels) every batch
    threads: int = 0                      # torch CPU threads; 0 = all cores
    device: str = "auto"                  # auto picks cuda, then mps, then cpu
    recon_every: int = 50                 # steps between reconstruction snapshots in step events
    eval_every_epoch: bool = True         # test -ELBO after each epoch (needed for the live curves)
    time_budget: float = 0.0              # seconds of training (0 = off); the lr schedule then follows the clock
    output_bias_init: bool = True         # start the decoder's output bias at the mean training pixel's logit
    precision: Literal["fp32", "bf16"] = "fp32"  # bf16: the forward pass under autocast (losses, gradients and
                                          # Adam stay fp32); pays on GPUs with bf16 units, costs on most CPUs
    objective: Literal["elbo", "iwae"] = "elbo"  # iwae: the importance-weighted bound of Burda et al. 2016
    iw_k: int = 1                         # iwae: importance samples per image (k = 1 is the ELBO, sampled)

    def __post_init__(self) -> None:
        _check(1 <= self.epochs <= 100_000, f"train.epochs must be 1..100000, got {self.epochs}")
        _check(1 <= self.batch_size <= 65_536, f"train.batch_size must be 1..65536, got {self.batch_size}")
        _check(0 < self.lr <= 10, f"train.lr must be in (0, 10], got {self.lr}")
        _check(self.lr_schedule in ("constant", "cosine"),
               f"train.lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}")
        _check(0 <= self.lr_min_factor <= 1, f"train.lr_min_factor must be 0..1, got {self.lr_min_factor}")
        _check(0 <= self.lr_warmup <= 0.5, f"train.lr_warmup must be 0..0.5 (a share of the run), got {self.lr_warmup}")
        _check(0 <= self.beta <= 1000, f"train.beta must be 0..1000, got {self.beta}")
        _check(self.warmup_epochs >= 0, f"train.warmup_epochs must be >= 0, got {self.warmup_epochs}")
        _check(self.free_bits >= 0, f"train.free_bits must be >= 0, got {self.free_bits}")
        _check(self.grad_clip >= 0, f"train.grad_clip must be >= 0, got {self.grad_clip}")
        _check(self.weight_decay >= 0, f"train.weight_decay must be >= 0, got {self.weight_decay}")
        _check(0 <= self.threads <= 1024, f"train.threads must be 0..1024, got {self.threads}")
        _check(self.device in ("auto", "cpu", "cuda", "mps") or self.device.startswith("cuda:"),
               f"train.device must be auto, cpu, cuda or mps, got {self.device!r}")
        _check(0 <= self.time_budget <= 7 * 86400, f"train.time_budget must be 0..604800 s, got {self.time_budget}")
        _check(self.recon_every >= 1, f"train.recon_every must be >= 1, got {self.recon_every}")
        _check(self.precision in ("fp32", "bf16"), f"train.precision must be fp32 or bf16, got {self.precision!r}")
        _check(self.objective in ("elbo", "iwae"), f"train.objective must be elbo or iwae, got {self.objective!r}")
        _check(1 <= self.iw_k <= 1000, f"train.iw_k must be 1..1000, got {self.iw_k}")
        _check(self.objective == "iwae" or self.iw_k == 1,
               f"train.iw_k is the IWAE objective's sample count; with the ELBO it must be 1, got {self.iw_k}")
        _check(self.objective == "elbo" or (self.beta == 1 and self.warmup_epochs == 0 and self.free_bits == 0),
               "the IWAE objective is a bound on log p(x) and takes no beta, KL warm-up or free bits "
               f"(got beta {self.beta:g}, warm-up {self.warmup_epochs:g}, free bits {self.free_bits:g}); "
               "use them with the ELBO objective")


@dataclass(frozen=True)
class DataConfig:
    """Where the data came from and how it was prepared, so a run can reload it."""

    name: str = "mnist5k"                 # built-in name or the path that was given
    image_size: int | None = None         # resize side (None = native)
    color: Literal["grey", "rgb"] | None = None
    test_fraction: float = 0.1            # held-out share when the data has no official test split
    split_seed: int = 0
    max_train: int | None = None
    max_test: int | None = None

    def __post_init__(self) -> None:
        _check(isinstance(self.name, str) and 0 < len(self.name) <= 4096, "data.name must be a non-empty string")
        _check(self.color in (None, "grey", "rgb"), f"data.color must be grey or rgb, got {self.color!r}")
        _check(0 < self.test_fraction < 1, f"data.test_fraction must be in (0, 1), got {self.test_fraction}")


@dataclass(frozen=True)
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    kind: Literal["vae", "semisup"] = "vae"

    def __post_init__(self) -> None:
        _check(self.model.prior == "normal" or self.train.free_bits == 0,
               "free bits floor each dimension's KL to N(0, I), which the VampPrior does not have: "
               f"use free_bits 0 with prior 'vamp' (got {self.train.free_bits:g})")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "model": _asdict(self.model), "train": _asdict(self.train),
                "data": _asdict(self.data)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: Any) -> "RunConfig":
        if not isinstance(d, dict):
            raise ConfigError("config must be a JSON object with keys model, train, data")
        unknown = set(d) - {"model", "train", "data", "kind"}
        if unknown:
            raise ConfigError(f"config has unknown keys {sorted(unknown)}; accepted: model, train, data, kind")
        kind = d.get("kind", "vae")
        # A config written before these keys existed describes a run made without them: a mirrored
        # decoder, no learning-rate warm-up, torch's zero output bias.
        model, train = d.get("model", {}), d.get("train", {})
        if isinstance(model, dict):
            model = {"decoder_hidden": [], **model}
        if isinstance(train, dict):
            train = {"lr_warmup": 0.0, "output_bias_init": False, **train}
        _check(kind in ("vae", "semisup"), f"config.kind must be 'vae' or 'semisup', got {kind!r}")
        return cls(model=from_dict(ModelConfig, model), train=from_dict(TrainConfig, train),
                   data=from_dict(DataConfig, d.get("data", {})), kind=kind)

    @classmethod
    def from_json(cls, text: str) -> "RunConfig":
        try:
            d = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"config.json is not valid JSON ({e.msg} at line {e.lineno})") from None
        return cls.from_dict(d)


def _check(ok: bool, msg: str) -> None:
    if not ok:
        raise ConfigError(msg)


def _asdict(obj: Any) -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        out[f.name] = list(v) if isinstance(v, tuple) else v
    return out


def _coerce(name: str, tp: Any, value: Any) -> Any:
    """Check ``value`` (from JSON) against the annotation ``tp`` and convert lists to tuples."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{name} must be one of {list(args)}, got {value!r}")
        return value
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(name, a, value)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{name} has a wrong type")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name} must be a list, got {type(value).__name__}")
        return tuple(_coerce(name, args[0], v) for v in value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value in (
                float("inf"), float("-inf")):
            raise ConfigError(f"{name} must be a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name} must be a string, got {value!r}")
        return value
    raise ConfigError(f"{name}: unsupported type {tp}")


def from_dict(cls: type, d: Any):
    """Build dataclass ``cls`` from a JSON object, refusing unknown keys and wrong types."""
    section = cls.__name__.replace("Config", "").lower()
    if not isinstance(d, dict):
        raise ConfigError(f"config section {section!r} must be a JSON object")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ConfigError(f"config section {section!r} has unknown keys {sorted(unknown)}")
    kwargs = {k: _coerce(f"{section}.{k}", hints[k], v) for k, v in d.items()}
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ConfigError(f"config section {section!r}: {e}") from None


def replace(obj, **changes):
    """``dataclasses.replace`` that re-runs validation (frozen dataclasses validate in __post_init__)."""
    return dataclasses.replace(obj, **changes)
