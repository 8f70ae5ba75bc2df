"""Encoders, decoders and the VAE (Kingma & Welling 2014), optionally conditional (Sohn et al. 2015), optionally with
a second stochastic layer (``latent_layers = 2``: the hierarchical VAE of Tomczak & Welling 2018, section 3.3).

The model contract (:class:`LatentModel`) is what every page, use case and tool needs of a model; VAE Lab's
:class:`VAE` implements it, and so does a model logged from a user's own code (``vae.track``).

Every shape comes from a ``ModelConfig``. The decoders use only these layer types, so
that a small forward pass outside torch (the in-browser decoder) can mirror them:
``Linear``, an activation (``ACTIVATIONS``), ``ConvTranspose2d(k=4, s=2, p=1)``, a
top-left crop and, for pixels, a sigmoid of the logits.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig

ACTIVATIONS = {"relu": nn.ReLU, "elu": nn.ELU, "silu": nn.SiLU, "leaky_relu": nn.LeakyReLU}


class Lower(NamedTuple):
    """The lower stochastic layer of a two-layer model, for one sample of the top layer z: [N, D] each."""

    mu: torch.Tensor            # q(z1 | x, z): mean
    logvar: torch.Tensor        # q(z1 | x, z): log-variance
    z: torch.Tensor             # the draw z1 ~ q(z1 | x, z)
    prior_mu: torch.Tensor      # p(z1 | z): mean
    prior_logvar: torch.Tensor  # p(z1 | z): log-variance


class VAEOutput(NamedTuple):
    recon_logits: torch.Tensor  # [B, C, H, W] decoder output before the sigmoid
    mu: torch.Tensor            # [B, D] posterior means (the top layer's, with two layers)
    logvar: torch.Tensor        # [B, D] posterior log-variances
    z: torch.Tensor             # [B, D] the sample decoded
    prior: tuple[torch.Tensor, torch.Tensor] | None = None  # VampPrior: its components (mu_k, logvar_k) [K, D]
    lower: Lower | None = None  # two layers: the lower layer's terms, rows as z's (k > 1: [k * B, D], sample-major)


class LatentModel(Protocol):
    """What the pages, the use cases and the tools need of a model (shapes in each method's docstring).

    - ``cfg``: a ``ModelConfig`` describing its shapes (channels, image_size, latent_dim), its likelihood, whether
      it is conditional (and on how many classes) and its prior;
    - ``encode(x, y=None) -> (mu, logvar)``: x [B, C, H, W] float in 0..1 -> the posterior's mean and log-variance
      [B, D];
    - ``decode(z, y=None) -> logits``: z [B, D] -> the likelihood's parameters [B, C, H, W] as logits: Bernoulli
      logits, or for the Gaussian likelihood the logit of its mean (pixels are ``sigmoid(logits)`` either way);
    - ``likelihood_sigma() -> [C] or None``: the Gaussian likelihood's sigma per channel (None for Bernoulli);
    - ``prior_params() -> (mu_k, logvar_k) [K, D] or None``: the prior's mixture components (None: N(0, I));
    - ``sample_prior(n, generator, temperature) -> z [n, D]``: draws from the prior.

    Inference goes through ``vae.latent`` (no autograd, eval mode, the caller's mode restored); nothing outside
    training changes a model's weights.
    """

    cfg: ModelConfig

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]: ...

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor: ...

    def likelihood_sigma(self) -> torch.Tensor | None: ...

    def prior_params(self) -> tuple[torch.Tensor, torch.Tensor] | None: ...

    def sample_prior(self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0
                     ) -> torch.Tensor: ...


def conv_sides(image_size: int, layers: int) -> tuple[int, int]:
    """Feature-map side after the encoder's stride-2 convs, and the decoder's starting side.

    The encoder halves (floor) per layer; the decoder starts at ceil(side / 2**layers) and
    doubles, then crops to ``image_size``, so any side from 8 to 64 works.
    """
    enc = image_size
    for _ in range(layers):
        enc = (enc + 2 - 4) // 2 + 1
    return enc, math.ceil(image_size / 2 ** layers)


def _one_hot(y: torch.Tensor | None, cfg: ModelConfig, batch: int, device) -> torch.Tensor | None:
    if not cfg.conditional:
        return None
    if y is None:
        raise ValueError("a conditional model needs labels y: [B] ints")
    if y.shape != (batch,):
        raise ValueError(f"y must have shape [{batch}], got {list(y.shape)}")
    return F.one_hot(y.long().to(device), cfg.num_classes).float()


class Encoder(nn.Module):
    """x: [B, C, H, W] (float 0..1), y: [B] or None -> mu, logvar: [B, D]."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        act = ACTIVATIONS[cfg.activation]
        extra = cfg.num_classes if cfg.conditional else 0
        if cfg.arch == "mlp":
            self.features = nn.Flatten()
            width = cfg.data_dim
            layers: list[nn.Module] = []
            for i, h in enumerate(cfg.hidden):
                layers += [nn.Linear(width + (extra if i == 0 else 0), h), act()]
                width = h
            self.head = nn.Sequential(*layers)
        else:
            convs: list[nn.Module] = []
            ch = cfg.channels
            for h in cfg.hidden:
                convs += [nn.Conv2d(ch, h, 4, 2, 1), act()]
                ch = h
            self.features = nn.Sequential(*convs, nn.Flatten())
            side, _ = conv_sides(cfg.image_size, len(cfg.hidden))
            self.head = nn.Sequential(nn.Linear(ch * side * side + extra, cfg.fc_dim), act())
            width = cfg.fc_dim
        self.out = nn.Linear(width, 2 * cfg.latent_dim)

    def hidden(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The last hidden layer, from which ``out`` reads mu and logvar: [B, hidden[-1]] (mlp) or [B, fc_dim]."""
        h = self.features(x)
        onehot = _one_hot(y, self.cfg, x.shape[0], x.device)
        if onehot is not None:
            h = torch.cat([h, onehot], dim=1)
        return self.head(h)

    @property
    def hidden_width(self) -> int:
        return self.out.in_features

    def code(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The last hidden layer -> mu, logvar: [B, D]."""
        mu, logvar = self.out(h).chunk(2, dim=1)
        return mu, logvar

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.code(self.hidden(x, y))


class Decoder(nn.Module):
    """z: [B, D], y: [B] or None -> logits: [B, C, H, W]."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        act = ACTIVATIONS[cfg.activation]
        width = cfg.latent_dim * cfg.latent_layers + (cfg.num_classes if cfg.conditional else 0)
        layers: list[nn.Module] = []
        if cfg.arch == "mlp":
            for h in cfg.decoder_widths:
                layers += [nn.Linear(width, h), act()]
                width = h
            layers.append(nn.Linear(width, cfg.data_dim))
            self.start_side = 0
        else:
            _, side = conv_sides(cfg.image_size, len(cfg.hidden))
            self.start_side = side
            chans = list(reversed(cfg.hidden))
            layers += [nn.Linear(width, cfg.fc_dim), act(), nn.Linear(cfg.fc_dim, chans[0] * side * side), act(),
                       nn.Unflatten(1, (chans[0], side, side))]
            for c_in, c_out in zip(chans, chans[1:]):
                layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1), act()]
            layers.append(nn.ConvTranspose2d(chans[-1], cfg.channels, 4, 2, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        onehot = _one_hot(y, self.cfg, z.shape[0], z.device)
        if onehot is not None:
            z = torch.cat([z, onehot], dim=1)
        out = self.net(z)
        s, c = self.cfg.image_size, self.cfg.channels
        if self.cfg.arch == "mlp":
            return out.view(-1, c, s, s)
        return out[:, :, :s, :s]


class LowerLayer(nn.Module):
    """The second stochastic layer z1 [B, D] below the top one z [B, D] (Tomczak & Welling 2018, section 3.3):
    q(z1 | x, z) reads the encoder's last hidden layer beside z, p(z1 | z) reads z; each one hidden layer as wide as
    the decoder's first. The decoder then reads [z1, z]."""

    def __init__(self, cfg: ModelConfig, hidden_width: int):
        super().__init__()
        act, d, w = ACTIVATIONS[cfg.activation], cfg.latent_dim, cfg.decoder_widths[0]
        self.posterior = nn.Sequential(nn.Linear(hidden_width + d, w), act(), nn.Linear(w, 2 * d))
        self.prior = nn.Sequential(nn.Linear(d, w), act(), nn.Linear(w, 2 * d))

    def conditional_prior(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z [N, D] -> the mean and log-variance of p(z1 | z): [N, D] each."""
        mu, logvar = self.prior(z).chunk(2, dim=1)
        return mu, logvar

    def posterior_params(self, h: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The mean and log-variance of q(z1 | x, z): [N, D] each."""
        mu, logvar = self.posterior(torch.cat([h, z], dim=1)).chunk(2, dim=1)
        return mu, logvar

    def mean(self, h: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The mean of q(z1 | x, z) [N, D], drawing nothing."""
        return self.posterior_params(h, z)[0]

    def forward(self, h: torch.Tensor, z: torch.Tensor, eps: torch.Tensor | None = None) -> Lower:
        """The encoder's last hidden layer h [N, H] and a top-layer sample z [N, D] -> :class:`Lower` (``eps``
        [N, D] fixes z1's noise)."""
        mu, logvar = self.posterior_params(h, z)
        z1 = VAE.reparameterize(mu, logvar, eps)
        return Lower(mu, logvar, z1, *self.conditional_prior(z))


class VAE(nn.Module):
    """The variational autoencoder: ``VAE(cfg)``; shapes in the method docstrings. With ``cfg.latent_layers = 2``,
    ``encode`` and ``decode`` speak of the top layer z (what the pages map and slide): ``decode`` sets the lower
    layer z1 to the mean of p(z1 | z), and ``forward`` draws both layers from the posterior."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        if cfg.likelihood == "gaussian" and cfg.learn_sigma:
            # one log-sigma per channel, shared over pixels (sigma-VAE, Rybkin et al. 2021)
            self.log_sigma = nn.Parameter(torch.full((cfg.channels,), math.log(cfg.gaussian_sigma)))
        else:
            self.register_parameter("log_sigma", None)
        if cfg.prior == "vamp":
            # the VampPrior's pseudo-inputs as pixel logits; vae.train.init_prior starts them at training images
            self.pseudo_inputs = nn.Parameter(torch.zeros(cfg.prior_components, cfg.channels, cfg.image_size,
                                                          cfg.image_size))
        else:
            self.register_parameter("pseudo_inputs", None)
        self.lower = LowerLayer(cfg, self.encoder.hidden_width) if cfg.latent_layers == 2 else None

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x: [B, C, H, W] float 0..1 -> mu, logvar: [B, D]."""
        return self.encoder(x, y)

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor | None = None) -> torch.Tensor:
        """z = mu + sigma * eps with eps ~ N(0, I) (drawn unless given): [B, D]."""
        return mu + (torch.randn_like(mu) if eps is None else eps.to(mu)) * torch.exp(0.5 * logvar)

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """z: [B, D] -> logits: [B, C, H, W]; pixels are ``torch.sigmoid(logits)``. Two layers: z is the top one,
        and the lower one is the mean of p(z1 | z)."""
        if self.lower is None:
            return self.decoder(z, y)
        return self.decode_layers(z, self.lower.conditional_prior(z)[0])

    def decode_layers(self, z: torch.Tensor, z1: torch.Tensor) -> torch.Tensor:
        """Two layers: the top z [B, D] and the lower z1 [B, D] -> logits [B, C, H, W]."""
        return self.decoder(torch.cat([z1, z], dim=1))

    def encode_means(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Two layers: x [B, C, H, W] -> the top posterior's mean and the lower one's mean given it, [B, D] each
        (what a reconstruction decodes; no noise is drawn)."""
        h = self.encoder.hidden(x)
        mu, _ = self.encoder.code(h)
        return mu, self.lower.mean(h, mu)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None, k: int = 1,
                eps: torch.Tensor | None = None) -> VAEOutput:
        """Encode, sample, decode. With ``k`` > 1 (the IWAE objective) every image gets ``k`` samples:
        ``z`` is [k, B, D] and ``recon_logits`` [k * B, C, H, W], sample-major. ``eps`` ([B, D], or [k, B, D]) fixes
        the noise. ``prior`` carries the VampPrior's components, computed here so that a DDP-wrapped model sees every
        parameter used in its forward pass."""
        h = self.encoder.hidden(x, y)
        mu, logvar = self.encoder.code(h)
        prior = self.prior_params()
        if k == 1:
            z = self.reparameterize(mu, logvar, eps)
        else:
            z = self.reparameterize(mu.expand(k, *mu.shape), logvar.expand(k, *logvar.shape), eps)
        flat = z.reshape(-1, mu.shape[1])
        if self.lower is not None:
            low = self.lower(h if k == 1 else h.repeat(k, 1), flat)
            return VAEOutput(self.decode_layers(flat, low.z), mu, logvar, z, prior, low)
        return VAEOutput(self.decoder(flat, None if y is None else y.repeat(k)), mu, logvar, z, prior)

    def prior_params(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The VampPrior's components (mu_k, logvar_k) [K, D], the encoder's posteriors of the pseudo-inputs;
        None for the standard normal prior."""
        if self.pseudo_inputs is None:
            return None
        return self.encode(torch.sigmoid(self.pseudo_inputs))

    @torch.no_grad()
    def sample_prior(self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0
                     ) -> torch.Tensor:
        """n draws z ~ p(z) [n, D] on the model's device, spread scaled by ``temperature``: N(0, T^2 I), or for the
        VampPrior a uniformly chosen component's N(mu_k, T^2 sigma_k^2)."""
        d = self.cfg.latent_dim
        eps = torch.randn((n, d), generator=generator) * temperature
        prior = self.prior_params()
        if prior is None:
            return eps.to(next(self.parameters()).device)
        mu_k, logvar_k = prior
        pick = torch.randint(mu_k.shape[0], (n,), generator=generator).to(mu_k.device)
        return mu_k[pick] + eps.to(mu_k.device) * torch.exp(0.5 * logvar_k[pick])

    def sigma(self) -> torch.Tensor:
        """Gaussian likelihood's sigma per channel: [C] (its setting, whatever the likelihood)."""
        if self.log_sigma is not None:
            return self.log_sigma.exp()
        return torch.full((self.cfg.channels,), self.cfg.gaussian_sigma)

    def likelihood_sigma(self) -> torch.Tensor | None:
        """The Gaussian likelihood's sigma per channel [C], or None for the Bernoulli likelihood."""
        return self.sigma() if self.cfg.likelihood == "gaussian" else None


def build_model(cfg: ModelConfig) -> VAE:
    """The one constructor used by training, loading and the app."""
    return VAE(cfg)


def build_model_for(config, folder=None) -> VAE:
    """The model of a run config (``vae.kinds.BUILDERS["vae"]``; the run's folder is not needed)."""
    return build_model(config.model)
