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

from .safejson import JSONError, load_json

Arch = Literal["mlp", "conv", "foreign"]
Likelihood = Literal["bernoulli", "gaussian"]
Activation = Literal["relu", "elu", "silu", "leaky_relu"]
Prior = Literal["normal", "vamp"]

MIN_SIDE, MAX_SIDE = 8, 64
# The default MLP: one wide encoder layer and a deeper decoder, which learn the most per CPU second on MNIST; a 1- or
# 2-D latent, which the decoder must unfold from a sheet, gets one more decoder layer (the ablation behind each
# choice: README, Benchmarks).
DEFAULT_HIDDEN: tuple[int, ...] = (1024,)
DEFAULT_DECODER: tuple[int, ...] = (512, 1024)
DEFAULT_DECODER_LOW_D: tuple[int, ...] = (256, 512, 1024)  # for latent_dim <= 2
# The conv default: two stride-2 layers of 32 and 64 channels (28 -> 14 -> 7), the usual small MNIST conv VAE.
DEFAULT_CONV_HIDDEN: tuple[int, ...] = (32, 64)
MAX_LATENT = 128
IWAE_K = 5              # the IWAE objective's default samples per image (Burda et al. report k = 5 and 50)


class ConfigError(ValueError):
    """A configuration value is wrong; the message is one line."""


@dataclass(frozen=True)
class Setting:
    """What a config field accepts, declared once beside its default: the command line, the app's forms and
    the validation all read it (``setting(...)`` attaches it, ``settings_of(cls)`` lists them)."""

    name: str
    default: Any
    help: str = ""
    lo: float | None = None               # inclusive lower bound (exclusive with lo_open)
    hi: float | None = None               # inclusive upper bound
    lo_open: bool = False
    hi_open: bool = False
    unit: str = ""                        # appended to the range in messages, e.g. "s"
    choices: tuple | None = None          # from a Literal annotation

    def range_text(self) -> str:
        """The accepted range in words: ``1..128``, ``(0, 10]``, ``>= 0``."""
        unit = f" {self.unit}" if self.unit else ""
        if self.lo is not None and self.hi is not None:
            if self.lo_open or self.hi_open:
                left, right = "([" [not self.lo_open], ")]" [not self.hi_open]
                return f"in {left}{_num(self.lo)}, {_num(self.hi)}{right}{unit}"
            return f"{_num(self.lo)}..{_num(self.hi)}{unit}"
        if self.lo is not None:
            return f"{'>' if self.lo_open else '>='} {_num(self.lo)}{unit}"
        if self.hi is not None:
            return f"<= {_num(self.hi)}{unit}"
        return ""

    def accepts(self, value: Any) -> bool:
        if self.choices is not None and value not in self.choices:
            return False
        if value is None or isinstance(value, (str, tuple, bool)):
            return True
        if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
            return False
        return self.hi is None or (value < self.hi if self.hi_open else value <= self.hi)


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


def setting(default: Any = dataclasses.MISSING, help: str = "", *, lo: float | None = None, hi: float | None = None,
            lo_open: bool = False, hi_open: bool = False, unit: str = "", factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field whose default, accepted range and one-line help live together."""
    meta = {"help": help, "lo": lo, "hi": hi, "lo_open": lo_open, "hi_open": hi_open, "unit": unit}
    if factory is not dataclasses.MISSING:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def settings_of(cls: type) -> dict[str, Setting]:
    """Every field of config class ``cls`` with its default, range, choices and help, by name."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        meta = f.metadata or {}
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        tp = hints[f.name]
        choices = typing.get_args(tp) if typing.get_origin(tp) is Literal else None
        out[f.name] = Setting(f.name, default, meta.get("help", ""), meta.get("lo"), meta.get("hi"),
                              bool(meta.get("lo_open")), bool(meta.get("hi_open")), meta.get("unit", ""), choices)
    return out


def _check_settings(obj: Any, section: str) -> None:
    """Refuse a field outside its declared range or choices, with the field and what it accepts."""
    for name, s in settings_of(type(obj)).items():
        v = getattr(obj, name)
        if s.choices is not None and v not in s.choices:
            raise ConfigError(f"{section}.{name} must be one of {list(s.choices)}, got {v!r}")
        if isinstance(v, (int, float)) and not isinstance(v, bool) and not s.accepts(v):
            raise ConfigError(f"{section}.{name} must be {s.range_text()}, got {v}")


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


MAX_WIDTH = 4096


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the model. Every tensor shape in ``vae.models`` derives from this."""

    arch: Arch = setting("mlp", "mlp: fastest on a CPU at 28x28; conv: sharper, slower; foreign: a model written in "
                                "its user's own code and logged with vae.track (its shapes only are described here)")
    channels: int = setting(1, "1 grey, 3 RGB", lo=1, hi=3)
    image_size: int = setting(28, "square side of the images", lo=MIN_SIDE, hi=MAX_SIDE)
    latent_dim: int = setting(20, "latent dimensions; 20 as in Kingma & Welling's MNIST experiments", lo=1,
                              hi=MAX_LATENT)
    hidden: tuple[int, ...] | None = setting(
        None, "mlp: the encoder's hidden widths from the pixels inward; conv: channels per stride-2 layer. None: "
              "the measured default (one wide MLP layer learns fastest per CPU second)")
    decoder_hidden: tuple[int, ...] | None = setting(
        None, "mlp: the decoder's widths from z outward; () mirrors hidden; None: the measured recipe (512,1024, or "
              "256,512,1024 for a 1- or 2-D latent) with the default hidden, else the mirror. conv: unused")
    fc_dim: int = setting(256, "conv only: width of the dense layer between features and latent", lo=1, hi=MAX_WIDTH)
    activation: Activation = setting("relu", "relu is the cheapest on a CPU; elu/silu are smoother")
    likelihood: Likelihood = setting("bernoulli", "bernoulli on logits suits [0,1] pixels; gaussian for photos")
    gaussian_sigma: float = setting(0.1, "fixed sigma of the Gaussian likelihood (pixel scale 0..1)", lo=1e-3, hi=10)
    learn_sigma: bool = setting(False, "learn one log-sigma per channel instead (sigma-VAE)")
    conditional: bool = setting(False, "CVAE: encoder and decoder also see the one-hot label")
    num_classes: int = setting(0, "label count for a conditional model", lo=0, hi=1000)
    prior: Prior = setting("normal", "normal: N(0, I). vamp: the VampPrior (Tomczak & Welling 2018), a mixture of "
                                     "the posteriors of learned pseudo-inputs")
    prior_components: int = setting(500, "vamp: pseudo-inputs (500, as in the paper)", lo=1, hi=5000)
    latent_layers: int = setting(1, "2: a lower layer z1 under z (Tomczak & Welling 2018's hierarchical VAE, mlp): "
                                    "q(z|x) q(z1|x,z), p(z) p(z1|z) p(x|z1,z); pages show z", lo=1, hi=2)

    def __post_init__(self) -> None:
        _check(self.arch in ("mlp", "conv", "foreign"),
               f"model.arch must be 'mlp', 'conv' or 'foreign', got {self.arch!r}")
        if self.hidden is None:
            object.__setattr__(self, "hidden", default_hidden(self.arch))
        if self.decoder_hidden is None:  # resolve once; a saved config always holds the widths
            recipe = self.arch == "mlp" and tuple(self.hidden) == DEFAULT_HIDDEN
            low_d = DEFAULT_DECODER_LOW_D if self.latent_dim <= 2 else DEFAULT_DECODER
            object.__setattr__(self, "decoder_hidden", low_d if recipe else ())
        _check(all(1 <= h <= MAX_WIDTH for h in self.decoder_hidden),
               f"model.decoder_hidden must be widths in 1..{MAX_WIDTH} (or empty to mirror hidden), "
               f"got {list(self.decoder_hidden)}")
        _check(self.channels in (1, 3), f"model.channels must be 1 or 3, got {self.channels}")
        _check_settings(self, "model")
        _check(len(self.hidden) >= 1 and all(1 <= h <= MAX_WIDTH for h in self.hidden),
               f"model.hidden must be 1+ widths in 1..{MAX_WIDTH}, got {list(self.hidden)}")
        if self.arch == "conv":
            _check(len(self.hidden) <= 4, f"model.hidden for conv is 1..4 channel counts, got {list(self.hidden)}")
            _check(self.image_size >> len(self.hidden) >= 1,
                   f"{len(self.hidden)} conv layers are too many for image_size {self.image_size}")
        _check(not self.conditional or self.num_classes >= 2,
               "a conditional model needs labelled data with at least 2 classes")
        _check(self.prior == "normal" or not self.conditional,
               "the VampPrior's pseudo-inputs have no labels: a conditional model takes prior 'normal'")
        _check(self.latent_layers == 1 or (self.arch == "mlp" and not self.conditional),
               "model.latent_layers 2 is built for the unconditional mlp; use latent_layers 1 with "
               f"{'a conditional model' if self.conditional else 'arch ' + repr(self.arch)}")

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
    """How to train. Defaults are the fast, good recipe measured in bench/ (README, Benchmarks)."""

    epochs: int = setting(10, "passes over the training images", lo=1, hi=100_000)
    batch_size: int = setting(512, "images per step; 4x the usual 128 gives 1.6x the images/s on 2 CPU cores",
                              lo=1, hi=65_536)
    lr: float = setting(5e-3, "Adam's peak learning rate (with batch 512, the warm-up and the cosine decay)", lo=0,
                        hi=10, lo_open=True)
    lr_schedule: Literal["constant", "cosine"] = setting("cosine", "cosine: decay to lr_min_factor * lr over the run")
    lr_min_factor: float = setting(0.05, "the cosine schedule's final rate, as a share of lr", lo=0, hi=1)
    lr_warmup: float = setting(0.15, "share of the run over which the rate ramps up linearly first; without it the "
                                     "20-D model shuts most latent dimensions early", lo=0, hi=0.5)
    beta: float = setting(1.0, "weight of the KL term (1 = the ELBO)", lo=0, hi=1000)
    warmup_epochs: float = setting(0.0, "the KL weight ramps 0 -> beta linearly over this many epochs", lo=0)
    free_bits: float = setting(0.0, "nats per latent dimension below which the KL is not penalised (Kingma et al. "
                                    "2016)", lo=0)
    grad_clip: float = setting(0.0, "largest gradient L2 norm; 0 = no clipping", lo=0)
    weight_decay: float = setting(0.0, "Adam's weight decay", lo=0)
    seed: int = setting(0, "seeds the weights, the shuffling and the noise")
    binarize: bool = setting(False, "dynamic binarisation: resample x ~ Bernoulli(pixels) every batch")
    threads: int = setting(0, "torch CPU threads; 0 = all cores", lo=0, hi=1024)
    device: str = setting("auto", "auto picks cuda, then mps, then cpu")
    recon_every: int = setting(50, "steps between reconstruction snapshots in step events", lo=1)
    eval_every_epoch: bool = setting(True, "test -ELBO after each epoch (the live curves need it)")
    time_budget: float = setting(0.0, "seconds of training (0 = off); the schedule then follows the clock", lo=0,
                                 hi=7 * 86400, unit="s")
    output_bias_init: bool = setting(True, "start the decoder's output bias at the mean training pixel's logit")
    precision: Literal["fp32", "bf16"] = setting("fp32", "bf16: the forward pass under autocast (losses, gradients "
                                                         "and Adam fp32); pays with bf16 units (GPUs, avx512_bf16)")
    objective: Literal["elbo", "iwae", "btcvae", "factorvae"] = setting(
        "elbo", "iwae: the importance-weighted bound of Burda et al. 2016; btcvae: beta-TCVAE (Chen et al. 2018), the "
                "KL split into index-code MI, total correlation (weighted by tc_weight) and dimension-wise KL; "
                "factorvae: FactorVAE (Kim & Mnih 2018), the ELBO plus tc_weight times a discriminator's estimate of "
                "the total correlation")
    tc_weight: float = setting(6.0, "btcvae and factorvae: the weight of the total correlation (beta-TCVAE's beta, "
                                    "FactorVAE's gamma)", lo=0, hi=1000)
    tc_estimator: Literal["mws", "mss"] = setting(
        "mws", "btcvae: how the batch estimates the aggregate posterior q(z); mws: minibatch weighted sampling, mss: "
               "minibatch stratified sampling (Chen et al. 2018, section 4.1 and appendix)")
    iw_k: int | None = setting(None, "iwae: importance samples per image (None: 5 with iwae, 1 with the ELBO)", lo=1,
                               hi=1000)

    def __post_init__(self) -> None:
        if self.iw_k is None:             # resolved once; a saved config always holds the number
            object.__setattr__(self, "iw_k", IWAE_K if self.objective == "iwae" else 1)
        _check_settings(self, "train")
        _check(self.device in ("auto", "cpu", "cuda", "mps") or self.device.startswith("cuda:"),
               f"train.device must be auto, cpu, cuda or mps, got {self.device!r}")
        _check(self.objective == "iwae" or self.iw_k == 1,
               f"train.iw_k is the IWAE objective's sample count; with the ELBO it must be 1 (or set train.objective "
               f"to iwae), got {self.iw_k}")
        _check(self.objective != "iwae" or (self.beta == 1 and self.warmup_epochs == 0 and self.free_bits == 0),
               "the IWAE objective is a bound on log p(x) and takes no beta, KL warm-up or free bits "
               f"(got beta {self.beta:g}, warm-up {self.warmup_epochs:g}, free bits {self.free_bits:g}); "
               "use them with the ELBO objective")
        _check(self.objective not in ("btcvae", "factorvae") or self.free_bits == 0,
               f"train.free_bits floor each dimension's KL, which the {self.objective} objective splits otherwise; "
               f"use free_bits 0 with it (got {self.free_bits:g})")


@dataclass(frozen=True)
class DataConfig:
    """Where the data came from and how it was prepared, so a run can reload it."""

    name: str = setting("mnist5k", "a built-in data set's name or the path that was given")
    image_size: int | None = setting(None, "resize side (None = native)", lo=MIN_SIDE, hi=MAX_SIDE)
    color: Literal["grey", "rgb"] | None = setting(None, "convert to grey or RGB (None = as stored)")
    test_fraction: float = setting(0.1, "held-out share when the data has no official test split", lo=0, hi=1,
                                   lo_open=True, hi_open=True)
    split_seed: int = setting(0, "seed of that split")
    max_train: int | None = setting(None, "use at most this many training images", lo=1)
    max_test: int | None = setting(None, "use at most this many test images", lo=1)

    def __post_init__(self) -> None:
        _check(isinstance(self.name, str) and 0 < len(self.name) <= 4096, "data.name must be a non-empty string")
        _check(self.color in (None, "grey", "rgb"), f"data.color must be grey or rgb, got {self.color!r}")
        _check_settings(self, "data")


@dataclass(frozen=True)
class SemisupConfig:
    """Semi-supervised M1+M2 (``kind: "semisup"``, ``vae.usecases.semisup``): M1 is the VAE of ``model`` trained with
    ``train`` on every training image; then M2 on its codes with ``labels`` labelled images, first ``m2_epochs`` on M1's
    frozen codes (Kingma et al. 2014), then ``joint_epochs`` of M1 and M2 together."""

    labels: int | None = setting(100, "labelled images, balanced per class (None: every label)", lo=1)
    label_seed: int | None = setting(None, "seed of the labelled subset (None: train.seed); subsets can share one M1")
    m2_epochs: int = setting(0, "epochs of M2 on M1's frozen codes first (Kingma et al.'s M1+M2)", lo=0, hi=100_000)
    joint_epochs: int = setting(30, "epochs of M1 and M2 trained together: M1's ELBO, M2's objective, the labels' "
                                    "cross-entropy reaching M1's encoder, pseudo-labels from barely shifted to "
                                    "distorted views (0: M1 stays as it was trained)", lo=0, hi=100_000)
    batch_size: int = setting(100, "unlabelled (and as many labelled) images per M2 or joint step", lo=1, hi=65_536)
    lr: float = setting(1e-3, "Adam's rate for the M2 and joint stages (cosine decay to 5 %)", lo=0, hi=10,
                        lo_open=True)
    alpha: float | None = setting(None, "weight of the labels' cross-entropy (None: 0.1 N / labels, the paper's "
                                        "0.1 N per example)", lo=0)
    consistency: float = setting(0.0, "M2 stage: weight of KL(q(y|z1) || q(y|z1')) between two posterior draws of "
                                      "each unlabelled image", lo=0)
    augment: float = setting(1.0, "joint stage: strength of the distorted view (1: up to 15 degrees, 15 % zoom, 3 px "
                                  "shift at 28 px; 0: none)", lo=0, hi=3)
    elastic: float = setting(3.0, "joint stage: the distorted view's smooth random warp, its largest displacement in "
                                  "pixels at 28 px (0: none)", lo=0, hi=8)
    classifier: Literal["features", "code"] = setting(
        "features", "what q(y|x) reads: M1's encoder's last hidden layer (features) or M1's code z1 (code, Kingma et "
                    "al.'s M1+M2)")
    augment_weight: float | None = setting(None, "joint stage: weight of the distorted views' pseudo-label "
                                                 "cross-entropy (None: alpha; 0: off)", lo=0)
    pseudo_threshold: float = setting(0.95, "confidence a weak view's class needs to become a pseudo-label", lo=0, hi=1,
                                      lo_open=True)
    m2_hidden: int = setting(500, "M2's hidden width (Kingma et al. used 500)", lo=1, hi=MAX_WIDTH)
    m2_latent: int = setting(32, "M2's z2 size; small, as z1 is already a compact code", lo=1, hi=MAX_LATENT)
    m1_from: str | None = setting(None, "a semisup run folder whose label-free M1 (made with joint_epochs 0) is reused "
                                        "instead of training one")
    baseline: bool = setting(True, "also fit logistic regression on the labelled images' raw pixels")

    def __post_init__(self) -> None:
        _check_settings(self, "semisup")
        _check(self.m2_epochs + self.joint_epochs >= 1,
               f"semisup: M2 needs at least one epoch in all: m2_epochs {self.m2_epochs}, joint_epochs "
               f"{self.joint_epochs}")
        _check(self.consistency == 0 or self.classifier == "code",
               "semisup: consistency compares two posterior draws of a code, so it needs classifier 'code' (the "
               "features of a frozen M1 have one value per image)")


@dataclass(frozen=True)
class TrackedConfig:
    """A model written in its user's own code and logged from their own loop (``kind: "tracked"``, ``vae.track``):
    ``model`` describes its shapes and likelihood, this what its stored programs return."""

    output: Literal["logits", "probs", "mean"] = setting(
        "logits", "what decode returns: Bernoulli logits, probabilities, or a Gaussian mean in [0, 1]")
    source: str = setting("", "the user's model class, for the pages to name it")

    def __post_init__(self) -> None:
        _check_settings(self, "tracked")
        _check(len(self.source) <= 200, "tracked.source must be at most 200 characters")


@dataclass(frozen=True)
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    kind: Literal["vae", "semisup", "tracked"] = "vae"
    semisup: SemisupConfig | None = None     # kind "semisup" only (filled with the defaults when absent)
    tracked: TrackedConfig | None = None     # kind "tracked" only

    def __post_init__(self) -> None:
        if self.kind == "semisup" and self.semisup is None:
            object.__setattr__(self, "semisup", SemisupConfig())
        _check(self.kind == "semisup" or self.semisup is None, "only a semisup run has a semisup section")
        if self.kind == "tracked" and self.tracked is None:
            object.__setattr__(self, "tracked", TrackedConfig())
        _check(self.kind == "tracked" or self.tracked is None, "only a tracked run has a tracked section")
        _check((self.kind == "tracked") == (self.model.arch == "foreign"),
               "a tracked run's model is foreign (model.arch 'foreign'), and only a tracked run's is")
        _check(self.model.prior == "normal" or self.train.objective not in ("btcvae", "factorvae"),
               f"the {self.train.objective} objective measures the total correlation against the factorised prior "
               "N(0, I); use prior 'normal' with it")
        _check(self.model.latent_layers == 1 or self.kind == "vae",
               f"a {self.kind} run has one stochastic layer: use model.latent_layers 1")
        _check(self.model.latent_layers == 1 or self.train.objective in ("elbo", "iwae"), f"the {self.train.objective} "
               "objective splits one layer's KL; with latent_layers 2 use the elbo or iwae objective")
        _check(self.model.prior == "normal" or self.train.free_bits == 0,
               "free bits floor each dimension's KL to N(0, I), which the VampPrior does not have: "
               f"use free_bits 0 with prior 'vamp' (got {self.train.free_bits:g})")

    def to_dict(self) -> dict[str, Any]:
        out = {"kind": self.kind, "model": _asdict(self.model), "train": _asdict(self.train),
               "data": _asdict(self.data)}
        for name in ("semisup", "tracked"):
            if getattr(self, name) is not None:
                out[name] = _asdict(getattr(self, name))
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: Any) -> "RunConfig":
        if not isinstance(d, dict):
            raise ConfigError("config must be a JSON object with keys model, train, data")
        unknown = set(d) - {"model", "train", "data", "kind", "semisup", "tracked"}
        if unknown:
            raise ConfigError(f"config has unknown keys {sorted(unknown)}; accepted: model, train, data, kind, "
                              "semisup, tracked")
        kind = d.get("kind", "vae")
        # A config written before these keys existed describes a run made without them: a mirrored
        # decoder, no learning-rate warm-up, torch's zero output bias.
        model, train = d.get("model", {}), d.get("train", {})
        if isinstance(model, dict):
            model = {"decoder_hidden": [], **model}
        if isinstance(train, dict):
            train = {"lr_warmup": 0.0, "output_bias_init": False, **train}
        _check(kind in ("vae", "semisup", "tracked"),
               f"config.kind must be 'vae', 'semisup' or 'tracked', got {kind!r}")
        semi, tracked = d.get("semisup"), d.get("tracked")
        if isinstance(semi, dict):   # a semisup run from before these keys: q(y|z1) on the code, no warp
            semi = {"classifier": "code", "elastic": 0.0, **semi}
        return cls(model=from_dict(ModelConfig, model), train=from_dict(TrainConfig, train),
                   data=from_dict(DataConfig, d.get("data", {})), kind=kind,
                   semisup=None if semi is None else from_dict(SemisupConfig, semi),
                   tracked=None if tracked is None else from_dict(TrackedConfig, tracked))

    @classmethod
    def from_json(cls, text: str | bytes) -> "RunConfig":
        try:
            d = load_json(text, "config.json")
        except JSONError as e:
            raise ConfigError(str(e)) from None
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
