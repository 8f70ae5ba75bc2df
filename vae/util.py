"""Small shared helpers: device choice, threads, seeding, atomic file writes."""
from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

import torch


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` chooses CUDA, then Apple's MPS, then the CPU."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def set_threads(threads: int = 0) -> int:
    """Set torch's intra-op CPU threads (0 = one per core) and return the number in use."""
    n = threads if threads > 0 else (os.cpu_count() or 1)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return torch.get_num_threads()


def _create_temp(path: Path) -> tuple[int, str]:
    """A new, empty temporary file beside ``path``, created with the process's umask like any other file
    (``tempfile.mkstemp`` makes it 0600, and a run folder shared by app replicas running as different users, or
    read by a cluster's jobs, must be readable as the umask allows)."""
    while True:
        tmp = str(path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), tmp
        except FileExistsError:
            continue


def os_reason(e: OSError) -> str:
    """Why an OS call failed, without the file it named ("No space left on device"): what a browser may be told."""
    return e.strerror or type(e).__name__


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then ``os.replace``: no half-written file."""
    path = Path(path)
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1, allow_nan=False) + "\n").encode())
