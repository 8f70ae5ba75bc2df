"""The pytorch/examples MNIST VAE (``vae/main.py``): the model and loss its users copy, written once for the tests and
benchmarks that stand in for them (tests/foreign_models.py, bench/track_overhead.py, bench/train_vs_baseline.py).

``VAE()`` is the example as written there (784-400-20, sigmoid output, ``forward`` returning ``(recon, mu,
logvar)``); ``side``, ``latent`` and ``hidden`` resize it without changing its layers, its initialisation order or
its use of the random generator, so a seeded run matches the example's.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class VAE(nn.Module):
    def __init__(self, side: int = 28, latent: int = 20, hidden: int = 400):
        super().__init__()
        self.d = side * side
        self.fc1 = nn.Linear(self.d, hidden)
        self.fc21 = nn.Linear(hidden, latent)
        self.fc22 = nn.Linear(hidden, latent)
        self.fc3 = nn.Linear(latent, hidden)
        self.fc4 = nn.Linear(hidden, self.d)

    def encode(self, x):
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def reparameterize(self, mu, logvar):
        std = torch.exp(0.5 * logvar)
        eps = torch.randn_like(std)
        return mu + eps * std

    def decode(self, z):
        h3 = F.relu(self.fc3(z))
        return torch.sigmoid(self.fc4(h3))

    def forward(self, x):
        mu, logvar = self.encode(x.view(-1, self.d))
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar


def loss_function(recon_x, x, mu, logvar) -> tuple[torch.Tensor, torch.Tensor]:
    """The example's loss, its two terms apart: (binary cross-entropy, KL), each summed over the batch."""
    bce = F.binary_cross_entropy(recon_x, x.reshape(len(recon_x), -1), reduction="sum")
    # see Appendix B from VAE paper: Kingma and Welling. Auto-Encoding Variational Bayes. ICLR, 2014
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce, kld
