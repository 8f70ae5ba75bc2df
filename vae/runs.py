"""Run folders: ``model.safetensors`` + ``config.json`` + ``metrics.json``.

Saving writes each file to a temporary name in the folder and renames it (weights first,
metrics last, so a folder with ``metrics.json`` is complete). Loading never unpickles: the
weights are safetensors, the rest is JSON; keys, shapes, dtypes and finiteness are checked
against the model the config describes, and anything else is refused with ``RunError``.
"""
from __future__ import annotations

import json
import math
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .config import ConfigError, RunConfig
from .models import VAE, build_model
from .util import atomic_write_bytes, atomic_write_json

WEIGHTS, CONFIG, METRICS = "model.safetensors", "config.json", "metrics.json"
MAX_WEIGHTS_BYTES = 512 << 20
MAX_JSON_BYTES = 64 << 20


def _build_semisup(config: RunConfig):
    from .semisup import build_semisup  # imported on demand: semisup imports this package's train loop
    return build_semisup(config)


#: How to rebuild a run's model from its config, keyed by ``config.kind``. Every builder returns a
#: ``VAE`` (or a subclass of it, such as ``vae.semisup.SemiSupervisedVAE``).
BUILDERS = {"vae": lambda config: build_model(config.model), "semisup": _build_semisup}


class RunError(ValueError):
    """A run folder is missing, incomplete or does not match its config; one-line message."""


@dataclass
class Run:
    path: Path | None
    config: RunConfig
    model: VAE
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name if self.path else "(unsaved)"


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


def save_run(path: str | Path, model: VAE, config: RunConfig, metrics: dict[str, Any] | None = None) -> Path:
    """Write a run folder atomically file by file. An existing non-run, non-empty folder is refused."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunError(f"{path} exists and is not a folder")
    if path.is_dir() and any(path.iterdir()) and not is_run_dir(path):
        raise RunError(f"{path} is a non-empty folder that is not a run; choose a new --out folder")
    path.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(path / WEIGHTS, st_save(tensors, metadata={"format": "vae-lab", "version": "1"}))
    atomic_write_bytes(path / CONFIG, (config.to_json() + "\n").encode())
    meta = {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "torch": torch.__version__,
            "python": platform.python_version()}
    atomic_write_json(path / METRICS, _clean({**(metrics or {}), "meta": meta}))
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
            raise RunError(f"{source}: tensor {k} has shape {list(v.shape)}, the config needs {list(expected[k].shape)}")
        if not torch.isfinite(v).all():
            raise RunError(f"{source}: tensor {k} holds NaN or Inf values")
    model.load_state_dict(tensors, strict=True)


def load_weights_bytes(model: VAE, blob: bytes, source: str) -> None:
    try:
        tensors = st_load(blob)
    except (SafetensorError, ValueError, RuntimeError, OverflowError, MemoryError) as e:
        raise RunError(f"{source}: not a valid safetensors file ({str(e).splitlines()[0][:120]})") from None
    load_state(model, tensors, source)


def config_from_bytes(blob: bytes, source: str) -> RunConfig:
    try:
        return RunConfig.from_json(blob.decode("utf-8"))
    except UnicodeDecodeError:
        raise RunError(f"{source}: config.json is not UTF-8 text") from None
    except ConfigError as e:
        raise RunError(f"{source}: {e}") from None


def load_run(path: str | Path, *, device: str | torch.device = "cpu") -> Run:
    """Rebuild the model from ``config.json`` and load checked weights; model in eval mode."""
    path = Path(path)
    if not path.is_dir():
        raise RunError(f"{path} is not a run folder (expected a folder with {WEIGHTS} and {CONFIG})")
    config = config_from_bytes(_read_capped(path / CONFIG, MAX_JSON_BYTES, "config"), str(path / CONFIG))
    try:
        model = BUILDERS[config.kind](config)
    except ValueError as e:
        raise RunError(f"{path / CONFIG}: {e}") from None
    load_weights_bytes(model, _read_capped(path / WEIGHTS, MAX_WEIGHTS_BYTES, "weights"), str(path / WEIGHTS))
    metrics: dict[str, Any] = {}
    if (path / METRICS).is_file():
        try:
            metrics = json.loads(_read_capped(path / METRICS, MAX_JSON_BYTES, "metrics").decode("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise RunError(f"{path / METRICS}: not valid JSON") from None
        if not isinstance(metrics, dict):
            raise RunError(f"{path / METRICS}: must be a JSON object")
    model.to(device).eval()
    return Run(path=path, config=config, model=model, metrics=metrics)


def list_runs(root: str | Path) -> list[Path]:
    """Run folders directly under ``root``, newest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    runs = [p for p in root.iterdir() if p.is_dir() and is_run_dir(p)]
    return sorted(runs, key=lambda p: (p / CONFIG).stat().st_mtime, reverse=True)
