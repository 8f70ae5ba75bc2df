"""Augmentation: a small classifier on k labelled images, with and without samples from a conditional VAE
trained on those same k images (no extra labels leak in)."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import DataConfig, ModelConfig, RunConfig, TrainConfig
from ..data import DataSplit, ImageData
from ..latent import sample_prior
from ..pipeline import train_run
from ..train import adam
from .common import Callback, balanced_subset


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
                 temperature: float = 1.0, classifier_steps: int = 600, out: str | Path | None = None,
                 callback: Callback | None = None, cancel: threading.Event | None = None) -> dict[str, Any]:
    """A small MLP classifier on ``labels`` balanced labelled images, with and without generated ones.

    The conditional VAE is trained on the same ``labels`` images only, so the augmented classifier sees
    no label the plain one does not. Generated images: ``per_class`` per class from the prior, pixels
    used as grey levels. Returns both accuracies, the generated samples (uint8, for export) and the CVAE
    (written as a run folder to ``out`` when given).
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
    res = train_run(cfg, DataSplit(data.name, data.source, lab, ImageData(test.x[:0], test.y[:0]),
                                   data.class_names), out, callback=callback, cancel=cancel)
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
    classifier = f"MLP {d}-256-{k} (torch, {classifier_steps} Adam steps of 64, dropout 0.2)"
    return {"labels": int(len(idx)), "generated_per_class": per_class, "classifier": classifier,
            "cvae": {"epochs": cvae_epochs, "latent_dim": latent_dim, "status": res.status, "seconds": res.seconds},
            "accuracy_without": plain, "accuracy_with": aug, "gain": aug - plain, "n_test": int(len(yte)),
            "samples": {"x": gen_u8, "y": ys}, "model": res.model}
