"""Glue for the Use cases and Doctor pages: cached results, diagnosis, figures, starting a fix.

Session-state keys of these two pages live in ``ui/state.py`` with every other key.
Measured results come from ``assets/results/*.json`` (written by the commands in
``bench/usecases.md``); the pages never train a model in the script thread.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from vae.cli.analyse import diagnose_run
from vae.config import RunConfig
from vae.evaluate import UNUSED_KL_NATS
from vae.runs import Run
from vae.usecases import doctor
from vae.usecases.doctor import apply_changes
from vae.usecases.plots import seed_sd

from . import charts, settings

RESULTS_DIR = settings.ROOT / "assets" / "results"      # the figures the Use cases page shows (bench writes them)
FIGURES_DIR = settings.ROOT / "assets" / "usecases"

# the commands' placeholders, each explained once on its page (no server path is shown to a browser)
DATA_DIR = "DATA_DIR"      # a folder holding the full data sets (torchvision layout: DATA_DIR/MNIST/raw/...)
RUNS_DIR = "RUNS_DIR"      # the app's runs folder (VAE_LAB_RUNS_DIR where the app runs; runs/ in its checkout)
DATA_DIR_MEANS = (f"**{DATA_DIR}** stands for a folder holding the full data sets in torchvision's layout "
                  f"({DATA_DIR}/MNIST/raw/*.gz; `python -m vae datasets` says what each needs)")
DATA_DIR_NOTE = (f"In these commands {DATA_DIR_MEANS}; the app itself never needs it. Paths like `runs/…` are "
                 "relative to where you run the command.")


def command_text(cmd: str) -> str:
    """A measured or suggested command as a page shows it, with no machine's path in it: whatever folder it named for
    the full data sets ($DATA, DATA, a developer's ../shared/data) is ``DATA_DIR``, and a built-in full data set
    without ``--data-dir`` gets one; the interpreter it ran is ``python``; a data set uploaded to the app
    (``.../.uploads/<digest>/<file>``) is ``RUNS_DIR/.uploads/<digest>/<file>``; a run folder given to ``--out`` or
    ``--m1-from`` as an absolute path is ``runs/<its name>``; any other absolute path keeps only its last part
    (``…/digits.npz``)."""
    lines = []
    for line in cmd.splitlines():
        line = re.sub(r"(^|\s)/\S*/python[\d.]*(?=\s)", r"\1python", line)
        line = re.sub(r"--data-dir(?:\s+|=)\S+", f"--data-dir {DATA_DIR}", line)
        if "--data-dir" not in line:
            line = re.sub(r"(--data (?:mnist|fashion-mnist|kmnist))(?=\s|$)", rf"\1 --data-dir {DATA_DIR}", line)
        line = re.sub(r"(?<=[\s=])\S*/\.uploads/(\w+)/([^\s/]+)(?=\s|$)", rf"{RUNS_DIR}/.uploads/\1/\2", line)
        line = re.sub(r"(--out|--m1-from)(\s+|=)/(?:[^\s/]+/)*([^\s/]+)/?(?=\s|$)", r"\1\2runs/\3", line)
        line = re.sub(r"(?<=[\s=])/(?:[^\s/]+/)*([^\s/]+)/?(?=\s|$)", "…/\\1", line)
        lines.append(line)
    return "\n".join(lines)


def results_dir() -> Path:
    import os
    env = os.environ.get("VAE_LAB_RESULTS_DIR")
    return Path(env).expanduser().resolve() if env else RESULTS_DIR


@st.cache_data(show_spinner=False, max_entries=64)
def _read_json(path: str, mtime: float) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def result(name: str) -> Any | None:
    """``assets/results/<name>.json`` (the last JSON line when the file holds a command's stdout), or None."""
    p = results_dir() / f"{name}.json"
    if not p.is_file():
        return None
    try:
        return _read_json(str(p), p.stat().st_mtime)
    except (OSError, ValueError):
        try:
            return json.loads(p.read_text(encoding="utf-8").strip().splitlines()[-1])
        except (OSError, ValueError, IndexError):
            return None


def _pm(d: dict, scale: float = 1.0, digits: int = 2) -> str:
    """A spread from ``bench/seedkit.spread`` as "mean ± sd"."""
    return f"{scale * d['mean']:.{digits}f} ± {scale * d['sd']:.{digits}f}"


def pm(row: dict, key: str, digits: int = 2) -> str:
    """``row[key]`` as "mean ± sd" when the row carries ``<key>_sd`` (a summary over seeds), else the value."""
    if f"{key}_sd" in row:
        return _pm({"mean": row[key], "sd": row[f"{key}_sd"]}, digits=digits)
    return f"{row[key]:.{digits}f}" if isinstance(row[key], float) else str(row[key])


RD_COLUMNS = (("rate: KL, nats", "rate_nats"), ("distortion, nats", "distortion_nats"), ("−ELBO, nats", "neg_elbo"),
              ("active units", "active_units"), ("training seconds", "seconds"))


ANOMALY_SCORES = {"auroc": "−ELBO", "auroc_iw_nll": "IW −log p(x)",
                  "auroc_complexity_corrected": "complexity-corrected", "auroc_per_pixel_normalised": "per unit of ink",
                  "auroc_latent_class": "latent class score"}


def anomaly_seed_table(res: dict) -> list[dict]:
    """``bench/anomaly_seeds.py``'s summary as rows: one per held-out digit and the mean over digits, each score
    as "mean ± sd" over the seeds."""
    summary = res.get("summary") or {}
    scores = [k for k in ANOMALY_SCORES if k in summary]

    rows = [{"held out": str(d), **{ANOMALY_SCORES[k]: _pm(summary[k]["per_digit"][str(d)], digits=3)
                                    for k in scores}} for d in res.get("digits", [])]
    rows.append({"held out": "mean over the digits", **{ANOMALY_SCORES[k]: _pm(summary[k]["mean_over_digits"],
                                                                               digits=3) for k in scores}})
    return rows


def augment_headline(res: dict, labels: int = 100, ratio: float = 1.0) -> dict | None:
    """The metrics above the augmentation tab from ``bench/augment_seeds.py``: the regime with ``labels`` labelled
    images and as many generated as real (``ratio``), as mean ± standard deviation over its seeds."""
    regime = next((r for r in res.get("regimes", []) if r.get("labels") == labels and r.get("ratio") == ratio), None)
    if regime is None:
        return None
    return {"without": _pm(regime["accuracy_without"], 100) + " %", "with": _pm(regime["accuracy_with"], 100) + " %",
            # a leading sign: st.metric colours the delta by it
            "gain": ("+" if regime["gain"]["mean"] >= 0 else "") + _pm(regime["gain"], 100) + " points",
            "labels": regime["labels"],
            "help": f"{regime['per_class']} generated per class; generated images helped in {regime['helped_in']} "
                    f"of {regime['of']} seeds"}


def augment_seed_table(res: dict) -> list[dict]:
    """``bench/augment_seeds.py``'s regimes as rows, accuracies in % and the gain in points."""
    return [{"labels": r["labels"], "generated per labelled image": r["ratio"],
             "accuracy without, %": _pm(r["accuracy_without"], 100), "accuracy with, %": _pm(r["accuracy_with"], 100),
             "gain, points": _pm(r["gain"], 100), "seeds it helped": f"{r['helped_in']} of {r['of']}"}
            for r in res["regimes"]]


def figure(name: str) -> str | None:
    p = FIGURES_DIR / name
    return str(p) if p.is_file() else None


# ------------------------------------------------------------------------------------------ doctor

@st.cache_data(show_spinner="Examining the run…", max_entries=32)
def findings(_run: Run, run_key: str, _test, data_key: str) -> list[dict]:
    """``vae.usecases.doctor.diagnose`` on the run's history (and its reconstructions of ``_test`` when given)."""
    if _run.config.kind == "tracked":
        return tracked_findings(_run, _test)
    return diagnose_run(_run, _test, f"{RUNS_DIR}/{_run.name}")


def tracked_findings(run: Run, test) -> list[dict]:
    """The Doctor on a model logged with ``vae.track``, from what its loop logged and what VAE Lab measured at each
    log: collapse, KL blow-up and blur as for any run; NaNs from the figures its loop logged as NaN or Inf (there are
    no step records); an error its loop stopped on. Each finding's changes are said in words for the user's own
    loop (``in_your_loop``): VAE Lab's settings (its config's train section) are not what trained this model."""
    epochs = run.metrics.history.epochs
    found = [f for f in doctor.diagnose(run.metrics, run.config, model=None if test is None else run.model, test=test)
             if f["code"] not in ("non_finite", "lr_too_high")]
    x = [e.epoch for e in epochs]
    bad = [e for e in epochs if e.nonfinite]
    if bad:
        names = sorted({n for e in bad for n in e.nonfinite})
        found.insert(0, {
            "code": "non_finite", "severity": "error", "title": f"The loop logged NaN or Inf: {', '.join(names)}",
            "evidence": {"kind": "line", "x": x, "x_label": "epoch",
                         "series": {n: [e.train.get(n) for e in epochs] for n in names},
                         "facts": {"epochs": [e.epoch for e in bad], "figures": names}},
            "advice": f"From epoch {bad[0].epoch} on, {', '.join(names)} came in as NaN or infinite (the gaps in "
                      "the chart). Lower the learning rate and clip the gradients; check the log-variance is not "
                      "exponentiated unbounded.",
            "suggested_changes": {"train": {"lr": run.config.train.lr / 10, "grad_clip": 5.0}}})
    elif run.metrics.status == "failed":
        found.insert(0, {"code": "loop_failed", "severity": "warning", "title": "Its own training loop stopped on an "
                         "error", "evidence": {"kind": "line", "x": x, "x_label": "epoch", "series": _test_series(
                             epochs), "facts": {"message": run.metrics.message}},
                         "advice": f"{run.metrics.message or 'The loop raised an exception'}; the run keeps what was "
                                   "logged before it.", "suggested_changes": {}})
    for f in found:
        if f["code"] == "kl_explosion":          # the core's evidence is per step; this run has epochs only
            f["evidence"] = {**f["evidence"], "x": x, "x_label": "epoch", "series": _test_series(epochs)}
        f["command"] = None
        f["in_your_loop"] = in_your_loop(f["suggested_changes"], run.config)
    return found


def _test_series(epochs) -> dict[str, list]:
    return {"test_kl": [e.test.get("kl") for e in epochs], "test_recon": [e.test.get("recon") for e in epochs]}


def in_your_loop(changes: dict[str, dict[str, Any]], config: RunConfig) -> list[str]:
    """A finding's suggested changes as things to do in one's own training loop."""
    t = changes.get("train", {})
    m = changes.get("model", {})
    words = []
    if "beta" in t:
        words.append(f"weigh the KL term by β = {t['beta']:g}")
    if "warmup_epochs" in t:
        words.append(f"a KL warm-up: its weight rising from 0 over the first {t['warmup_epochs']:g} epochs")
    if t.get("free_bits"):
        words.append(f"free bits: no KL cost for the first {t['free_bits']:g} nats of each latent dimension")
    if "lr" in t and config.train.lr > 0:
        words.append(f"a learning rate {config.train.lr / t['lr']:.0f}× lower")
    if "grad_clip" in t:
        words.append(f"clip the gradients' norm at {t['grad_clip']:g}")
    if m.get("likelihood") == "bernoulli":
        words.append("a Bernoulli likelihood (binary cross-entropy on pixels in [0, 1])")
    if m.get("learn_sigma"):
        words.append("learn the Gaussian's σ rather than fixing it")
    if m.get("arch") == "conv":
        words.append("a convolutional decoder")
    return words


SERIES_NAMES = {"kl_per_dim": "KL per dimension, nats", "test_recon": "reconstruction (test), nats",
                "test_kl": "KL (test), nats", "loss": "loss (train step), nats", "grad_norm": "gradient norm",
                "lr": "learning rate", "kl": "KL (train step), nats", "recon": "reconstruction (train step), nats"}
LOG_SCALE = ("lr_too_high", "kl_explosion", "non_finite")


def evidence_figure(f: dict) -> go.Figure:
    """The finding's evidence: KL per dimension as the Train page's bars (unused ones grey, on an axis that starts
    at zero and reaches at least twice the "unused" line, so a collapsed run's bars look as small as they are),
    or each series of a history in its own panel over a shared x axis, with its name in words (two series on
    two y axes made ticks like 0.00007 beside 205.05)."""
    ev = f["evidence"]
    if ev["kind"] == "bar":
        name, values = next(iter(ev["series"].items()))
        fig = charts.kl_bars([float(v or 0.0) for v in values], prefix="z₁," if name == "kl_per_dim_lower" else "z")
        fig.add_hline(y=UNUSED_KL_NATS, line=dict(color=charts.GUIDE, dash="dot", width=1),
                      annotation_text=f"unused below {UNUSED_KL_NATS:g} nats", annotation_position="top left")
        return fig
    series = [(k, v) for k, v in ev["series"].items() if any(x is not None for x in v)]
    rows = max(1, len(series))
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=[SERIES_NAMES.get(k, k.replace("_", " ")) for k, _ in series])
    for i, (name, ys) in enumerate(series, start=1):
        fig.add_scatter(x=ev["x"], y=ys, mode="lines+markers", name=SERIES_NAMES.get(name, name), showlegend=False,
                        marker=dict(size=4), row=i, col=1)
        log = f["code"] in LOG_SCALE and all(v is None or v > 0 for v in ys)
        fig.update_yaxes(type="log" if log else "linear", row=i, col=1)
    fig.update_xaxes(title_text=ev.get("x_label"), row=rows, col=1)
    fig.update_layout(height=150 + 150 * rows, margin=dict(l=10, r=10, t=30, b=10))
    return fig


TRACKED_NO_START = ("{name} trains in its own loop (logged with vae.track), so VAE Lab cannot start the suggested "
                    "run: make the change in your code and log again.")
SEVERITY_WORDS = {"error": "A problem", "warning": "Worth a look", "info": "Note"}


def start_fix(run: Run, f: dict) -> tuple[str, str]:
    """Start the run a finding suggests, in this session's training worker. Returns (status, message)."""
    from vae.data import DataError

    from . import datasets, queue, train_panel
    if run.config.kind == "tracked":
        return "error", TRACKED_NO_START.format(name=run.config.tracked.source or "This model")
    job = queue.current_job()
    if job is not None and job.running:
        return "error", "A training run is already going in this session; stop it first (Train page)."
    try:
        cfg: RunConfig = apply_changes(run.config, f["suggested_changes"])
        if cfg.kind != "vae":
            return "error", "Only plain VAE runs can be restarted from here; use `python -m vae semisup` instead."
        split = datasets.load(datasets.DataKey.of(cfg.data))
        queue.start(cfg, split)
    except (ValueError, DataError, RuntimeError) as e:
        return "error", f"Could not start: {e}"
    except OSError as e:
        return "error", f"Could not start: {train_panel.not_written(e)}"
    return "success", "Started the suggested run: follow it on the Train page; it appears in the run picker when done."


# ------------------------------------------------------------------------------------- use cases

@st.cache_data(show_spinner="Scoring the test images…", max_entries=16)
def anomaly_scores(_run: Run, run_key: str, _test, data_key: str) -> np.ndarray:
    from vae.usecases import anomaly_scores as scores
    return scores(_run.model, _test)


@st.cache_data(show_spinner="Fitting the probes…", max_entries=16)
def probe(_run: Run, run_key: str, _split, data_key: str, budgets: tuple[int, ...]) -> dict:
    from vae.usecases import linear_probe
    return linear_probe(_run.model, _split, budgets=budgets, max_test=2000)


def semisup_rows() -> list[dict]:
    rows = []
    for name in ("semisup_k100", "semisup_k600", "semisup_k1000", "semisup_all"):
        r = result(name)
        if r:
            rows.append(r)
    return rows


def _error(rows: list[dict], key: str) -> dict | None:
    """Plotly error bars from ``<key>_sd`` when the rows are a summary over seeds."""
    sd = seed_sd(rows, key)
    return None if sd is None else dict(type="data", array=sd)


def rd_figure(res: dict) -> go.Figure:
    pts = sorted(res["points"], key=lambda p: p["rate_nats"])
    fig = go.Figure(go.Scatter(x=[p["rate_nats"] for p in pts], y=[p["distortion_nats"] for p in pts],
                               error_x=_error(pts, "rate_nats"), error_y=_error(pts, "distortion_nats"),
                               mode="lines+markers+text", text=[f"β={p['beta']:g}" for p in pts],
                               textposition="top right"))
    fig.update_layout(height=340, margin=dict(l=10, r=10, t=30, b=10),
                      xaxis_title="rate: KL(q(z|x) ‖ p(z)), nats", yaxis_title="distortion: −log p(x|z), nats")
    return fig


def probe_figure(res: dict) -> go.Figure:
    rows = res["rows"]
    k = [r["labels"] for r in rows]
    fig = go.Figure()
    fig.add_scatter(x=k, y=[r["latent_accuracy"] for r in rows], error_y=_error(rows, "latent_accuracy"),
                    mode="lines+markers", name=f"latent means ({res.get('latent_dim')}-D)")
    fig.add_scatter(x=k, y=[r["pixel_accuracy"] for r in rows], error_y=_error(rows, "pixel_accuracy"),
                    mode="lines+markers", name="raw pixels", line=dict(dash="dash"))
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=30, b=10), xaxis_type="log",
                      xaxis_title="labelled images", yaxis_title="test accuracy", legend=dict(orientation="h", y=1.15))
    return fig
