"""Three VAEs written the way their users write them, each trained by its own loop and logged with vae.track (shared by
tests/test_track.py and the browser tests).

- ``ExamplesVAE``: the pytorch/examples MNIST VAE (fc1/fc21/fc22/fc3/fc4, sigmoid output, forward -> (recon, mu,
  logvar)); its encode takes flattened images, its decode returns probabilities [N, 784].
- ``ConvRGBVAE``: RGB images, GroupNorm and SiLU; its encoder returns one tensor of 2 D channels the user splits, its
  decoder is called ``generate`` and returns logits, and ``forward`` returns a dict: logged with ``encode=`` and
  ``decode=``.
- ``GaussianVAE``: an MLP whose decoder returns a Gaussian mean in [0, 1] shaped [N, 1, 28, 28].
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from labkit import examples_vae


class ExamplesVAE(examples_vae.VAE):
    """labkit.examples_vae's model under the name a user's class has, with the loss its loop calls."""

    def loss(self, x):
        recon, mu, logvar = self(x)
        bce, kld = examples_vae.loss_function(recon, x, mu, logvar)
        return (bce + kld) / len(x), {"recon": bce / len(x), "kl": kld / len(x)}


class ConvRGBVAE(nn.Module):
    def __init__(self, side: int = 16, latent: int = 8, width: int = 16):
        super().__init__()
        self.side = side
        self.enc = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.GroupNorm(4, width), nn.SiLU(),
                                 nn.Conv2d(width, 2 * width, 4, stride=2, padding=1), nn.GroupNorm(4, 2 * width),
                                 nn.SiLU(), nn.Conv2d(2 * width, 2 * latent, side // 2))       # [N, 2D, 1, 1]
        self.fc = nn.Linear(latent, 2 * width * (side // 2) ** 2)
        self.up = nn.Sequential(nn.GroupNorm(4, 2 * width), nn.SiLU(), nn.Upsample(scale_factor=2),
                                nn.Conv2d(2 * width, width, 3, padding=1), nn.GroupNorm(4, width), nn.SiLU(),
                                nn.Conv2d(width, 3, 3, padding=1))
        self.width = width

    def encoder(self, x):
        return self.enc(x)

    def generate(self, z):
        h = self.fc(z).view(len(z), 2 * self.width, self.side // 2, self.side // 2)
        return self.up(h)                                             # logits [N, 3, S, S]

    def forward(self, x):
        mu, logvar = self.encoder(x).flatten(1).chunk(2, dim=1)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        return {"logits": self.generate(z), "mu": mu, "logvar": logvar}

    def loss(self, x):
        out = self(x)
        rec = F.binary_cross_entropy_with_logits(out["logits"], x, reduction="sum") / len(x)
        kl = -0.5 * torch.sum(1 + out["logvar"] - out["mu"].pow(2) - out["logvar"].exp()) / len(x)
        return rec + kl, {"recon": rec, "kl": kl}


class GaussianVAE(nn.Module):
    def __init__(self, latent: int = 8):
        super().__init__()
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.LeakyReLU(0.2))
        self.mu, self.logvar = nn.Linear(256, latent), nn.Linear(256, latent)
        self.decoder = nn.Sequential(nn.Linear(latent, 256), nn.LeakyReLU(0.2), nn.Linear(256, 784))

    def encode(self, x):
        h = self.encoder(x)
        return self.mu(h), self.logvar(h)

    def decode(self, z):
        return torch.sigmoid(self.decoder(z)).view(-1, 1, 28, 28)     # the mean of a Gaussian, in [0, 1]

    def loss(self, x):
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        mse = F.mse_loss(self.decode(z), x, reduction="sum") / len(x)
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / len(x)
        return mse + kl, {"mse": mse, "kl": kl}


def train_and_log(lab, model, x: torch.Tensor, epochs: int = 2, batch: int = 64, lr: float = 1e-3):
    """The user's own loop: Adam on ``model.loss`` over float images ``x``, ``lab.log`` after each epoch."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for epoch in range(1, epochs + 1):
        model.train()
        total, n = 0.0, 0
        for i in range(0, len(x), batch):
            loss, parts = model.loss(x[i:i + batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, n = total + float(loss.detach()) * len(x[i:i + batch]), n + len(x[i:i + batch])
        lab.log(epoch, loss=total / n, **{k: float(v.detach()) for k, v in parts.items()})
