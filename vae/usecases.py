"""What practitioners use a VAE for, each as a function returning JSON-ready numbers on held-out data.

* :func:`linear_probe` - a logistic-regression probe on latent means against the same probe on raw
  pixels, by label budget.
* :func:`compression` - bits per dimension of the VAE's bound (-ELBO and importance-weighted) beside
  PNG and gzip sizes of the very same test images.
* :func:`rate_distortion` - one trained run per beta; each gives a (rate = KL, distortion = recon) point.
* :func:`augmentation` - a small classifier on k labelled images, with and without samples from a
  conditional VAE trained on those same k images (no extra labels leak in).
* :func:`holdout_anomaly` / :func:`anomaly_scores` - per-image -ELBO as an anomaly score; AUROC of a
  digit left out of training against the digits seen.

No Streamlit and no printing; long work takes ``callback`` (``vae.train`` events) and ``cancel``.
"""
from __future__ import annotations

import gzip
import io
import math
import threading
import time
from typing import Any, Callable, Sequence

import numpy as np
import torch

from .config import DataConfig, ModelConfig, RunConfig, TrainConfig
from .config import replace as cfg_replace
from .data import DataSplit, ImageData
from .evaluate import evaluate, fixed_binarized
from .latent import encode, sample_prior
from .models import VAE
from .train import adam, fit

# The recipe the use-case figures in bench/usecases.md were measured with (VAE Lab's default before the
# deep-decoder recipe of bench/train_vs_baseline.py); `vae rd` and `vae anomaly` pin it so those stay true.
MEASURED_MODEL: dict[str, Any] = {"decoder_hidden": ()}
MEASURED_TRAIN: dict[str, Any] = {"batch_size": 256, "lr": 2e-3, "lr_warmup": 0.0, "output_bias_init": False}

Callback = Callable[[dict[str, Any]], None]
DEFAULT_BUDGETS = (100, 600, 1000, 10000)


# ------------------------------------------------------------------------------------------- probe

def balanced_subset(y: np.ndarray, k: int | None, seed: int = 0) -> np.ndarray:
    """``k // K`` indices per class chosen by ``seed`` (all when ``k`` is None or >= N)."""
    from .semisup import labelled_indices
    return labelled_indices(y, k, seed)


def _logreg(xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, yte: np.ndarray, *, seed: int = 0,
            c: float = 1.0) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    sc = StandardScaler().fit(xtr)
    clf = LogisticRegression(C=c, max_iter=500, random_state=seed).fit(sc.transform(xtr), ytr)
    return float((clf.predict(sc.transform(xte)) == yte).mean())


def linear_probe(model: VAE, data: DataSplit, *, budgets: Sequence[int | None] = DEFAULT_BUDGETS, seed: int = 0,
                 max_test: int | None = None) -> dict[str, Any]:
    """Test accuracy of the same logistic regression on latent means and on raw pixels, per label budget.

    Features are standardised on the labelled images; the labelled images are a balanced subset of the
    training split (``balanced_subset``), the same for both feature sets. ``None`` in ``budgets`` = all.
    """
    if not data.has_labels:
        raise ValueError(f"the probe needs labelled data; {data.name} has no labels")
    y_tr, y_te = data.train.y.numpy(), data.test.y.numpy()
    test = data.test if max_test is None else ImageData(data.test.x[:max_test], data.test.y[:max_test])
    y_te = test.y.numpy()
    z_tr = encode(model, ImageData(data.train.x, None))["mu"]
    z_te = encode(model, ImageData(test.x, None))["mu"]
    p_tr = data.train.x.reshape(len(y_tr), -1).numpy().astype(np.float32) / 255.0
    p_te = test.x.reshape(len(y_te), -1).numpy().astype(np.float32) / 255.0
    rows = []
    for k in budgets:
        idx = balanced_subset(y_tr, k, seed)
        t0 = time.perf_counter()
        lat = _logreg(z_tr[idx], y_tr[idx], z_te, y_te, seed=seed)
        t1 = time.perf_counter()
        pix = _logreg(p_tr[idx], y_tr[idx], p_te, y_te, seed=seed)
        rows.append({"labels": int(len(idx)), "latent_accuracy": lat, "pixel_accuracy": pix,
                     "latent_seconds": t1 - t0, "pixel_seconds": time.perf_counter() - t1})
    return {"probe": "logistic regression (L2, C=1) on standardised features", "latent_dim": model.cfg.latent_dim,
            "n_test": int(len(y_te)), "rows": rows}


# ------------------------------------------------------------------------------------- compression

def _png_bytes(img: np.ndarray, mode: str) -> int:
    from PIL import Image
    buf = io.BytesIO()
    im = Image.fromarray(img)
    if mode == "1":
        im = im.convert("1")
    im.save(buf, format="PNG", optimize=True)
    return len(buf.getvalue())


def compression(model: VAE, test: ImageData, *, iw_samples: int = 100, max_images: int = 1000, seed: int = 0,
                binarized: bool | None = None) -> dict[str, Any]:
    """Bits per dimension of the VAE's bound next to PNG and gzip on the same images.

    For a Bernoulli model the images are binarised once (fixed seed) and every codec sees those 0/1
    images: the bound is then a real code length (bits-back coding reaches it up to a small overhead).
    For a Gaussian model the 8-bit images are used and the bound includes the usual D*ln(256) term.
    PNG is measured per image (each file with its ~70-byte header) and for all images tiled into one
    file; gzip (level 9) on the raw bytes of all images at once (bits packed 8 per byte when binary).
    """
    cfg = model.cfg
    x = test.x[:max_images]
    y = test.y[:max_images] if test.y is not None else None
    if binarized is None:
        binarized = cfg.likelihood == "bernoulli"
    xs = fixed_binarized(x, seed) if binarized else x
    ev = evaluate(model, ImageData(xs, y), iw_samples=iw_samples, seed=seed)
    n, d = xs.shape[0], cfg.data_dim
    arr = xs.numpy()                                        # uint8 [N, C, H, W] (0/255 when binarised)
    hwc = arr.transpose(0, 2, 3, 1)
    mode = "1" if binarized else ("L" if cfg.channels == 1 else "RGB")
    per_png = sum(_png_bytes(im[..., 0] if cfg.channels == 1 else im, mode) for im in hwc)
    cols = int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / cols))
    s = cfg.image_size
    tile = np.zeros((rows * s, cols * s) + (() if cfg.channels == 1 else (3,)), np.uint8)
    for i, im in enumerate(hwc):
        r, c = divmod(i, cols)
        tile[r * s:(r + 1) * s, c * s:(c + 1) * s] = im[..., 0] if cfg.channels == 1 else im
    tiled_png = _png_bytes(tile, mode) * n / (n)          # whole file, padding included
    raw = np.packbits(arr > 127).tobytes() if binarized else arr.tobytes()
    gz = len(gzip.compress(raw, compresslevel=9))
    total_dims = n * d
    out = {
        "images": "binarised (fixed seed) 0/1" if binarized else "8-bit",
        "n_images": int(n), "dims_per_image": int(d),
        "raw_bits_per_dim": 1.0 if binarized else 8.0,
        "neg_elbo_bits_per_dim": ev["bits_per_dim"],
        "iw_bits_per_dim": ev.get("bits_per_dim_iw"),
        "iw_samples": iw_samples if iw_samples > 1 else None,
        "png_per_image_bits_per_dim": per_png * 8 / total_dims,
        "png_tiled_bits_per_dim": tiled_png * 8 / total_dims,
        "gzip_bits_per_dim": gz * 8 / total_dims,
        "neg_elbo_nats": ev["neg_elbo"], "nll_iw_nats": ev.get("nll_iw"),
    }
    return out


# -------------------------------------------------------------------------------- rate-distortion

def rate_distortion(data: DataSplit, betas: Sequence[float], *, base: RunConfig | None = None,
                    out_root=None, callback: Callback | None = None,
                    cancel: threading.Event | None = None) -> dict[str, Any]:
    """Train one run per beta (same seed, data and model); each is a point (rate = test KL, distortion = test recon).

    Runs are saved under ``out_root/beta-<b>`` when ``out_root`` is given. ``callback`` receives the
    training events with an extra ``"beta"`` key... under ``"rd_beta"``.
    """
    from .runs import save_run
    base = base or RunConfig()
    points = []
    for b in betas:
        if cancel is not None and cancel.is_set():
            break
        cfg = RunConfig(model=base.model, train=cfg_replace(base.train, beta=float(b)), data=base.data)
        res = fit(cfg, data, callback=(lambda e, b=b: callback({**e, "rd_beta": b})) if callback else None,
                  cancel=cancel)
        ev = evaluate(res.model, data.test, seed=cfg.train.seed)
        pt = {"beta": float(b), "rate_nats": ev["kl"], "distortion_nats": ev["recon"], "neg_elbo": ev["neg_elbo"],
              "active_units": ev["active_units"], "seconds": res.seconds, "status": res.status}
        if out_root is not None:
            from pathlib import Path
            path = Path(out_root) / f"beta-{b:g}"
            save_run(path, res.model, cfg, {"status": res.status, "message": res.message, "seconds": res.seconds,
                                            "n_train": int(data.train.x.shape[0]), "history": res.history,
                                            "final": ev})
            pt["run_dir"] = str(path)
        points.append(pt)
    return {"points": points, "epochs": base.train.epochs, "latent_dim": base.model.latent_dim,
            "likelihood": base.model.likelihood}


# ------------------------------------------------------------------------------------ augmentation

def _mlp_accuracy(xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, yte: np.ndarray, seed: int,
                  steps: int = 600, batch: int = 64) -> float:
    """Test accuracy of a one-hidden-layer MLP (256 ReLU units, Adam 1e-3, weight decay 1e-4, dropout 0.2)
    trained for ``steps`` minibatches drawn with replacement: the same budget with or without extra data."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    d, k = xtr.shape[1], int(max(ytr.max(), yte.max())) + 1
    net = torch.nn.Sequential(torch.nn.Linear(d, 256), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(256, k))
    opt = adam(net.parameters(), lr=1e-3, weight_decay=1e-4)
    xt, yt = torch.as_tensor(xtr, dtype=torch.float32), torch.as_tensor(ytr, dtype=torch.long)
    net.train()
    for _ in range(steps):
        i = torch.randint(len(yt), (min(batch, len(yt)),), generator=g)
        loss = torch.nn.functional.cross_entropy(net(xt[i]), yt[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        pred = net(torch.as_tensor(xte, dtype=torch.float32)).argmax(1).numpy()
    return float((pred == yte).mean())


def augmentation(data: DataSplit, *, labels: int = 100, per_class: int = 200, cvae_epochs: int = 300,
                 seed: int = 0, threads: int = 0, max_test: int | None = None, latent_dim: int = 2,
                 temperature: float = 1.0, classifier_steps: int = 600, callback: Callback | None = None,
                 cancel: threading.Event | None = None) -> dict[str, Any]:
    """A small MLP classifier on ``labels`` balanced labelled images, with and without generated ones.

    The conditional VAE is trained on the same ``labels`` images only, so the augmented classifier sees
    no label the plain one does not. Generated images: ``per_class`` per class from the prior, pixels
    used as grey levels. Returns both accuracies and the generated samples (uint8, for export).
    ``latent_dim`` is small by default: with 100 images and an 8-D code the CVAE put the digit's
    identity in z and ignored the label (samples of the wrong class); with 2-D the label must carry it.
    """
    if not data.has_labels:
        raise ValueError(f"augmentation needs labelled data; {data.name} has no labels")
    idx = balanced_subset(data.train.y.numpy(), labels, seed)
    lab = ImageData(data.train.x[idx], data.train.y[idx])
    test = data.test if max_test is None else ImageData(data.test.x[:max_test], data.test.y[:max_test])
    k = data.num_classes
    mcfg = ModelConfig(channels=data.channels, image_size=data.image_size, latent_dim=latent_dim,
                       hidden=(256, 128), conditional=True, num_classes=k)
    tcfg = TrainConfig(epochs=cvae_epochs, batch_size=64, lr=1e-3, lr_warmup=0.0, output_bias_init=False,
                       seed=seed, threads=threads,
                       eval_every_epoch=False, recon_every=10 ** 9)
    cfg = RunConfig(model=mcfg, train=tcfg, data=DataConfig(name=data.name))
    t0 = time.perf_counter()
    res = fit(cfg, DataSplit(data.name, data.source, lab, ImageData(test.x[:0], test.y[:0]), data.class_names),
              callback=callback, cancel=cancel)
    cvae_seconds = time.perf_counter() - t0
    ys = np.repeat(np.arange(k), per_class)
    _, gen = sample_prior(res.model, len(ys), seed=seed, y=ys, temperature=temperature)
    gen_u8 = np.clip(np.rint(gen * 255), 0, 255).astype(np.uint8)
    d = data.channels * data.image_size ** 2
    xl = lab.x.reshape(len(idx), d).numpy() / 255.0
    yl = lab.y.numpy()
    xte = test.x.reshape(test.x.shape[0], d).numpy() / 255.0
    yte = test.y.numpy()
    plain = _mlp_accuracy(xl, yl, xte, yte, seed, steps=classifier_steps)
    aug = _mlp_accuracy(np.concatenate([xl, gen_u8.reshape(len(ys), d) / 255.0]), np.concatenate([yl, ys]),
                        xte, yte, seed, steps=classifier_steps)
    return {"labels": int(len(idx)), "generated_per_class": per_class, "classifier": f"MLP 784-256-10 (torch, {classifier_steps} Adam steps of 64, dropout 0.2)",
            "cvae": {"epochs": cvae_epochs, "latent_dim": latent_dim, "status": res.status, "seconds": cvae_seconds},
            "accuracy_without": plain, "accuracy_with": aug, "gain": aug - plain, "n_test": int(len(yte)),
            "samples": {"x": gen_u8, "y": ys}, "model": res.model, "config": cfg}


# ----------------------------------------------------------------------------------------- anomaly

def anomaly_scores(model: VAE, test: ImageData, *, seed: int = 0, binarized: bool = False) -> np.ndarray:
    """Per-image -ELBO (nats) of ``test``: higher = more anomalous. [N]."""
    return evaluate(model, test, per_image=True, seed=seed, binarized=binarized)["per_image"]["neg_elbo"]


def top_anomalies(scores: np.ndarray, n: int = 16) -> np.ndarray:
    """Indices of the ``n`` highest scores, highest first."""
    return np.argsort(-scores, kind="stable")[:n]


def without_class(data: DataSplit, holdout: int) -> DataSplit:
    """The same data with class ``holdout`` removed from the training split (the test split is kept)."""
    if data.train.y is None:
        raise ValueError("holding out a class needs labels")
    if not 0 <= holdout < data.num_classes:
        raise ValueError(f"--holdout-class must be 0..{data.num_classes - 1}, got {holdout}")
    keep = data.train.y != holdout
    return DataSplit(data.name, data.source, ImageData(data.train.x[keep], data.train.y[keep]), data.test,
                     data.class_names)


def holdout_auroc(scores: np.ndarray, y: np.ndarray, holdout: int) -> float:
    """AUROC of ``scores`` separating class ``holdout`` (positive) from the rest."""
    from sklearn.metrics import roc_auc_score
    return float(roc_auc_score((np.asarray(y) == holdout).astype(int), scores))


def holdout_anomaly(model: VAE, test: ImageData, holdout: int, *, seed: int = 0, top: int = 16) -> dict[str, Any]:
    """Score ``test`` with a model trained without ``holdout``: AUROC, per-class mean score, top anomalies."""
    scores = anomaly_scores(model, test, seed=seed)
    y = test.y.numpy()
    top_idx = top_anomalies(scores, top)
    per_class = {str(int(c)): float(scores[y == c].mean()) for c in np.unique(y)}
    return {"holdout_class": holdout, "auroc": holdout_auroc(scores, y, holdout),
            "auroc_per_pixel_normalised": _auroc_normalised(scores, test, y, holdout),
            "auroc_complexity_corrected": holdout_auroc(complexity_corrected(scores, test.x), y, holdout),
            "mean_score_per_class": per_class, "top_indices": top_idx.tolist(),
            "top_labels": y[top_idx].tolist(), "top_scores": scores[top_idx].tolist(),
            "holdout_share_of_top": float((y[top_idx] == holdout).mean()), "scores": scores}


def _auroc_normalised(scores: np.ndarray, test: ImageData, y: np.ndarray, holdout: int) -> float:
    """AUROC of -ELBO divided by the image's ink (sum of pixels): a crude correction for the known
    bias of likelihood scores towards simple images (Nalisnick et al. 2019)."""
    ink = test.x.reshape(test.x.shape[0], -1).float().sum(1).numpy() / 255.0
    return holdout_auroc(scores / np.maximum(ink, 1.0), y, holdout)


def complexity_bits(x: torch.Tensor) -> np.ndarray:
    """Code length in bits of each uint8 image [N, C, H, W] under a generic lossless compressor
    (zlib level 9 on the raw bytes, header excluded): a measure of the image's complexity. [N]."""
    import zlib
    arr = x.numpy()
    empty = len(zlib.compress(b"", 9))
    return np.array([8.0 * (len(zlib.compress(a.tobytes(), 9)) - empty) for a in arr])


def complexity_corrected(scores: np.ndarray, x: torch.Tensor) -> np.ndarray:
    """-ELBO (nats) minus the image's generic code length (nats): Serra et al. 2020's input-complexity
    correction. Likelihood scores rank simple images (a 1, a 7) as typical whatever the model saw; this
    asks how much *better* than a general-purpose compressor the model codes the image."""
    return scores - complexity_bits(x) * math.log(2.0)
