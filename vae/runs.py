"""Run folders: ``model.safetensors`` + ``config.json`` + ``metrics.json``.

Saving writes each file to a temporary name in the folder and renames it (weights first,
metrics last, so a folder with ``metrics.json`` is complete). Loading never unpickles: the
weights are safetensors, the rest is JSON; keys, shapes, dtypes and finiteness are checked
against the model the config describes, and anything else is refused with ``RunError``.
"""
from __future__ import annotations

import math
import platform
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from . import latent
from .budget import DEFAULT as DEFAULT_BUDGET
from .budget import Budget, expected_tensors
from .budget import check as check_budget
from .config import ConfigError, RunConfig, SemisupConfig
from .data import ImageData
from .kinds import builder
from .models import VAE
from .record import Metrics
from .safejson import JSONError, load_json
from .util import atomic_write_bytes, atomic_write_json

WEIGHTS, CONFIG, METRICS = "model.safetensors", "config.json", "metrics.json"
MAX_WEIGHTS_BYTES = 512 << 20
MAX_JSON_BYTES = 64 << 20            # metrics.json: a long run's history
MAX_CONFIG_BYTES = 64 << 10          # config.json is about 2 KB
MAX_HEADER_BYTES = 1 << 20           # a safetensors header: names, shapes and offsets of the tensors


class RunError(ValueError):
    """A run folder is missing, incomplete or does not match its config; one-line message."""


@dataclass
class Run:
    """A loaded run: its config, its model (eval mode) and its metrics, with the task-level methods a
    notebook wants. Images are uint8 ``[N, C, H, W]`` tensors or arrays in, float32 numpy in [0, 1] out::

        run = vae.load_run("assets/runs/mnist-2d")
        z = run.encode(images)["mu"]            # [N, D]
        pics = run.decode(z)                    # [N, C, H, W]
    """

    path: Path | None
    config: RunConfig
    model: VAE
    metrics: Metrics = field(default_factory=Metrics)

    @property
    def name(self) -> str:
        return self.path.name if self.path else "(unsaved)"

    def encode(self, images, labels=None) -> dict[str, np.ndarray]:
        """Posterior means and log-variances: ``{"mu": [N, D], "logvar": [N, D]}``."""
        return latent.encode(self.model, _image_data(images, labels))

    def decode(self, z, labels=None) -> np.ndarray:
        """Pixels for latents ``z`` [N, D] (labels for a conditional run): [N, C, H, W]."""
        return latent.decode(self.model, z, labels)

    def reconstruct(self, images, labels=None, *, samples: int = 0, seed: int = 0) -> np.ndarray:
        """Decoded posterior means [N, C, H, W], or ``samples`` posterior draws each [N, S, C, H, W]."""
        return latent.reconstruct(self.model, _image_data(images, labels), samples=samples, seed=seed)

    def sample(self, n: int, *, seed: int = 0, labels=None, temperature: float = 1.0) -> np.ndarray:
        """``n`` images decoded from z ~ N(0, T^2 I): [n, C, H, W]."""
        return latent.sample_prior(self.model, n, seed=seed, y=labels, temperature=temperature)[1]

    def interpolate(self, z_a, z_b, steps: int = 10, *, method: str = "linear", labels=None) -> np.ndarray:
        """Images along the latent path from ``z_a`` to ``z_b`` (both included): [steps, C, H, W]."""
        return latent.interpolate(self.model, z_a, z_b, steps, method=method, y=labels)[1]


def _image_data(images, labels) -> ImageData:
    x = torch.as_tensor(np.asarray(images))
    if x.ndim == 3:                                   # [N, H, W] grey
        x = x[:, None]
    if x.dtype != torch.uint8:
        raise ValueError(f"images must be uint8 [N, C, H, W] (0-255), got {x.dtype}")
    y = None if labels is None else torch.as_tensor(np.asarray(labels), dtype=torch.int64).reshape(-1)
    return ImageData(x=x, y=y)


def _clean(obj: Any) -> Any:
    """JSON-ready copy: non-finite floats become None, numpy/torch scalars become Python numbers."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):
        return _clean(obj.tolist())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    return obj


def is_run_dir(path: str | Path) -> bool:
    p = Path(path)
    return (p / WEIGHTS).is_file() and (p / CONFIG).is_file()


def save_run(path: str | Path, model: VAE, config: RunConfig, metrics: Metrics | dict[str, Any] | None = None
             ) -> Path:
    """Write a run folder atomically file by file (``metrics``: a ``vae.record.Metrics``, or a dict in its layout).
    An existing non-run, non-empty folder is refused."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunError(f"{path} exists and is not a folder")
    if path.is_dir() and any(path.iterdir()) and not (path / CONFIG).is_file():
        raise RunError(f"{path} is a non-empty folder that is not a run; choose a new --out folder")
    path.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(path / WEIGHTS, st_save(tensors, metadata={"format": "vae-lab", "version": "1"}))
    atomic_write_bytes(path / CONFIG, (config.to_json() + "\n").encode())
    meta = {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "torch": torch.__version__,
            "python": platform.python_version()}
    record = metrics if isinstance(metrics, Metrics) else Metrics.from_dict(metrics or {})
    atomic_write_json(path / METRICS, _clean({**record.to_dict(), "meta": meta}))
    return path


def _read_capped(p: Path, cap: int, what: str) -> bytes:
    if not p.is_file():
        raise RunError(f"{p.parent}: missing {p.name}; a run folder holds {WEIGHTS}, {CONFIG} and {METRICS}")
    size = p.stat().st_size
    if size > cap:
        raise RunError(f"{p}: {what} is {size} bytes, over the {cap}-byte limit")
    return p.read_bytes()


def load_state(model: VAE, tensors: dict[str, torch.Tensor], source: str) -> None:
    """Check ``tensors`` against ``model``'s parameters exactly, then load them."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        raise RunError(f"{source}: weights do not match the config (missing {missing[:3]}, unexpected {extra[:3]})")
    for k, v in tensors.items():
        if v.dtype != torch.float32:
            raise RunError(f"{source}: tensor {k} has dtype {v.dtype}; accepted: float32")
        if tuple(v.shape) != tuple(expected[k].shape):
            raise RunError(f"{source}: tensor {k} has shape {list(v.shape)}, the config needs "
                           f"{list(expected[k].shape)}")
        if not torch.isfinite(v).all():
            raise RunError(f"{source}: tensor {k} holds NaN or Inf values")
    model.load_state_dict(tensors, strict=True)


def load_weights_bytes(model: VAE, blob: bytes, source: str) -> None:
    try:
        tensors = st_load(blob)
    except (SafetensorError, ValueError, RuntimeError, OverflowError, MemoryError) as e:
        raise RunError(f"{source}: not a valid safetensors file ({str(e).splitlines()[0][:120]})") from None
    load_state(model, tensors, source)


def config_from_bytes(blob: bytes, source: str, metrics: Any = None) -> RunConfig:
    """A ``RunConfig`` from a ``config.json``'s bytes, read within limits (size, nesting, number length). A semisup
    config written before its settings had a section of their own takes them from ``metrics`` (that run's
    ``metrics.json`` as a dict, which recorded them)."""
    try:
        d = load_json(blob, source, max_bytes=MAX_CONFIG_BYTES)
        if isinstance(d, dict) and d.get("kind") == "semisup" and "semisup" not in d:
            d = {**d, "semisup": _semisup_v1(metrics)}
        return RunConfig.from_dict(d)
    except JSONError as e:
        raise RunError(str(e)) from None
    except ConfigError as e:
        raise RunError(f"{source}: {e}") from None


def _semisup_v1(metrics: Any) -> dict[str, Any]:
    """The semisup settings a version-1 run recorded in ``metrics.json`` (its ``semisup`` figures)."""
    fig = metrics.get("semisup") if isinstance(metrics, dict) else None
    if not isinstance(fig, dict):
        return {}
    keep = {f for f in SemisupConfig.__dataclass_fields__} - {"labels", "m1_from", "baseline"}
    out = {k: v for k, v in fig.items() if k in keep and v is not None}
    if isinstance(fig.get("labels_requested"), int):
        out["labels"] = fig["labels_requested"]
    return out


def load_run(path: str | Path, *, device: str | torch.device = "cpu", budget: Budget = DEFAULT_BUDGET) -> Run:
    """Rebuild the model from ``config.json`` and load checked weights; model in eval mode. ``metrics.json`` of any
    version is read as a ``vae.record.Metrics``. Nothing is built until the config is within ``budget`` and the
    weights file has the size its model needs."""
    path = Path(path)
    if not path.is_dir():
        raise RunError(f"{path} is not a run folder (expected a folder with {WEIGHTS} and {CONFIG})")
    raw: Any = {}
    if (path / METRICS).is_file():
        try:
            raw = load_json(_read_capped(path / METRICS, MAX_JSON_BYTES, "metrics"), str(path / METRICS))
        except JSONError as e:
            raise RunError(str(e)) from None
        if not isinstance(raw, dict):
            raise RunError(f"{path / METRICS}: must be a JSON object")
    config = config_from_bytes(_read_capped(path / CONFIG, MAX_CONFIG_BYTES, "config"), str(path / CONFIG), raw)
    check_weights_size(path / WEIGHTS, config, budget)
    try:
        model = builder(config.kind)(config, path)
    except ValueError as e:
        raise RunError(f"{path / CONFIG}: {e}") from None
    load_weights_bytes(model, _read_capped(path / WEIGHTS, MAX_WEIGHTS_BYTES, "weights"), str(path / WEIGHTS))
    if hasattr(model, "open"):                 # a tracked run's programs, checked now rather than at first use
        try:
            model.open()
        except ValueError as e:
            raise RunError(f"{path}: {e}") from None
    model.to(device).eval()
    return Run(path=path, config=config, model=model, metrics=Metrics.from_dict(raw))


def safetensors_header(path: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """The tensors a safetensors file declares, ``{name: (dtype, shape)}``, read from its header alone (a JSON
    object of at most ``MAX_HEADER_BYTES``); ``RunError`` with one line for anything else."""
    bad = f"{path}: not a valid safetensors file"
    try:
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if not 0 < n <= MAX_HEADER_BYTES:
                raise RunError(f"{bad} (a header of {n:,} bytes)")
            header = load_json(f.read(n), path.name, max_bytes=MAX_HEADER_BYTES)
    except OSError:
        raise RunError(f"{path.parent}: missing {WEIGHTS}; a run folder holds {WEIGHTS}, {CONFIG} and {METRICS}") \
            from None
    except JSONError as e:
        raise RunError(f"{bad} ({e})") from None
    if not isinstance(header, dict):
        raise RunError(f"{bad} (its header is not a JSON object)")
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        shape, dtype = (v.get("shape"), v.get("dtype")) if isinstance(v, dict) else (None, None)
        if not (isinstance(shape, list) and all(isinstance(d, int) and 0 <= d < 2**40 for d in shape)):
            raise RunError(f"{bad} (tensor {k!r} has no valid shape)")
        out[k] = (str(dtype), tuple(shape))
    return out


def check_weights_size(path: Path, config: RunConfig, budget: Budget = DEFAULT_BUDGET) -> int:
    """Refuse, before building the model, a config over ``budget`` or a weights file that does not declare the tensors
    the model the config describes needs (names, float32, shapes: compared with the model built on the ``meta``
    device, which allocates nothing). Returns the parameters."""
    try:
        if config.kind == "tracked":
            return _tracked_params(safetensors_header(path), budget)
        n = check_budget(config, budget)
    except ConfigError as e:
        raise RunError(f"{path.parent / CONFIG}: {e}") from None
    declared = safetensors_header(path)
    expected = expected_tensors(config)
    missing, extra = sorted(set(expected) - set(declared)), sorted(set(declared) - set(expected))
    if missing or extra:
        raise RunError(f"{path}: weights do not match the config (missing {missing[:3]}, unexpected {extra[:3]})")
    for k, (dtype, shape) in declared.items():
        if dtype != "F32":
            raise RunError(f"{path}: tensor {k} has dtype {dtype}; accepted: float32")
        if shape != expected[k]:
            raise RunError(f"{path}: tensor {k} has shape {list(shape)}, the config needs {list(expected[k])}")
    return n


def _tracked_params(declared: dict[str, tuple[str, tuple[int, ...]]], budget: Budget) -> int:
    """A tracked run's parameters, from its weights file's header (its model is a stored program, not a config)."""
    n = sum(math.prod(shape) for _, shape in declared.values())
    if n > budget.max_params:
        raise ConfigError(f"the model has {n:,} parameters, over the budget of {budget.max_params:,}"
                          f"{budget.where('_PARAMS')}")
    return n


def run_folder_name(config: RunConfig, data_name: str) -> str:
    """``<data>-<c?><arch>-<D>d-<YYYYmmdd-HHMMSS>-<4 hex>``: readable, sorted by time, and unique even
    when two runs of the same recipe start in the same second (on one server or on two)."""
    stem = Path(data_name).stem if ("/" in data_name or "\\" in data_name) else data_name
    stem = "".join(c if c.isalnum() or c in "-_" else "-" for c in stem)[:40] or "data"
    m = config.model
    kind = ("c" if m.conditional else "") + m.arch
    return f"{stem}-{kind}-{m.latent_dim}d-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def new_run_dir(root: str | Path, config: RunConfig, data_name: str) -> Path:
    """Create a fresh, empty run folder under ``root`` and return it. The folder is made with an exclusive
    ``mkdir``, so two processes sharing ``root`` (two app replicas, say) never get the same one."""
    return new_folder(root, lambda: run_folder_name(config, data_name))


def new_folder(root: str | Path, name) -> Path:
    """``root / name()``, created exclusively; ``name()`` is asked again (it must vary) while a folder exists."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    while True:
        path = root / name()
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue


def list_runs(root: str | Path) -> list[Path]:
    """Run folders directly under ``root``, newest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    runs = [p for p in root.iterdir() if p.is_dir() and is_run_dir(p)]
    return sorted(runs, key=lambda p: (p / CONFIG).stat().st_mtime, reverse=True)
