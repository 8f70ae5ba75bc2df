"""Files and figures for the use cases: npz export, PNG sample grids, matplotlib plots (no Streamlit).

matplotlib is imported lazily with the Agg backend, so the core works without it.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from ..util import atomic_write_bytes


def save_npz(path: str | Path, **arrays: np.ndarray) -> Path:
    """Write a compressed .npz atomically (``x``: uint8 [N, C, H, W], ``y``: int [N])."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.getvalue())
    return path


def save_sample_grid(x: np.ndarray, y: np.ndarray | None, path: str | Path, *, per_class: int | None = None,
                     scale: int = 2) -> Path:
    """PNG grid of uint8 images [N, C, H, W]; with labels and ``per_class``, one row per class."""
    from PIL import Image

    from ..latent import image_grid
    imgs = x.astype(np.float32) / 255.0
    nrow = None
    if y is not None and per_class:
        rows = [np.flatnonzero(y == c)[:per_class] for c in np.unique(y)]
        imgs = np.concatenate([imgs[r] for r in rows])
        nrow = per_class
    grid = image_grid(imgs, nrow, scale=scale)
    buf = io.BytesIO()
    Image.fromarray(grid).save(buf, format="PNG")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.getvalue())
    return path


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())
    return path


def seed_sd(rows: list[dict[str, Any]], key: str) -> list[float] | None:
    """Error bars (one standard deviation) when the rows summarise several seeds (``<key>_sd``)."""
    return [r[f"{key}_sd"] for r in rows] if rows and f"{key}_sd" in rows[0] else None


def plot_rd(res: dict[str, Any], path: str | Path) -> Path:
    """Rate (KL, nats) against distortion (reconstruction, nats), one labelled point per beta."""
    plt = _plt()
    pts = sorted(res["points"], key=lambda p: p["rate_nats"])
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.errorbar([p["rate_nats"] for p in pts], [p["distortion_nats"] for p in pts], xerr=seed_sd(pts, "rate_nats"),
                yerr=seed_sd(pts, "distortion_nats"), fmt="o-", capsize=3)
    for p in pts:
        ax.annotate(f"β={p['beta']:g}", (p["rate_nats"], p["distortion_nats"]), textcoords="offset points",
                    xytext=(5, 5), fontsize=8)
    ax.set_xlabel("rate: KL(q(z|x) || p(z)), nats per image")
    ax.set_ylabel("distortion: -log p(x|z), nats per image")
    ep = res.get('epochs')
    ax.set_title(f"Rate-distortion ({res.get('data', '')}, {ep} epoch{'' if ep == 1 else 's'} per run)")
    ax.grid(alpha=0.3)
    out = _save(fig, path)
    plt.close(fig)
    return out


def plot_probe(res: dict[str, Any], path: str | Path) -> Path:
    """Test accuracy of the linear probe by label budget: latent means vs raw pixels."""
    plt = _plt()
    rows = res["rows"]
    fig, ax = plt.subplots(figsize=(5, 3.6))
    k = [r["labels"] for r in rows]
    ax.errorbar(k, [r["latent_accuracy"] for r in rows], yerr=seed_sd(rows, "latent_accuracy"), fmt="o-", capsize=3,
                label=f"latent means ({res.get('latent_dim')}-d)")
    ax.errorbar(k, [r["pixel_accuracy"] for r in rows], yerr=seed_sd(rows, "pixel_accuracy"), fmt="s--", capsize=3,
                label="raw pixels")
    ax.set_xscale("log")
    ax.set_xlabel("labelled training images")
    ax.set_ylabel("test accuracy")
    ax.set_title("Linear probe (logistic regression)")
    ax.grid(alpha=0.3)
    ax.legend()
    out = _save(fig, path)
    plt.close(fig)
    return out


def plot_semisup(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """Test error by label count: semi-supervised model vs the raw-pixel baseline."""
    plt = _plt()
    rows = sorted(rows, key=lambda r: r["labels"])
    fig, ax = plt.subplots(figsize=(5, 3.6))
    k = [r["labels"] for r in rows]
    ax.plot(k, [100 * r["test_error"] for r in rows], "o-", label="M1+M2, then trained together")
    ax.plot(k, [100 * r["baseline_test_error"] for r in rows], "s--", label="logistic regression, pixels")
    ax.set_xscale("log")
    ax.set_xlabel("labelled training images")
    ax.set_ylabel("test error, %")
    ax.grid(alpha=0.3)
    ax.legend()
    out = _save(fig, path)
    plt.close(fig)
    return out


def plot_anomaly(res: dict[str, Any], path: str | Path) -> Path:
    """Mean -ELBO per test class for a model trained without the held-out class."""
    plt = _plt()
    per = res["mean_score_per_class"]
    cls = sorted(per, key=int)
    fig, ax = plt.subplots(figsize=(5, 3.6))
    colors = ["tab:red" if int(c) == res["holdout_class"] else "tab:blue" for c in cls]
    ax.bar(cls, [per[c] for c in cls], color=colors)
    ax.set_xlabel("test class")
    ax.set_ylabel("mean -ELBO, nats")
    corrected = res.get("auroc_complexity_corrected")
    extra = f", complexity-corrected {corrected:.3f}" if corrected is not None else ""
    ax.set_title(f"Trained without {res['holdout_class']}: AUROC {res['auroc']:.3f}{extra}", fontsize=9)
    out = _save(fig, path)
    plt.close(fig)
    return out


def plot_anomaly_all(res: dict[str, Any], path: str | Path) -> Path:
    """AUROC per held-out digit for each score, mean and standard deviation over seeds (``bench/anomaly_seeds.py``'s
    output), chance at 0.5."""
    plt = _plt()
    names = {"auroc": "-ELBO", "auroc_iw_nll": "IW -log p(x)", "auroc_complexity_corrected": "-ELBO minus zlib length",
             "auroc_latent_class": "latent class score"}
    summary = res["summary"]
    scores = [k for k in names if k in summary]
    digits = [str(d) for d in res["digits"]]
    x = np.arange(len(digits))
    width = 0.8 / max(1, len(scores))
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, k in enumerate(scores):
        cells = [summary[k]["per_digit"][d] for d in digits]
        overall = summary[k]["mean_over_digits"]
        ax.bar(x - 0.4 + width * (i + 0.5), [c["mean"] for c in cells], width, yerr=[c["sd"] for c in cells],
               capsize=2, label=f"{names[k]} (mean {overall['mean']:.2f})")
    ax.axhline(0.5, color="grey", lw=1, ls="--")
    ax.set_xticks(x, digits)
    ax.set_xlabel(f"digit held out of training ({len(res['seeds'])} seeds each)")
    ax.set_ylabel("AUROC, held-out digit vs rest")
    ax.set_ylim(0, 1)
    # below the axes: inside, any corner covers some digit's bars
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)
    out = _save(fig, path)
    plt.close(fig)
    return out
