"""The run catalogue and the active run: demo runs, runs trained here, uploaded runs.

A run is named by its folder path. Loaded models are cached process-wide with
``st.cache_resource`` keyed by path and modification time, so every session shares
one model per run: callers must never mutate it (no ``.train()``, no ``.to()``, no
optimiser steps). Inference goes through ``vae.latent`` / ``vae.evaluate``, which run
under ``torch.no_grad()`` in eval mode.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from vae.record import Metrics
from vae.runs import CONFIG, METRICS, WEIGHTS, Run, RunError, config_from_bytes, is_run_dir, list_runs, load_run
from vae.safejson import load_json

from . import settings, state

DEMO_ORDER = ("mnist-2d", "mnist-16d", "mnist-cvae-2d", "shapes32-tcvae-10d", "shapes32-vae-10d")


@dataclass(frozen=True)
class RunEntry:
    path: str
    kind: str        # demo | saved
    mtime: float

    @property
    def name(self) -> str:
        return Path(self.path).name

    @property
    def key(self) -> str:
        """Changes whenever the weights change: the cache key for everything derived from the run."""
        return f"{self.path}@{self.mtime}"


def _mtime(p: Path) -> float:
    try:
        return max((p / WEIGHTS).stat().st_mtime, (p / CONFIG).stat().st_mtime)
    except OSError:
        return 0.0


def catalogue() -> list[RunEntry]:
    """Demo runs first (in ``DEMO_ORDER``), then saved runs newest first."""
    demo_root = settings.demo_dir()
    demos = [p for p in demo_root.iterdir() if p.is_dir() and is_run_dir(p)] if demo_root.is_dir() else []
    rank = {n: i for i, n in enumerate(DEMO_ORDER)}
    demos.sort(key=lambda p: (rank.get(p.name, len(rank)), p.name))
    out = [RunEntry(str(p), "demo", _mtime(p)) for p in demos]
    out += [RunEntry(str(p), "saved", _mtime(p)) for p in list_runs(settings.runs_dir())]
    return out


@dataclass(frozen=True)
class RunSummary:
    """What the picker and the sidebar show about a run, read from its config and metrics without loading it."""

    ok: bool
    error: str = ""
    latent_dim: int = 0
    arch: str = ""
    kind: str = "vae"
    conditional: bool = False
    data: str = ""
    epochs: int = 0
    beta: float = 1.0
    likelihood: str = ""
    prior: str = "normal"
    objective: str = "elbo"
    tc_weight: float = 0.0
    source: str = ""                   # a tracked run's model class
    neg_elbo: float | None = None
    status: str = ""
    uploaded: bool = False
    epochs_done: int = 0


@st.cache_data(show_spinner=False, max_entries=512)
def _summary(path: str, mtime: float) -> RunSummary:
    p = Path(path)
    try:
        cfg = config_from_bytes((p / CONFIG).read_bytes(), str(p / CONFIG))
    except (OSError, RunError) as e:
        return RunSummary(ok=False, error=str(e))
    m = cfg.model
    data = Path(cfg.data.name).name if ("/" in cfg.data.name or "\\" in cfg.data.name) else cfg.data.name
    metrics = Metrics()
    try:
        metrics_path = p / METRICS
        if metrics_path.is_file() and metrics_path.stat().st_size < (8 << 20):
            metrics = Metrics.from_dict(load_json(metrics_path.read_bytes(), METRICS))
    except (OSError, ValueError):
        pass
    return RunSummary(ok=True, latent_dim=m.latent_dim, arch=m.arch, kind=cfg.kind, conditional=m.conditional,
                      data=data if cfg.kind != "tracked" else "its own test images", epochs=cfg.train.epochs,
                      beta=cfg.train.beta, likelihood=m.likelihood, prior=m.prior, objective=cfg.train.objective,
                      tc_weight=cfg.train.tc_weight,
                      source=cfg.tracked.source if cfg.tracked else "", neg_elbo=metrics.final.neg_elbo,
                      status=metrics.status, uploaded=metrics.uploaded_from is not None,
                      epochs_done=len(metrics.history.epochs))


OBJECTIVE_KINDS = {"btcvae": "β-TCVAE", "factorvae": "FactorVAE", "iwae": "IWAE"}


def kind_name(s: RunSummary, weights: bool = False) -> str:
    """What a run's model is called by its objective: VAE, CVAE, β-VAE, β-TCVAE, FactorVAE, IWAE (a tracked run: its
    class); ``weights`` adds the weight that makes it so ("β-VAE (β = 4)", "β-TCVAE (TC weight 20)")."""
    if s.source:
        return s.source
    kind = OBJECTIVE_KINDS.get(s.objective) or ("β-VAE" if s.beta != 1 else "VAE")
    if s.conditional:
        kind = "CVAE" if kind == "VAE" else f"conditional {kind}"
    if weights and s.objective in ("btcvae", "factorvae"):
        kind += f" (TC weight {s.tc_weight:g})"
    elif weights and s.objective not in OBJECTIVE_KINDS and s.beta != 1:
        kind += f" (β = {s.beta:g})"
    return kind


def label(entry: RunEntry) -> str:
    s = _summary(entry.path, entry.mtime)
    if not s.ok:
        return f"{entry.name} (unreadable)"
    kind = kind_name(s)
    tag = "demo" if entry.kind == "demo" else ("uploaded" if s.uploaded else "logged" if s.kind == "tracked"
                                               else "trained")
    return f"{entry.name} · {s.latent_dim}-D {kind} · {tag}"


def summary(entry: RunEntry) -> RunSummary:
    return _summary(entry.path, entry.mtime)


@st.cache_resource(show_spinner="Loading the model…", max_entries=8)
def _load(path: str, mtime: float) -> Run:
    return load_run(path, budget=settings.budget())


def active_entry() -> RunEntry | None:
    """The run chosen in the sidebar, or the first in the catalogue."""
    entries = catalogue()
    if not entries:
        return None
    chosen = st.session_state.get(state.APP_RUN)
    return next((e for e in entries if e.path == chosen), entries[0])


def load(entry: RunEntry) -> Run:
    """The shared, cached model of ``entry`` (raises ``RunError`` with one line if the folder is bad)."""
    return _load(entry.path, entry.mtime)


def active_run() -> tuple[RunEntry, Run] | None:
    """The active run loaded, or None after showing one line saying why (no run, or a bad folder)."""
    entry = active_entry()
    if entry is None:
        st.info("No run yet: train one on the **Train** page or upload one in the sidebar.")
        return None
    try:
        return entry, load(entry)
    except RunError as e:
        st.error(f"The run {entry.name} cannot be loaded: {e}")
        return None


def order_by_kl(run: Run) -> list[int]:
    """Latent dimensions, most informative (largest KL to the prior on test data) first."""
    d = run.config.model.latent_dim
    kl = run.metrics.kl_per_dim(d)
    return list(range(d)) if kl is None else sorted(range(d), key=lambda i: -kl[i])


def kl_per_dim(run: Run) -> list[float] | None:
    return run.metrics.kl_per_dim(run.config.model.latent_dim)


def model_name(run: Run) -> str:
    """What the run's model is, in a few words: "MLP VAE", "conv conditional VAE", or for a model logged with
    ``vae.track`` its user's class ("ExamplesVAE, your code logged with vae.track")."""
    m = run.config.model
    if run.config.kind == "tracked":
        return f"{run.config.tracked.source or 'a model'}, your code logged with vae.track"
    return f"{m.arch.upper()} {'conditional ' if m.conditional else ''}VAE" + (
        " with two stochastic layers" if m.latent_layers == 2 else "")


def top_layer_note(run: Run) -> str | None:
    """What a page that maps, slides or samples the latent shows of a two-layer model (None for one layer)."""
    if run.config.model.latent_layers == 1:
        return None
    return ("This model has two stochastic layers. This page shows the top layer z; to decode a point, the lower "
            "layer z₁ is set to the mean of its conditional prior p(z₁ | z), so every picture here is a function of "
            "z alone. Inside a VAE shows both layers for one input.")


def is_tracked(run: Run) -> bool:
    """A model logged from its user's own training loop (``vae.track``): VAE Lab runs it, never trains it."""
    return run.config.kind == "tracked"


def class_names(run: Run) -> list[str] | None:
    names = run.metrics.data.class_names
    k = run.config.model.num_classes
    return names if names else ([str(i) for i in range(k)] if k else None)


def class_name(names: list[str] | None, label: int) -> str:
    """A label as the data set names it ("heart" on shapes32), else its number."""
    return names[label] if names and 0 <= label < len(names) else str(label)
