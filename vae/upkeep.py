"""Keeping a runs folder within bounds: what each run folder holds and weighs, thinning its snapshots, deleting runs.

Used by ``python -m vae runs ls|prune|rm`` (a teacher cleaning up a class server from the shell) and by the app's
quotas. A run folder is recognised by its ``config.json``; nothing outside the given root is ever touched, and a
run whose training process is alive is never deleted.
"""
from __future__ import annotations

import os
import shutil
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import jobs
from .record import snapshot_epochs, snapshot_path
from .runs import CONFIG
from .safejson import load_json

OWNER_MARK = ".owner-"     # an empty file named ".owner-<person>" in a folder: that person owns it
UPLOADS = ".uploads"       # the app's data uploads, under the runs folder: UPLOADS/<digest>/<file>, owners marked


@dataclass(frozen=True)
class RunInfo:
    path: Path
    state: str | None            # the job's state as a watcher sees it (None: not a job, e.g. an uploaded run)
    owner: str
    bytes: int
    modified: float              # seconds since the epoch
    snapshots: int
    upload: bool = False         # a data upload (UPLOADS/<digest>), not a run

    @property
    def name(self) -> str:
        """What ``remove_run`` and ``python -m vae runs rm`` take: the folder's name, ``.uploads/<digest>`` for data."""
        return f"{UPLOADS}/{self.path.name}" if self.upload else self.path.name

    def as_dict(self) -> dict[str, Any]:
        return {"run": self.name, "state": self.state, "owner": self.owner, "mb": round(self.bytes / 2**20, 2),
                "modified": time.strftime("%Y-%m-%d %H:%M", time.localtime(self.modified)),
                "snapshots": self.snapshots}


def folder_bytes(path: str | Path) -> int:
    """Bytes of the regular files under ``path``, links not followed, while a job may be writing in it: a file or
    folder that goes away during the walk (a checkpoint being replaced) is skipped, never an error."""
    total = 0
    for parent, _, files in os.walk(path):          # os.walk skips folders it cannot list, or that went away
        for name in files:
            try:
                st = os.lstat(os.path.join(parent, name))
            except OSError:
                continue
            total += st.st_size if stat.S_ISREG(st.st_mode) else 0
    return total


def owners_marked(folder: str | Path) -> list[str]:
    """The people marked as owners of ``folder`` (``OWNER_MARK`` + their id: the app marks a run or a data set
    uploaded through it), sorted."""
    try:
        names = [p.name for p in Path(folder).iterdir()]
    except OSError:
        return []
    return sorted(n[len(OWNER_MARK):] for n in names if n.startswith(OWNER_MARK) and len(n) > len(OWNER_MARK))


def owner_of(path: str | Path, status: dict | None = None) -> str:
    """A run's owner: its ``job.json``'s (a run trained as a job), else its upload mark; "" when nobody's (a damaged
    ``job.json`` included)."""
    if status is None:
        status = jobs.read_status(path)
    if status is not None:
        return "" if status.get("state") == "damaged" else str(status.get("owner") or "")
    found = owners_marked(path)
    return found[0] if found else ""


def is_run_folder(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink() and (path / CONFIG).is_file()


def info(path: Path) -> RunInfo:
    status = jobs.read_status(path)
    return RunInfo(path, jobs.effective_state(status), owner_of(path, status), folder_bytes(path), _modified(path),
                   len(snapshot_epochs(path)))


def run_folders(root: str | Path) -> list[Path]:
    """The run folders directly under ``root`` (hidden folders such as the uploads' are skipped), unordered."""
    root = Path(root)
    if not root.is_dir():
        return []
    return [p for p in root.iterdir() if not p.name.startswith(".") and is_run_folder(p)]


def list_runs(root: str | Path) -> list[RunInfo]:
    """Every run folder directly under ``root`` with its state, owner and size, oldest first."""
    return sorted((info(p) for p in run_folders(root)), key=lambda r: r.modified)


def _modified(path: Path) -> float:
    try:
        return max(p.stat().st_mtime for p in path.iterdir())
    except (OSError, ValueError):
        return 0.0


def list_uploads(root: str | Path) -> list[RunInfo]:
    """Every data upload the app keeps under ``root/.uploads`` (state ``upload``, owner: its marked people, comma
    separated), oldest first."""
    up = Path(root) / UPLOADS
    if not up.is_dir() or up.is_symlink():
        return []
    found = [RunInfo(p, "upload", ",".join(owners_marked(p)), folder_bytes(p), _modified(p), 0, upload=True)
             for p in up.iterdir() if p.is_dir() and not p.is_symlink()]
    return sorted(found, key=lambda r: r.modified)


def uploads_in_use(root: str | Path) -> dict[str, list[str]]:
    """Which uploads the runs under ``root`` were trained on: ``.uploads/<digest>`` -> the runs' names (a run's
    ``config.json`` names its data set's file, ``.../.uploads/<digest>/<file>``; deleting the upload would leave those
    runs without their data). Matched on the path's last parts, not where it resolves: a run recorded its path as
    the server that trained it saw the folder (a container's ``/runs``, a relative ``runs/``), and an upload's
    folder is named by its content, so the digest alone identifies it."""
    used: dict[str, list[str]] = {}
    for run in sorted(run_folders(root)):     # only their configs: no sizes or states to walk for
        try:
            name = str(load_json((run / CONFIG).read_bytes(), CONFIG, max_bytes=1 << 20)["data"]["name"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        data = Path(name)
        if data.parent.parent.name == UPLOADS:
            used.setdefault(f"{UPLOADS}/{data.parent.name}", []).append(run.name)
    return used


def thin_snapshots(run_dir: str | Path, keep: int) -> int:
    """Keep ``keep`` of a run's epoch snapshots, evenly spaced (the first and the last among them); returns how many
    were deleted. The Compare page's replay then steps through the kept epochs."""
    epochs = snapshot_epochs(run_dir)
    if keep < 1 or len(epochs) <= keep:
        return 0
    if keep == 1:
        kept = {epochs[-1]}
    else:
        kept = {epochs[round(i * (len(epochs) - 1) / (keep - 1))] for i in range(keep)}
    gone = 0
    for e in epochs:
        if e not in kept:
            snapshot_path(run_dir, e).unlink(missing_ok=True)
            gone += 1
    return gone


def remove_run(root: str | Path, name: str) -> Path:
    """Delete the run folder ``root/name``; refuses anything that is not a run folder directly under ``root`` and a
    run still training (stop it first). Raises ``ValueError`` with one line."""
    root = Path(root).resolve()
    if name.startswith(UPLOADS + "/"):
        return _remove_upload(root, name)
    path = (root / name).resolve()
    if path.parent != root or not is_run_folder(root / name):
        raise ValueError(f"{name}: not a run folder in {root}")
    state = jobs.effective_state(jobs.read_status(path))
    if state in jobs.ACTIVE:
        raise ValueError(f"{name} is {state}; stop it first")
    shutil.rmtree(path)
    return path


def _remove_upload(root: Path, name: str) -> Path:
    """Delete the data upload ``root/.uploads/<digest>``; refuses anything else and an upload a run was trained on
    (delete those runs first: their pages read its test images)."""
    up = (root / UPLOADS).resolve()
    path = (root / name).resolve()
    if (root / UPLOADS).is_symlink() or path.parent != up or (root / name).is_symlink() or not path.is_dir():
        raise ValueError(f"{name}: not a data upload in {up}")
    users = uploads_in_use(root).get(name)
    if users:
        raise ValueError(f"{name} is the data of {', '.join(users[:5])}{' ...' if len(users) > 5 else ''}; "
                         "delete those runs first")
    shutil.rmtree(path)
    return path
