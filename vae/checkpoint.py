"""Per-epoch checkpoints inside a run folder: what ``python -m vae train --resume RUN_DIR`` continues from.

``RUN_DIR/checkpoint/`` holds ``model.safetensors`` (weights), ``optimizer.safetensors`` (the current stage's Adam
moments and step counts, flattened as ``state.<param index>.<name>``, plus the generators' states) and
``state.json`` (epoch, stage, steps, clocks, history, the optimizer's hyper-parameters). Each file is written to
a temporary name and renamed, tensors first and ``state.json`` last; both tensor files carry the epoch
in their metadata, so a reader never pairs weights of one epoch with a state of another. Loading checks
every key and shape against the model the run builds (``vae.runs.load_state``) and the optimizer its stage builds
(``vae.loop.check_optimizer_state``); nothing is unpickled.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .runs import RunError
from .util import atomic_write_bytes, atomic_write_json


@dataclass
class Checkpoint:
    """Everything needed to continue a run after its last completed epoch (``Trainer.checkpoint``)."""

    epoch: int                          # epochs completed, over the whole run
    global_step: int
    seen: int                           # training items seen
    train_time: float                   # seconds inside the batch loops
    elapsed: float                      # seconds of training wall time
    history: dict[str, list]
    optimizer: dict[str, Any]           # the current stage's torch optimizer state_dict
    generator: torch.Tensor             # the shuffling / binarising generator's state (uint8)
    rng: torch.Tensor                   # torch's global generator (the reparameterisation noise), uint8
    stage: int = 0                      # the stage in progress (or just finished)
    stage_epoch: int = 0                # its epochs completed
    stage_step: int = 0                 # its steps taken (its schedule's clock)
    stage_start: float = 0.0            # ``elapsed`` when it began (its time budget's zero)
    objective_state: dict[str, torch.Tensor] = field(default_factory=dict)   # the objective's own (its generator,
                                                                             # a discriminator's weights)
    aux_optimizers: dict[str, dict[str, Any]] = field(default_factory=dict)  # its auxiliary optimizers' states


def copy_history(h: dict[str, list]) -> dict[str, list]:
    return {k: [dict(r) for r in v] for k, v in h.items()}


def check_optimizer_state(params: list[torch.nn.Parameter], state: dict[str, Any], source: str) -> None:
    """Refuse a saved optimizer state that is not for ``params`` (one line)."""
    groups = state.get("param_groups")
    expected = list(range(len(params)))
    if not isinstance(groups, list) or [g.get("params") for g in groups] != [expected]:
        raise ValueError(f"{source}: the optimizer's parameter groups do not match the model the config builds")
    for idx, st in state.get("state", {}).items():
        if not 0 <= idx < len(params):
            raise ValueError(f"{source}: optimizer state for parameter {idx}, the model has {len(params)}")
        for name in ("exp_avg", "exp_avg_sq"):
            if name not in st or tuple(st[name].shape) != tuple(params[idx].shape):
                raise ValueError(f"{source}: optimizer state {idx}.{name} does not match parameter shape "
                                 f"{list(params[idx].shape)}")


FOLDER = "checkpoint"
WEIGHTS, OPTIMIZER, STATE = "model.safetensors", "optimizer.safetensors", "state.json"


def _folder(run_dir: str | Path) -> Path:
    """The complete checkpoint folder: ``checkpoint/``, or, after a kill between the two renames of a save,
    ``checkpoint.new/`` (complete: it is renamed into place only once all three files are in it) or
    ``checkpoint.old/``."""
    base = Path(run_dir)
    for name in (FOLDER, FOLDER + ".new", FOLDER + ".old"):
        if (base / name / STATE).is_file():
            return base / name
    return base / FOLDER


def has_checkpoint(run_dir: str | Path) -> bool:
    return (_folder(run_dir) / STATE).is_file()


def checkpoint_epoch(run_dir: str | Path) -> int:
    """The epoch the run's checkpoint holds (what resume continues from), 0 without a readable one. It can be
    one epoch past the status file's, which is written last (vae.runlog.RunLog.on_epoch_end)."""
    try:
        return int(json.loads((_folder(run_dir) / STATE).read_text(encoding="utf-8")).get("epoch") or 0)
    except (OSError, ValueError, TypeError, AttributeError):
        return 0


def save_checkpoint(run_dir: str | Path, model: torch.nn.Module, ck: Checkpoint) -> None:
    """Write ``run_dir/checkpoint/`` for the epoch ``ck.epoch``: the three files go into ``checkpoint.new/``,
    which then replaces ``checkpoint/`` by renames, so a kill at any instant leaves one complete checkpoint
    (the loader also looks at ``checkpoint.new/`` and ``checkpoint.old/``)."""
    run_dir = Path(run_dir)
    folder = run_dir / (FOLDER + ".new")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    meta = {"format": "vae-lab-checkpoint", "epoch": str(ck.epoch)}
    weights = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(folder / WEIGHTS, st_save(weights, metadata=meta))
    tensors: dict[str, torch.Tensor] = {"generator": ck.generator.contiguous(), "rng": ck.rng.contiguous()}
    tensors.update({f"objective.{k}": v.detach().to("cpu").contiguous() for k, v in ck.objective_state.items()})
    for name, opt in ck.aux_optimizers.items():
        for idx, st in opt["state"].items():
            for key, t in st.items():
                tensors[f"aux.{name}.state.{idx}.{key}"] = torch.as_tensor(t).detach().to("cpu").contiguous()
    for idx, st in ck.optimizer["state"].items():
        for name, t in st.items():
            tensors[f"state.{idx}.{name}"] = torch.as_tensor(t).detach().to("cpu").contiguous()
    atomic_write_bytes(folder / OPTIMIZER, st_save(tensors, metadata=meta))
    atomic_write_json(folder / STATE, {
        "epoch": ck.epoch, "global_step": ck.global_step, "seen": ck.seen, "train_time": ck.train_time,
        "elapsed": ck.elapsed, "history": ck.history, "param_groups": ck.optimizer["param_groups"],
        "stage": ck.stage, "stage_epoch": ck.stage_epoch, "stage_step": ck.stage_step, "stage_start": ck.stage_start,
        "aux_param_groups": {name: opt["param_groups"] for name, opt in ck.aux_optimizers.items()}})
    final, old = run_dir / FOLDER, run_dir / (FOLDER + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    folder.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(run_dir: str | Path) -> tuple[dict[str, torch.Tensor], Checkpoint]:
    """The weights and ``Checkpoint`` of ``run_dir``'s last completed epoch. The loop checks them against the model
    and the optimizer it builds (a checkpoint written before stages existed is its run's only stage)."""
    folder = _folder(run_dir)
    try:
        state = json.loads((folder / STATE).read_text(encoding="utf-8"))
        blobs = {name: (folder / name).read_bytes() for name in (WEIGHTS, OPTIMIZER)}
    except (OSError, ValueError) as e:
        raise RunError(f"{folder}: no readable checkpoint ({e})") from None
    tensors: dict[str, dict[str, torch.Tensor]] = {}
    for name, blob in blobs.items():
        try:
            tensors[name] = st_load(blob)
        except (SafetensorError, ValueError, RuntimeError) as e:
            raise RunError(f"{folder / name}: not a valid safetensors file ({str(e).splitlines()[0][:120]})") from None
        epoch = _metadata(blob).get("epoch")
        if epoch != str(state.get("epoch")):
            raise RunError(f"{folder}: {name} is from epoch {epoch}, state.json from epoch {state.get('epoch')}; "
                           "the checkpoint was cut mid-write")
    opt_t = tensors[OPTIMIZER]
    try:
        ck = Checkpoint(epoch=int(state["epoch"]), global_step=int(state["global_step"]), seen=int(state["seen"]),
                        train_time=float(state["train_time"]), elapsed=float(state["elapsed"]),
                        history=state["history"], optimizer=_optimizer_state(opt_t, state),
                        generator=opt_t["generator"].to(torch.uint8), rng=opt_t["rng"].to(torch.uint8),
                        stage=int(state.get("stage", 0)), stage_epoch=int(state.get("stage_epoch", state["epoch"])),
                        stage_step=int(state.get("stage_step", state["global_step"])),
                        stage_start=float(state.get("stage_start", 0.0)),
                        objective_state={k[10:]: v for k, v in opt_t.items() if k.startswith("objective.")},
                        aux_optimizers={name: _optimizer_state(opt_t, {"param_groups": groups}, f"aux.{name}.")
                                        for name, groups in (state.get("aux_param_groups") or {}).items()})
    except (KeyError, TypeError, ValueError) as e:
        raise RunError(f"{folder / STATE}: not a checkpoint's state ({type(e).__name__}: {e})") from None
    return tensors[WEIGHTS], ck


def remove_checkpoint(run_dir: str | Path) -> None:
    """Drop the checkpoint of a completed run (the optimizer's moments are twice the model's size)."""
    for name in (FOLDER + ".new", FOLDER + ".old", FOLDER):
        folder = Path(run_dir) / name
        (folder / STATE).unlink(missing_ok=True)            # state first: a half-removed folder is no checkpoint
        shutil.rmtree(folder, ignore_errors=True)


def _metadata(blob: bytes) -> dict[str, str]:
    n = int.from_bytes(blob[:8], "little")
    try:
        header = json.loads(blob[8:8 + n])
    except ValueError:
        return {}
    return header.get("__metadata__") or {}


def _optimizer_state(tensors: dict[str, torch.Tensor], state: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Adam's state_dict from the flattened tensors (``<prefix>state.<param index>.<name>``) and the saved groups."""
    out: dict[int, dict[str, torch.Tensor]] = {}
    for key, t in tensors.items():
        if key.startswith(prefix + "state."):
            _, idx, name = key[len(prefix):].split(".", 2)
            out.setdefault(int(idx), {})[name] = t
    return {"state": out, "param_groups": state.get("param_groups")}
