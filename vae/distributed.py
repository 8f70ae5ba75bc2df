"""Training on several processes with the engine PyTorch users already run: ``torchrun`` + DDP.

``torchrun --standalone --nproc-per-node N -m vae train ...`` (or ``--nnodes/--rdzv-backend c10d/
--rdzv-endpoint`` across machines) sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and ``MASTER_*``;
``from_env()`` joins that process group (NCCL on CUDA, gloo otherwise) and returns a ``Dist``. Without
torchrun it returns the single-process ``Dist()`` whose collectives do nothing, so the training loop has
one code path.

What each rank does (``vae.train.Trainer``): the same epoch permutation from the run's seed, its own slice
of every global batch (``--batch-size`` is the global batch), its own reparameterisation noise; DDP
averages the gradients. Once per step one small all-reduce carries rank 0's clock and stop request and
every rank's non-finite flag and loss sums, so the schedule, the time budget, a Stop and a NaN on any
rank are decided once for all. Evaluation, events, the progress bar and the run folder are rank 0's;
the other ranks wait for it at the end of each epoch.
"""
from __future__ import annotations

import datetime
import os
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

TIMEOUT_S = 300.0            # a collective that waits longer than this fails instead of hanging forever


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def all_reduce(self, t: torch.Tensor) -> torch.Tensor:
        """Sum ``t`` over ranks, in place (a no-op on one process)."""
        if self.active:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (the others pass anything)."""
        if not self.active:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def close(self) -> None:
        if self.active and dist.is_initialized():
            dist.destroy_process_group()

    def describe(self) -> dict[str, Any]:
        return {"world_size": self.world_size, "backend": self.backend or "none"}


class CommTimer:
    """Times the gradient all-reduce (a DDP communication hook) and the per-step consensus, so the cost of
    talking to the other ranks is visible: ``per_step_ms()`` (waiting for a slower rank included)."""

    def __init__(self) -> None:
        self.grad_s = 0.0
        self.consensus_s = 0.0
        self.steps = 0

    def hook(self, state, bucket):
        """DDP's default all-reduce (mean over ranks), timed from launch to completion."""
        t0 = time.perf_counter()
        world = dist.get_world_size()
        fut = dist.all_reduce(bucket.buffer(), async_op=True).get_future()

        def done(f):
            self.grad_s += time.perf_counter() - t0
            return f.value()[0].div_(world)
        return fut.then(done)

    def per_step_ms(self) -> dict[str, float]:
        n = max(1, self.steps)
        return {"grad_allreduce_ms": 1000 * self.grad_s / n, "consensus_ms": 1000 * self.consensus_s / n,
                "steps": self.steps}


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def from_env(device: torch.device) -> Dist:
    """Join torchrun's process group if this process was started by it, else the single-process ``Dist``."""
    if not launched_by_torchrun():
        return Dist()
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" and dist.is_nccl_available() else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=TIMEOUT_S))
    return Dist(rank=dist.get_rank(), world_size=dist.get_world_size(),
                local_rank=int(os.environ.get("LOCAL_RANK", "0")), backend=dist.get_backend())


def rank_device(device: torch.device, d: Dist) -> torch.device:
    """On CUDA each rank takes the GPU of its local rank; other devices are shared."""
    if device.type == "cuda" and d.active:
        return torch.device("cuda", d.local_rank)
    return device
