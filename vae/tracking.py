"""Debug your own VAE: log a model written in your own code, from your own training loop, into a run folder that every
page of VAE Lab opens, live while it trains::

    import vae
    with vae.track("runs/mine", model, test_images, labels=test_labels, output="probs") as lab:
        for epoch in range(1, epochs + 1):
            ...                                            # your loop, your loss, your optimizer
            lab.log(epoch, loss=train_loss, recon=recon, kl=kl)   # any named scalars

- ``model`` has ``encode(x) -> (mu, logvar)`` and ``decode(z) -> tensor``; for a model shaped otherwise pass
  ``encode=`` / ``decode=`` callables (an encoder returning one tensor of 2 D channels: ``encode=lambda x:
  model.encoder(x).chunk(2, 1)``; a decoder named ``generate``: ``decode=model.generate``). ``encode`` is given the
  images as ``test_images`` are laid out, ``[N, C, H, W]`` floats in 0..1, or flattened to ``[N, C*H*W]`` when that
  is what the model takes (found by trying). ``decode`` may return ``[N, C*H*W]`` or ``[N, C, H, W]``.
- ``output`` says what ``decode`` returns: ``"logits"`` (Bernoulli logits), ``"probs"`` (probabilities) or
  ``"mean"`` (a Gaussian mean in [0, 1], scored with a fixed ``sigma``).
- ``test_images``: held-out images, uint8 or float in 0..1, ``[N, H, W]`` or ``[N, C, H, W]`` with C = 1 or 3 and a
  square side of 8 to 64; ``labels`` optional.

Opening the tracker checks all of this on two test images and exports ``encode`` and ``decode`` once as ONNX
programs (``vae.foreign``: the app runs them without importing your code); a model that does not fit raises one
``TrackError`` line then, before anything is written. Each ``log`` records your scalars and what VAE Lab measures
itself on the test images, without autograd and leaving your model's train/eval mode as it found it: the test
-ELBO and its terms, the KL per dimension, the latent means and reconstructions (the snapshot the Compare replay and
the live charts read), and the weights. It works for a model on the CPU or a GPU.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from . import jobs
from .config import MAX_LATENT, MAX_SIDE, MIN_SIDE, ConfigError, ModelConfig, RunConfig, TrackedConfig
from .data import ImageData, to_float
from .evaluate import evaluate
from .foreign import DECODE, ENCODE, OUTPUTS, Part, ProgramError, export
from .loop import MAX_MAP_POINTS, N_RECON, recon_event
from .record import DataInfo, EpochRecord, Final, History, Metrics, Snapshot, snapshot_path, write_snapshot
from .runs import CONFIG, save_run
from .util import atomic_write_bytes

TEST_IMAGES = "test_images.safetensors"   # the test images the run is evaluated on: uint8 "x" [N, C, H, W], int64 "y"
MAX_TEST_IMAGES = 10_000                    # at most this many are kept in the folder (the pages show a few thousand)


class TrackError(ValueError):
    """``vae.track`` was given something it cannot log; the message is one line and says what is accepted."""


def images_uint8(images: Any) -> torch.Tensor:
    """Test images as uint8 [N, C, H, W], or a ``TrackError`` saying what is accepted."""
    x = torch.as_tensor(images.detach().cpu() if isinstance(images, torch.Tensor) else np.asarray(images))
    if x.ndim == 3:
        x = x[:, None]
    accepted = "accepted: [N, H, W] or [N, C, H, W] with C = 1 or 3, square, side 8..64, uint8 or float 0..1"
    if x.ndim != 4 or x.shape[1] not in (1, 3) or x.shape[2] != x.shape[3] or len(x) < 2:
        raise TrackError(f"test_images has shape {list(x.shape)}; {accepted}, at least 2 images")
    if not MIN_SIDE <= x.shape[2] <= MAX_SIDE:
        raise TrackError(f"test_images are {x.shape[2]}x{x.shape[3]}; {accepted}")
    if x.dtype == torch.uint8:
        return x.contiguous()
    if not (x.is_floating_point() and torch.isfinite(x).all() and x.min() >= 0 and x.max() <= 1):
        raise TrackError(f"test_images must be uint8 or finite floats in 0..1, got {x.dtype}; {accepted}")
    return (x.float() * 255).round().to(torch.uint8)


class ModesKept:
    """Eval mode for a model (every submodule), then each submodule's own mode back: a user may keep some parts in
    eval mode on purpose (a frozen batch norm), which ``model.train(True)`` would undo."""

    def __init__(self, model: nn.Module):
        self.model = model

    def __enter__(self) -> None:
        self.saved = [(m, m.training) for m in self.model.modules()]
        self.model.eval()

    def __exit__(self, *exc) -> None:
        for m, mode in self.saved:
            m.training = mode


class LiveModel(nn.Module):
    """The user's model seen through the model contract (``vae.models.LatentModel``) while it trains, so VAE Lab's
    own evaluation runs on it unchanged. ``eval()`` puts the user's model in eval mode and the ``train()`` that
    follows it (every tool restores the mode it found) gives each of its modules back its own mode."""

    def __init__(self, model: nn.Module, enc: Part, dec: Part, cfg: ModelConfig, output: str):
        super().__init__()
        self.user, self.cfg, self.output = model, cfg, output
        self._enc, self._dec = enc, dec
        self._kept: ModesKept | None = None

    def train(self, mode: bool = True) -> "LiveModel":
        if not mode and self._kept is None:
            self._kept = ModesKept(self.user)
            self._kept.__enter__()
        elif mode and self._kept is not None:
            self._kept.__exit__()
            self._kept = None
        self.training = mode
        return self

    def encode(self, x, y=None):
        return self._enc(x.to(_device(self.user)))

    def decode(self, z, y=None):
        out = self._dec(z.to(_device(self.user))).float()
        return out if self.output == "logits" else torch.logit(out.clamp(1e-6, 1 - 1e-6))

    def likelihood_sigma(self):
        return torch.full((self.cfg.channels,), self.cfg.gaussian_sigma) if self.cfg.likelihood == "gaussian" \
            else None

    def prior_params(self):
        return None


def _device(model: nn.Module) -> torch.device:
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


def _fn(model: nn.Module, given: Callable | None, name: str) -> Callable:
    if given is not None:
        if not callable(given):
            raise TrackError(f"{name}= must be a callable, got {type(given).__name__}")
        return given
    fn = getattr(model, name, None)
    if not callable(fn):
        raise TrackError(f"{type(model).__name__} has no {name}(); pass {name}= a callable "
                         f"({'images -> (mu, logvar)' if name == 'encode' else 'z -> images'})")
    return fn


def _first_line(e: BaseException) -> str:
    return f"{type(e).__name__}: " + next((ln for ln in str(e).splitlines() if ln.strip()), "")[:200]


class Tracker:
    """The run folder of one model logged from its user's loop (``vae.track`` builds it; see the module)."""

    def __init__(self, path: str | Path, model: nn.Module, test_images: Any, labels: Any = None, *,
                 output: str = "logits", encode: Callable | None = None, decode: Callable | None = None,
                 sigma: float = 0.1, eval_images: int = 2000):
        if not isinstance(model, nn.Module):
            raise TrackError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if output not in OUTPUTS:
            raise TrackError(f"output={output!r}; accepted: {', '.join(OUTPUTS)} (what decode returns)")
        self.dir = Path(path)
        if self.dir.exists() and (not self.dir.is_dir() or any(self.dir.iterdir())):
            raise TrackError(f"{self.dir} exists and is not empty; track writes a new run folder")
        x = images_uint8(test_images)
        y = None if labels is None else torch.as_tensor(np.asarray(labels)).reshape(-1).long()
        if y is not None and len(y) != len(x):
            raise TrackError(f"labels has {len(y)} entries for {len(x)} test images; accepted: one per image")
        keep = min(len(x), max(2, eval_images))
        self.test = ImageData(x[:keep], None if y is None else y[:keep])
        self.model, self.output = model, output
        self.enc_fn, self.dec_fn = _fn(model, encode, "encode"), _fn(model, decode, "decode")
        self.image_shape = tuple(x.shape[1:])
        self.cfg = self._probe(sigma)
        self.config = RunConfig(model=self.cfg, kind="tracked",
                                tracked=TrackedConfig(output=output, source=type(model).__name__[:200]))
        self.live = LiveModel(model, self.enc, self.dec, self.cfg, output)
        self.epochs: list[dict[str, Any]] = []
        self.t0 = time.time()
        self._open()

    # ------------------------------------------------------------------------------------ checks at the first call
    def _probe(self, sigma: float) -> ModelConfig:
        """Run encode and decode on two test images (no autograd, eval mode, the mode restored): the layouts, the
        latent size, finite codes, the decoder's output size and range; the model config they describe."""
        model = self.model
        x2 = to_float(self.test.x[:2]).to(_device(model))
        with ModesKept(model):
            with torch.no_grad():
                self.enc = self._encoder(x2)
                mu, logvar = self.enc(x2)
                self.dec = Part(model, self.dec_fn, "decode", self.image_shape)
                try:
                    out = self._decoded(mu)
                except TrackError:
                    raise
                except Exception as e:
                    raise TrackError(f"decode(z) failed on the codes of two test images ({_first_line(e)})") from None
        if not (torch.isfinite(out).all()) or (self.output != "logits" and (out.min() < -1e-4 or out.max() > 1 + 1e-4)):
            raise TrackError(f"decode returned values in [{float(out.min()):.3g}, {float(out.max()):.3g}]; output="
                             f"{self.output!r} needs finite values{' in [0, 1]' if self.output != 'logits' else ''}")
        c, s = self.image_shape[0], self.image_shape[1]
        try:
            return ModelConfig(arch="foreign", channels=c, image_size=s, latent_dim=mu.shape[1], hidden=(1,),
                               decoder_hidden=(1,), likelihood="gaussian" if self.output == "mean" else "bernoulli",
                               gaussian_sigma=sigma)
        except ConfigError as e:
            raise TrackError(str(e)) from None

    def _encoder(self, x2: torch.Tensor) -> Part:
        errors = []
        for flatten in (False, True):
            part = Part(self.model, self.enc_fn, "encode", self.image_shape, flatten_input=flatten)
            try:
                out = self.enc_fn(x2.flatten(1) if flatten else x2)
            except Exception as e:
                errors.append(_first_line(e))
                continue
            if not (isinstance(out, (tuple, list)) and len(out) == 2 and all(isinstance(t, torch.Tensor) for t in out)):
                raise TrackError(f"encode(x) must return (mu, logvar), two tensors; got {type(out).__name__}"
                                 f"{' of ' + str(len(out)) if isinstance(out, (tuple, list)) else ''} (pass encode= "
                                 "a callable that does)")
            mu, logvar = (t.flatten(1) for t in out)
            if mu.shape != logvar.shape or mu.shape[0] != 2 or not 1 <= mu.shape[1] <= MAX_LATENT:
                raise TrackError(f"encode(x) returned mu {list(out[0].shape)} and logvar {list(out[1].shape)} for 2 "
                                 f"images; accepted: two [2, D] tensors, D = 1..{MAX_LATENT}")
            if not (torch.isfinite(mu).all() and torch.isfinite(logvar).all()):
                raise TrackError("encode(x) returned non-finite codes (NaN or Inf) for the first test images")
            return part
        raise TrackError(f"encode(x) failed on two test images shaped {[2, *self.image_shape]} ({errors[0]}) and "
                         f"flattened to [2, {int(np.prod(self.image_shape))}] ({errors[1]})")

    def _decoded(self, mu: torch.Tensor) -> torch.Tensor:
        raw = self.dec_fn(mu)
        if not isinstance(raw, torch.Tensor):
            raise TrackError(f"decode(z) must return a tensor, got {type(raw).__name__} (pass decode= a callable that "
                             "does)")
        if raw.shape[0] != 2 or raw[0].numel() != int(np.prod(self.image_shape)):
            raise TrackError(f"decode(z) returned {list(raw.shape)} for 2 codes; the test images need [2, "
                             f"{int(np.prod(self.image_shape))}] or [2, {', '.join(map(str, self.image_shape))}]")
        return raw.float()

    # ------------------------------------------------------------------------------------ the folder
    def _open(self) -> None:
        """Export both programs (the weights go in model.safetensors at every log), write the config, start the
        job record. Nothing is left behind if the export fails."""
        self.dir.mkdir(parents=True, exist_ok=True)
        try:
            x2 = to_float(self.test.x[:2]).to(_device(self.model))
            with ModesKept(self.model):
                names = set(export(self.enc, x2, self.dir / ENCODE))
                with torch.no_grad():
                    mu, _ = self.enc(x2)
                names |= set(export(self.dec, mu, self.dir / DECODE))
        except ProgramError as e:
            for name in (ENCODE, DECODE):
                (self.dir / name).unlink(missing_ok=True)
            if not any(self.dir.iterdir()):
                self.dir.rmdir()
            raise TrackError(str(e)) from None
        self.weight_names = sorted(names)
        atomic_write_bytes(self.dir / CONFIG, (self.config.to_json() + "\n").encode())
        from safetensors.torch import save as st_save
        images = {"x": self.test.x[:MAX_TEST_IMAGES].contiguous()}
        if self.test.y is not None:
            images["y"] = self.test.y[:MAX_TEST_IMAGES].long().contiguous()
        atomic_write_bytes(self.dir / TEST_IMAGES, st_save(images))     # what the app's pages show for this run
        jobs.write_status(self.dir, state="running", pid=os.getpid(), host=jobs.HOST, started=time.time(),
                          proc_start=jobs.process_start(os.getpid()), launched_by="vae.track", owner="vae.track",
                          message="training in its own loop", epoch=0, epochs=None)

    # ------------------------------------------------------------------------------------ logging
    def log(self, epoch: int, **scalars: Any) -> EpochRecord:
        """Record ``scalars`` for ``epoch`` and VAE Lab's own measurements of the model as it is now (its test
        -ELBO, KL per dimension, codes and reconstructions), and write the run folder as of this epoch."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise TrackError(f"epoch must be a whole number >= 0, got {epoch!r}")
        figures, nonfinite = {}, []
        for k, v in scalars.items():
            f = float(v.detach().float().mean()) if isinstance(v, torch.Tensor) else v
            if not isinstance(f, (int, float)) or isinstance(f, bool):
                raise TrackError(f"log({k}=...) must be a number or a tensor, got {type(v).__name__}")
            if np.isfinite(f):
                figures[k] = float(f)
            else:
                nonfinite.append(k)
        ev = evaluate(self.live, self.test, seed=0, return_latent=True)      # eval mode inside, mode restored
        recon = recon_event(self.live, to_float(self.test.x[:N_RECON]), None, epoch)
        lat = ev["latent"]
        record = EpochRecord(epoch=epoch, train=figures, test={k: ev[k] for k in ("neg_elbo", "recon", "kl",
                                                                                  "bits_per_dim")},
                             test_kl_per_dim=ev["kl_per_dim"], active_units=ev["active_units"],
                             elapsed=time.time() - self.t0, nonfinite=nonfinite)
        self.epochs.append(record.to_dict())
        k = min(MAX_MAP_POINTS, lat["mu"].shape[0])
        write_snapshot(snapshot_path(self.dir, epoch), Snapshot(
            mu=lat["mu"][:k], logvar=lat["logvar"][:k], y=None if lat["y"] is None else lat["y"][:k],
            inputs=recon["inputs"], recons=recon["recons"], kl_per_dim=np.asarray(ev["kl_per_dim"], np.float32)))
        self._save("running", f"logged epoch {epoch}" + (f"; non-finite: {', '.join(nonfinite)}" if nonfinite else ""),
                   ev)
        jobs.write_status(self.dir, epoch=epoch, epoch_running=epoch, test=record.test,
                          message=f"training in its own loop: epoch {epoch} logged")
        return record

    def _save(self, status: str, message: str, ev: dict[str, Any] | None) -> None:
        final = Final.from_dict(ev) if ev else (Metrics.from_dict({}).final)
        metrics = Metrics(status=status, message=message, seconds=time.time() - self.t0,
                          n_train=0, history=History.from_dict({"epochs": self.epochs, "steps": []}), final=final,
                          data=DataInfo("your test images", "vae.track", None))
        save_run(self.dir, _WeightsOnly(self), self.config, metrics)

    def close(self, status: str = "completed", message: str = "") -> None:
        """The run as it ended: ``completed`` (the default), ``cancelled`` or ``failed``."""
        ev = evaluate(self.live, self.test, seed=0) if self.epochs or status == "completed" else None
        self._save(status, message or f"logged {len(self.epochs)} epochs from its own loop", ev)
        state = {"completed": "done", "cancelled": "stopped"}.get(status, "failed")
        jobs.write_status(self.dir, state=state, ended=time.time(), message=message or f"{len(self.epochs)} epochs "
                          "logged", final={k: ev[k] for k in ("neg_elbo", "kl", "active_units")} if ev else {})

    def __enter__(self) -> "Tracker":
        return self

    def __exit__(self, kind, exc, tb) -> bool:
        if kind is None:
            self.close()
        elif issubclass(kind, KeyboardInterrupt):
            self.close("cancelled", "stopped by Ctrl-C in its own loop")
        else:
            self.close("failed", f"its own loop raised {_first_line(exc)}")
        return False


class _WeightsOnly:
    """What ``save_run`` writes as the weights of a tracked run: the programs' weights, by their names."""

    def __init__(self, tracker: Tracker):
        self.tracker = tracker

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = {**self.tracker.enc.state_dict(), **self.tracker.dec.state_dict()}
        return {k: state[k] for k in self.tracker.weight_names}


def track(path: str | Path, model: nn.Module, test_images: Any, labels: Any = None, *, output: str = "logits",
          encode: Callable | None = None, decode: Callable | None = None, sigma: float = 0.1,
          eval_images: int = 2000) -> Tracker:
    """Log ``model`` from its own training loop into the run folder ``path`` (see the module docstring)."""
    return Tracker(path, model, test_images, labels, output=output, encode=encode, decode=decode, sigma=sigma,
                   eval_images=eval_images)


def read_test_images(run_dir: str | Path, channels: int, size: int) -> ImageData:
    """A tracked run's stored test images (``TEST_IMAGES``): uint8 ``x`` [N, C, S, S] and, when valid, int64 labels
    ``y`` [N], checked from the file's header against the model's shape (``channels`` x ``size`` x ``size``) and
    ``MAX_TEST_IMAGES`` before anything is read. Raises ``ValueError`` with one line (``FileNotFoundError`` when the
    folder holds none)."""
    from safetensors.torch import load_file

    from .runs import RunError, safetensors_header
    path = Path(run_dir) / TEST_IMAGES
    if not path.is_file():
        raise FileNotFoundError(f"{path.parent.name} holds no {TEST_IMAGES}")
    want = f"{TEST_IMAGES} must hold x: uint8 [N, {channels}, {size}, {size}] with N = " \
           f"1..{MAX_TEST_IMAGES:,}, and optionally y: int64 [N]"
    try:
        header = safetensors_header(path)
    except RunError:
        raise ValueError(f"{TEST_IMAGES} is not a valid safetensors file") from None
    x = header.get("x")
    shape = (channels, size, size)
    if set(header) - {"x", "y"} or x is None or x[0] != "U8" or x[1][1:] != shape or not 0 < x[1][0] <= MAX_TEST_IMAGES:
        raise ValueError(want)
    n = x[1][0]
    if "y" in header and header["y"] != ("I64", (n,)):
        raise ValueError(want)
    t = load_file(path)
    y = t.get("y")
    if y is not None and int(y.min()) < 0:
        y = None
    return ImageData(x=t["x"].contiguous(), y=y)

