"""What a run folder records, as types: one schema with a version, and one reader that upgrades older folders.

``metrics.json`` is :class:`Metrics` (``Metrics.from_dict`` reads every version written since the first, the demo
runs among them; ``to_dict`` writes the current one); each line of ``events.jsonl`` is an event whose fields are
listed in :data:`EVENTS`; ``snapshots/epoch-NNNN.npz`` and ``live.npz`` are :class:`Snapshot`. :data:`FILES` lists
every file a run folder may hold, for the README's "Run folders" section (a test keeps the two in step) and for
anyone reading a folder by hand.

Figures are nats per image (sums over pixels or latent dimensions, means over images) unless their name says
otherwise (``bits_per_dim``, ``test_error``, ``grad_norm``).
"""
from __future__ import annotations

import dataclasses
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .util import atomic_write_bytes

SCHEMA_VERSION = 2          # 1: before the version key (no "stage", test_error at the top level)
JOB, EVENTS_FILE, LIVE, SNAPSHOTS, STOP, LOG, CLAIM = ("job.json", "events.jsonl", "live.npz", "snapshots", "stop",
                                                      "train.log", "claim")

#: Every file or folder a run folder may hold, and what it is.
FILES: dict[str, str] = {
    "config.json": "the RunConfig: model, training and data settings (and a semisup section for M1+M2); enough to "
                   "rebuild the model and re-run the run (`python -m vae train --config RUN/config.json`)",
    "model.safetensors": "the weights, float32 safetensors (never a pickle)",
    "encode.onnx": "a tracked run (vae.track, a model in its user's own code): its encoder as an ONNX program without "
                   "weights (they are in model.safetensors), run with onnxruntime",
    "decode.onnx": "a tracked run: its decoder, likewise",
    "test_images.safetensors": "a tracked run: the held-out images (uint8 x [N, C, H, W], int64 y [N]) it is evaluated "
                               "on and the pages show",
    "metrics.json": "the Metrics record: status, per-epoch and per-step history, the final held-out evaluation",
    "job.json": "a job's state (queued, running, done, stopped, failed, interrupted), process, progress, heartbeat",
    "events.jsonl": "append-only training events, one JSON object per line (start, step, epoch, end)",
    "snapshots/epoch-NNNN.npz": "each epoch's test latent means and log-variances, labels, reconstructions of 8 test "
                                "images and KL per dimension (the Compare replay, the live charts)",
    "live.npz": "the latest reconstructions while training",
    "checkpoint/": "weights, optimizer state and clocks of the last completed epoch, for resume (dropped when the run "
                   "completes)",
    "stop": "created by whoever wants the run to stop after its current batch; its text is the reason",
    "train.log": "the training process's output, when the app or a scheduler started it",
    "claim": "which server took a queued job, so two replicas never start it twice",
}

#: Training events (``vae.train``), in the order a run emits them, with their fields.
EVENTS: dict[str, tuple[str, ...]] = {
    "start": ("stage", "stages", "epochs", "total_steps", "stage_epochs", "steps_per_epoch", "n_train", "n_test",
              "device", "threads", "resumed_at_epoch", "world_size", "reports"),
    "step": ("stage", "epoch", "step", "global_step", "beta", "lr", "grad_norm", "samples_per_sec", "elapsed", "eta",
             "<each reported figure: loss, recon, kl, ...>"),
    "recon": ("global_step", "inputs", "recons"),
    "epoch": ("<an EpochRecord's fields>", "latent"),
    "end": ("status", "message", "seconds"),
}

Figures = dict[str, float]


def _float(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def _figures(d: Any) -> Figures:
    """A JSON object of named numbers; anything else in it is dropped (a figure is a finite number)."""
    if not isinstance(d, dict):
        return {}
    return {str(k): f for k, v in d.items() if (f := _float(v)) is not None}


def _floats(v: Any) -> list[float] | None:
    if not isinstance(v, list):
        return None
    out = [_float(x) for x in v]
    return [0.0 if x is None else x for x in out]


def _int(v: Any) -> int | None:
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


@dataclass
class EpochRecord:
    """One completed (or, with ``partial``, stopped) epoch."""

    epoch: int                                   # counted over the whole run, across stages
    train: Figures = field(default_factory=dict)  # means over the epoch's images: loss and the objective's terms
    test: Figures = field(default_factory=dict)   # held-out: neg_elbo, recon, kl, bits_per_dim; a stage's own figures
    kl_per_dim: list[float] | None = None        # KL per latent dimension on the training images
    test_kl_per_dim: list[float] | None = None   # ... on the test images
    active_units: int | None = None
    stage: str = ""                              # the stage of a run with several (semisup: m1, m2, joint)
    partial: bool = False
    elapsed: float = 0.0
    train_seconds: float = 0.0
    samples_per_sec: float = 0.0
    communication: dict[str, float] | None = None  # per-step all-reduce times under torchrun (ms)
    nonfinite: list[str] = field(default_factory=list)   # figures logged as NaN or Inf (a tracked run's own loop)

    @classmethod
    def from_dict(cls, d: dict) -> "EpochRecord":
        return cls(epoch=_int(d.get("epoch")) or 0, train=_figures(d.get("train")), test=_figures(d.get("test")),
                   kl_per_dim=_floats(d.get("kl_per_dim")), test_kl_per_dim=_floats(d.get("test_kl_per_dim")),
                   active_units=_int(d.get("active_units")), stage=str(d.get("stage") or ""),
                   partial=bool(d.get("partial")), elapsed=_float(d.get("elapsed")) or 0.0,
                   train_seconds=_float(d.get("train_seconds")) or 0.0,
                   samples_per_sec=_float(d.get("samples_per_sec")) or 0.0,
                   communication=_figures(d.get("communication")) or None,
                   nonfinite=[k for k in d.get("nonfinite") or [] if isinstance(k, str)][:100]
                   if isinstance(d.get("nonfinite"), list) else [])

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: v for k, v in d.items() if v is not None and not (k in ("stage", "nonfinite") and not v)}


_STEP_FIELDS = ("epoch", "global_step", "stage", "beta", "lr", "grad_norm", "elapsed")


@dataclass
class StepRecord:
    """A step kept in the history (thinned to about twenty an epoch): its figures and the schedule's values."""

    epoch: int
    global_step: int
    figures: Figures = field(default_factory=dict)   # loss, recon, kl, ... (batch means)
    beta: float | None = None
    lr: float | None = None
    grad_norm: float | None = None
    elapsed: float = 0.0
    stage: str = ""

    @classmethod
    def from_dict(cls, d: dict) -> "StepRecord":
        figures = _figures({k: v for k, v in d.items() if k not in _STEP_FIELDS})
        return cls(epoch=_int(d.get("epoch")) or 0, global_step=_int(d.get("global_step")) or 0, figures=figures,
                   beta=_float(d.get("beta")), lr=_float(d.get("lr")), grad_norm=_float(d.get("grad_norm")),
                   elapsed=_float(d.get("elapsed")) or 0.0, stage=str(d.get("stage") or ""))

    def to_dict(self) -> dict[str, Any]:
        d = {"epoch": self.epoch, "global_step": self.global_step, **self.figures, "beta": self.beta, "lr": self.lr,
             "grad_norm": self.grad_norm, "elapsed": self.elapsed, "stage": self.stage or None}
        return {k: v for k, v in d.items() if v is not None}


@dataclass
class History:
    epochs: list[EpochRecord] = field(default_factory=list)
    steps: list[StepRecord] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: Any) -> "History":
        d = d if isinstance(d, dict) else {}
        return cls([EpochRecord.from_dict(e) for e in d.get("epochs") or [] if isinstance(e, dict)],
                   [StepRecord.from_dict(s) for s in d.get("steps") or [] if isinstance(s, dict)])

    def to_dict(self) -> dict[str, list]:
        return {"epochs": [e.to_dict() for e in self.epochs], "steps": [s.to_dict() for s in self.steps]}

    def stage(self, name: str) -> list[EpochRecord]:
        return [e for e in self.epochs if e.stage == name]

    def tested(self) -> list[EpochRecord]:
        """The epochs evaluated on the test set's -ELBO, in order (what the curves plot)."""
        return [e for e in self.epochs if "neg_elbo" in e.test]


@dataclass
class Final:
    """The final held-out evaluation (``vae.evaluate.evaluate``'s figures); empty without test images."""

    neg_elbo: float | None = None
    recon: float | None = None
    kl: float | None = None
    bits_per_dim: float | None = None
    active_units: int | None = None
    kl_per_dim: list[float] | None = None
    n_test: int | None = None
    mean_image_nats: float | None = None     # the -ELBO of a model that ignores its code (the doctor's zero point)
    nll_iw: float | None = None              # importance-weighted -log p(x), with iw_samples samples
    iw_samples: int | None = None
    bits_per_dim_iw: float | None = None
    test_error: float | None = None          # a classifier's share of test images misclassified (semisup)
    kl_per_layer: list[float] | None = None  # two stochastic layers: [top, lower] KL, nats per image
    kl_per_dim_lower: list[float] | None = None   # ... the lower layer's KL per dimension against p(z1 | z)
    active_units_lower: int | None = None          # ... and its active units

    @classmethod
    def from_dict(cls, d: Any) -> "Final":
        d = d if isinstance(d, dict) else {}
        ints = ("active_units", "n_test", "iw_samples", "active_units_lower")
        lists = ("kl_per_dim", "kl_per_layer", "kl_per_dim_lower")
        kw = {f.name: (_int(d.get(f.name)) if f.name in ints else _floats(d.get(f.name)) if f.name in lists
                       else _float(d.get(f.name))) for f in dataclasses.fields(cls)}
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @property
    def empty(self) -> bool:
        return self.neg_elbo is None


@dataclass
class DataInfo:
    name: str = ""
    source: str = ""
    class_names: list[str] | None = None

    @classmethod
    def from_dict(cls, d: Any) -> "DataInfo":
        d = d if isinstance(d, dict) else {}
        names = d.get("class_names")
        ok = isinstance(names, list) and names and all(isinstance(n, str) for n in names)
        return cls(str(d.get("name") or ""), str(d.get("source") or ""), list(names) if ok else None)


@dataclass
class Metrics:
    """``metrics.json``: how a run ended, its history and its final evaluation. Written after every epoch while the
    run trains (``status`` "running") and once more when it ends."""

    status: str = "completed"                  # running | completed | cancelled | failed
    message: str = ""
    seconds: float = 0.0                       # training time (the final evaluation excluded)
    n_train: int = 0
    history: History = field(default_factory=History)
    final: Final = field(default_factory=Final)
    data: DataInfo = field(default_factory=DataInfo)
    semisup: dict[str, Any] | None = None      # M1+M2's own figures (labels, baseline, m1_seconds, ...)
    anomaly: dict[str, Any] | None = None      # {"holdout_class": k} for a run trained without a class
    distributed: dict[str, Any] | None = None  # {"world_size", "backend"} under torchrun
    uploaded_from: str | None = None           # the file names of a run uploaded in the app
    meta: dict[str, Any] = field(default_factory=dict)   # created, torch and python versions
    version: int = SCHEMA_VERSION

    @classmethod
    def from_dict(cls, d: Any) -> "Metrics":
        """Read any version of ``metrics.json``; a field of the wrong type reads as missing."""
        d = d if isinstance(d, dict) else {}
        final = Final.from_dict(d.get("final"))
        if final.test_error is None:              # version 1 kept a semisup run's test error at the top level
            final.test_error = _float(d.get("test_error"))
        history = History.from_dict(d.get("history"))
        if _int(d.get("version")) in (None, 1) and isinstance(d.get("semisup"), dict):
            history = _with_m2_history(history, d["semisup"].get("m2_history"))
        sections = {k: d.get(k) if isinstance(d.get(k), dict) else None for k in ("semisup", "anomaly", "distributed")}
        up = d.get("uploaded_from")
        return cls(status=str(d.get("status") or "completed"), message=str(d.get("message") or ""),
                   seconds=_float(d.get("seconds")) or 0.0, n_train=_int(d.get("n_train")) or 0, history=history,
                   final=final, data=DataInfo.from_dict(d.get("data")), uploaded_from=up if isinstance(up, str)
                   else None, meta=d.get("meta") if isinstance(d.get("meta"), dict) else {}, **sections)

    def to_dict(self) -> dict[str, Any]:
        out = {"version": self.version, "status": self.status, "message": self.message, "seconds": self.seconds,
               "n_train": self.n_train, "history": self.history.to_dict(), "final": self.final.to_dict(),
               "data": dataclasses.asdict(self.data)}
        for k in ("semisup", "anomaly", "distributed", "uploaded_from"):
            if getattr(self, k) is not None:
                out[k] = getattr(self, k)
        if self.meta:
            out["meta"] = self.meta
        return out

    def kl_per_dim(self, latent_dim: int) -> list[float] | None:
        """The KL per latent dimension (test images, as of the end of the run), or None when the run kept none of
        the right length: the final evaluation's, else the last epoch's on test, else on training images."""
        last = self.history.epochs[-1] if self.history.epochs else None
        for kl in (self.final.kl_per_dim, last and last.test_kl_per_dim, last and last.kl_per_dim):
            if kl is not None and len(kl) == latent_dim:
                return list(kl)
        return None


def _with_m2_history(history: History, m2: Any) -> History:
    """Version 1 kept M2's stages apart (``semisup.m2_history``); version 2 numbers them on after M1's epochs."""
    if not isinstance(m2, list) or any(e.stage for e in history.epochs):
        return history
    epochs = [dataclasses.replace(e, stage="m1") for e in history.epochs]
    n = len(epochs)
    for i, r in enumerate(x for x in m2 if isinstance(x, dict)):
        test = {"test_error": r["test_error"]} if _float(r.get("test_error")) is not None else {}
        train = _figures({k: v for k, v in r.items() if k not in ("stage", "epoch", "test_error", "elapsed")})
        epochs.append(EpochRecord(epoch=n + i + 1, train=train, test=test, stage=str(r.get("stage") or "m2"),
                                  elapsed=_float(r.get("elapsed")) or 0.0))
    return History(epochs, [dataclasses.replace(s, stage=s.stage or "m1") for s in history.steps])


# ------------------------------------------------------------------------------------------------ snapshots

@dataclass
class Snapshot:
    """An epoch's pictures of the run (``snapshots/epoch-NNNN.npz``; ``live.npz`` holds only the reconstructions).

    ``mu``, ``logvar``: [N, D] float32 test latent means and log-variances (up to 2,000 images); ``y``: [N] labels;
    ``inputs``, ``recons``: [K, C, H, W] uint8 (0-255) test images and their reconstructions; ``kl_per_dim``: [D]."""

    mu: np.ndarray | None = None
    logvar: np.ndarray | None = None
    y: np.ndarray | None = None
    inputs: np.ndarray | None = None
    recons: np.ndarray | None = None
    kl_per_dim: np.ndarray | None = None
    global_step: int | None = None

    def to_npz(self) -> bytes:
        buf = io.BytesIO()
        arrays = {k: np.asarray(v) for k, v in dataclasses.asdict(self).items() if v is not None}
        np.savez(buf, **arrays)
        return buf.getvalue()

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "Snapshot":
        """From an npz's arrays; arrays of the wrong kind (pictures that are not uint8 [K, C, H, W]) are dropped."""
        def pics(a):
            return a if a is not None and a.dtype == np.uint8 and a.ndim == 4 else None
        step = arrays.get("global_step")
        return cls(mu=_matrix(arrays.get("mu")), logvar=_matrix(arrays.get("logvar")), y=_vector(arrays.get("y")),
                   inputs=pics(arrays.get("inputs")), recons=pics(arrays.get("recons")),
                   kl_per_dim=_vector(arrays.get("kl_per_dim")),
                   global_step=int(step) if step is not None and step.ndim == 0 else None)

    def pair(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(inputs, reconstructions) as uint8 [K, C, H, W], when both are there with the same shape."""
        if self.inputs is None or self.recons is None or self.inputs.shape != self.recons.shape:
            return None
        return self.inputs, self.recons


def snapshot_path(run_dir: str | Path, epoch: int) -> Path:
    return Path(run_dir) / SNAPSHOTS / f"epoch-{epoch:04d}.npz"


def write_snapshot(path: str | Path, snap: Snapshot) -> None:
    """Write ``snap`` atomically (the folder is created if needed)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(Path(path), snap.to_npz())


def read_snapshot(path: str | Path) -> Snapshot | None:
    """A snapshot or ``live.npz`` (never unpickled), or None while it does not exist or cannot be read."""
    try:
        with np.load(io.BytesIO(Path(path).read_bytes()), allow_pickle=False) as z:
            return Snapshot.from_arrays({k: z[k] for k in z.files})
    except (OSError, ValueError, EOFError):
        return None


def snapshot_epochs(run_dir: str | Path) -> list[int]:
    """The epochs whose snapshot the run folder keeps, in order."""
    try:
        stems = [p.stem for p in (Path(run_dir) / SNAPSHOTS).iterdir() if p.suffix == ".npz"]
    except OSError:
        return []
    return sorted(int(s[6:]) for s in stems if s.startswith("epoch-") and s[6:].isdigit())


def _matrix(a):
    return a if a is not None and a.ndim == 2 and np.issubdtype(a.dtype, np.floating) else None


def _vector(a):
    return a if a is not None and a.ndim == 1 else None
