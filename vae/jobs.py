"""Training jobs as run folders: the only thing a job and whoever watches it share is the folder.

A job is ``python -m vae train --resume RUN_DIR`` (the same pipeline as any training) in its own process,
started by the app, a shell, ``torchrun`` or a cluster's scheduler. Its folder holds, beside the run's own
files (``config.json``, and ``model.safetensors`` + ``metrics.json`` as of the last completed epoch):

- ``job.json``: the state (``queued | running | done | stopped | failed | interrupted``; ``damaged`` when the
  file cannot be read), pid, start time and host of the process, who launched it and who owns it, progress
  (epoch, step, images/s, ETA) and a heartbeat, rewritten atomically at most every ``HEARTBEAT_S`` seconds and at
  every change of state;
- ``events.jsonl``: append-only training events (start, thinned steps, epochs, end), one JSON per line;
- ``live.npz``: the latest reconstructions; ``snapshots/epoch-NNNN.npz``: each epoch's reconstructions,
  latent means and KL per dimension (the app's live charts and training timeline);
- ``checkpoint/``: weights and optimizer state of the last completed epoch (``vae.checkpoint``);
- ``stop``: created by anyone who wants the job to stop; the job checks for it before every batch.

A job whose state says ``running`` but whose process is gone (same host: no such pid, or a pid now used by a
process that started at another time; another host: no heartbeat for ``STALE_S``) is ``interrupted``: ``resume``
continues it from its last checkpoint. Job control is :class:`JobControl`, a subscriber of the pipeline's events.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import RunConfig
from .record import CLAIM, EVENTS_FILE, JOB, LIVE, LOG, SNAPSHOTS, STOP, read_snapshot, snapshot_path
from .runs import CONFIG, new_run_dir
from .safejson import JSONError, load_json
from .util import atomic_write_bytes, atomic_write_json, os_reason

EVENTS = EVENTS_FILE
__all__ = ["CLAIM", "EVENTS", "JOB", "LIVE", "LOG", "SNAPSHOTS", "STOP", "JobControl", "read_snapshot",
           "snapshot_path"]
ACTIVE = ("queued", "running")
HEARTBEAT_S = 2.0            # a running job rewrites job.json at least this often
STALE_S = 60.0               # ... and counts as gone after this long without a heartbeat (another host)
HOST = socket.gethostname()


# ----------------------------------------------------------------------------------------------- state

def read_status(run_dir: str | Path) -> dict[str, Any] | None:
    """``job.json`` as a dict, or None when the folder has none (a run made before jobs, or not a job). A
    ``job.json`` that cannot be read reads as the state ``damaged``, saying why, so that a watcher lists it instead
    of losing it (a queued job in that state is never launched)."""
    path = Path(run_dir) / JOB
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        return _damaged(f"{JOB} cannot be read ({os_reason(e)})")
    try:
        d = load_json(blob, JOB, max_bytes=1 << 20)
    except JSONError as e:
        return _damaged(str(e))
    return d if isinstance(d, dict) else _damaged(f"{JOB} is not a JSON object")


def _damaged(why: str) -> dict[str, Any]:
    return {"state": "damaged", "message": why, "updated": 0.0}


def write_status(run_dir: str | Path, **changes: Any) -> dict[str, Any]:
    """Merge ``changes`` into ``job.json`` (atomically) and return the new state."""
    state = {**(read_status(run_dir) or {}), **changes, "updated": time.time()}
    atomic_write_json(Path(run_dir) / JOB, state)
    return state


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:       # exists, owned by someone else
        return True
    try:                           # a zombie (exited, not yet reaped by its parent) is gone for us
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def process_start(pid: int) -> str | None:
    """When process ``pid`` started, as ``"<boot id>:<clock ticks since boot>"`` (Linux ``/proc``), or None where
    that cannot be read. A pid is reused after its process ends and after a reboot; its start time is not."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            ticks = f.read().rsplit(")", 1)[1].split()[19]
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f"{f.read().strip()}:{ticks}"
    except (OSError, IndexError):
        return None


def is_alive(status: dict[str, Any] | None) -> bool:
    """Is the process behind a ``running`` job still there? On this host by its pid and its start time (a pid reused
    by another process after a crash or a reboot is not the job), elsewhere by the heartbeat."""
    if not status or status.get("state") != "running":
        return False
    if status.get("host") == HOST and isinstance(status.get("pid"), int):
        pid = status["pid"]
        if not pid_alive(pid):
            return False
        recorded = status.get("proc_start")
        return recorded is None or process_start(pid) in (None, recorded)
    return time.time() - float(status.get("updated") or 0) < STALE_S


def effective_state(status: dict[str, Any] | None) -> str | None:
    """The state as a watcher should see it: ``running`` whose process is gone reads as ``interrupted``."""
    if status is None:
        return None
    state = status.get("state")
    if state == "running" and not is_alive(status):
        return "interrupted"
    return state


def kept(run_dir: str | Path, status: dict[str, Any] | None = None) -> str:
    """What a job whose process is gone has kept, in words. The epoch named is the checkpoint's (what resume
    continues from): a kill after the run folder's last write but before the status file's leaves it one past
    the status's epoch."""
    # torch and the model code, imported only when a job has died
    from .checkpoint import checkpoint_epoch
    status = read_status(run_dir) if status is None else status
    epoch = max(int((status or {}).get("epoch") or 0), checkpoint_epoch(run_dir))
    return f"the run is kept up to epoch {epoch}" if epoch else "no epoch had completed"


def mark_interrupted(run_dir: str | Path, why: str) -> dict[str, Any]:
    """Record that a job's process is gone; its last checkpoint stays for ``resume``."""
    return write_status(run_dir, state="interrupted", ended=time.time(),
                        message=f"{why}; {kept(run_dir)}. Resume continues it from there.")


def clear_job(run_dir: str | Path) -> None:
    """Remove a previous job's status, stop request and claim before a fresh run in the same folder."""
    for name in (JOB, STOP, CLAIM):
        (Path(run_dir) / name).unlink(missing_ok=True)


class JobControl:
    """Keeps a run folder's job record (``job.json``) from the pipeline's events: running with this process's
    pid, a heartbeat with the progress at most every ``HEARTBEAT_S``, the epoch once it is saved, and how the run
    ended. The command line attaches it to every run it writes (and so to the app's jobs, which are
    ``python -m vae train --resume RUN_DIR``); a stop request left by an earlier process is cleared first."""

    def __init__(self, run_dir: str | Path, *, launched_by: str = "", fresh: bool = False):
        self.dir, self.launched_by = Path(run_dir), launched_by
        if fresh:
            clear_job(self.dir)
        (self.dir / STOP).unlink(missing_ok=True)      # a stop request belongs to the previous process
        self.started = False
        self.last = 0.0

    def __call__(self, e: dict[str, Any]) -> None:
        kind = e["type"]
        if kind == "start" and not self.started:
            self.started = True
            write_status(self.dir, state="running", pid=os.getpid(), host=HOST, started=time.time(),
                         proc_start=process_start(os.getpid()), epochs=e["epochs"], total_steps=e["total_steps"],
                         launched_by=self.launched_by, message="training", epoch=e.get("resumed_at_epoch") or 0,
                         world_size=e.get("world_size", 1), device=e.get("device"))
            self.last = time.monotonic()
        elif kind == "step" and time.monotonic() - self.last >= HEARTBEAT_S:
            self.last = time.monotonic()
            write_status(self.dir, step=e["global_step"], epoch_running=e["epoch"],
                         samples_per_sec=e.get("samples_per_sec"), eta=e.get("eta"), elapsed=e.get("elapsed"))
        elif kind == "saved":
            write_status(self.dir, epoch=e["epoch"], test=e.get("test"))
        elif kind == "finished":
            state = {"completed": "done", "cancelled": "stopped"}.get(e["status"], "failed")
            write_status(self.dir, state=state, ended=time.time(), message=e["message"], final=e.get("final") or {})
            (self.dir / STOP).unlink(missing_ok=True)
        elif kind == "error":
            write_status(self.dir, state="failed", ended=time.time(), message=f"training failed: {e['message']}")


# ----------------------------------------------------------------------------------------------- stop

def request_stop(run_dir: str | Path, reason: str = "stopped by request") -> None:
    """Ask the job to stop after its current batch (it saves what was learned); ``reason`` becomes its message."""
    atomic_write_bytes(Path(run_dir) / STOP, reason.encode("utf-8"))


def stop_reason(run_dir: str | Path) -> str | None:
    """The reason in a run folder's stop request, if there is one."""
    try:
        return (Path(run_dir) / STOP).read_text(encoding="utf-8").strip() or "stopped by request"
    except OSError:
        return None


class StopSignal:
    """``is_set()`` for the training loop: an in-process event (Ctrl-C) or the run folder's stop file."""

    def __init__(self, run_dir: str | Path | None, event: threading.Event | None = None):
        self.path = None if run_dir is None else Path(run_dir) / STOP
        self.event = event or threading.Event()

    def is_set(self) -> bool:
        return self.event.is_set() or (self.path is not None and self.path.exists())

    def set(self) -> None:
        self.event.set()

    def reason(self) -> str | None:
        """Why the run was asked to stop: the stop file's text, or None for an in-process request."""
        return stop_reason(self.path.parent) if self.path is not None else None


# ----------------------------------------------------------------------------------------------- queue

def queue_run(root: str | Path, config: RunConfig, data_name: str, *, owner: str = "", **info: Any) -> Path:
    """Create a run folder under ``root`` holding ``config.json`` and a ``queued`` job; return it. An ``OSError``
    (a full disk) leaves no folder behind."""
    run_dir = new_run_dir(root, config, data_name)
    try:
        atomic_write_bytes(run_dir / CONFIG, (config.to_json() + "\n").encode())
        write_status(run_dir, state="queued", created=time.time(), owner=owner, data=data_name,
                     epochs=config.train.epochs, **info)
    except OSError:                 # a full disk, say: no half-written folder is left to be listed or launched
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    return run_dir


def claim(run_dir: str | Path, by: str) -> bool:
    """Take a queued job for launching: an exclusive create, so two servers sharing the runs folder never
    both start it. True if this caller got it."""
    try:
        fd = os.open(Path(run_dir) / CLAIM, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps({"by": by, "host": HOST, "at": time.time()}))
    return True


def release(run_dir: str | Path) -> None:
    """Let a job be claimed again (before a resume)."""
    (Path(run_dir) / CLAIM).unlink(missing_ok=True)


def list_jobs(root: str | Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every folder under ``root`` with a ``job.json``, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    out = []
    for p in root.iterdir():
        status = read_status(p) if p.is_dir() else None
        if status is not None:
            out.append((p, status))
    return sorted(out, key=lambda t: (t[1].get("created") or 0, t[0].name))


def queue_position(root: str | Path, run_dir: str | Path) -> int | None:
    """1-based place of a queued job among the queued jobs of ``root`` (None when it is not queued)."""
    queued = [p for p, s in list_jobs(root) if s.get("state") == "queued" and not (p / CLAIM).exists()]
    run_dir = Path(run_dir)
    return queued.index(run_dir) + 1 if run_dir in queued else None


# ----------------------------------------------------------------------------------------------- launch

@dataclass(frozen=True)
class Launch:
    """How jobs are started: ``prefix`` is the command that runs ``-m vae ...`` (empty: this Python)."""

    prefix: str = ""             # e.g. "torchrun --standalone --nproc-per-node 2" or "srun -p gpu torchrun ..."
    threads: int = 1             # torch threads per process
    nice: int = 10               # lower priority than the web server (Unix)
    data_roots: tuple[str, ...] = ()   # the only folders a job may read a data file from (the app's uploads)

    def command(self, run_dir: str | Path, *, data_dir: str | None = None) -> list[str]:
        args = ["-m", "vae", "train", "--resume", str(run_dir), "--quiet", "--threads", str(self.threads),
                "--nice", str(self.nice)]
        if data_dir:
            args += ["--data-dir", data_dir]
        if self.data_roots:
            args += ["--data-roots", os.pathsep.join(self.data_roots)]
        prefix = shlex.split(self.prefix)
        return [*prefix, *args] if prefix else [sys.executable, *args]


def launch(run_dir: str | Path, how: Launch, *, env: dict[str, str] | None = None,
           data_dir: str | None = None) -> subprocess.Popen:
    """Start the job in its own process (and session: a Ctrl-C to the server does not kill it); its output
    goes to ``train.log`` in the run folder."""
    run_dir = Path(run_dir)
    log = open(run_dir / LOG, "ab")
    try:
        return subprocess.Popen(how.command(run_dir, data_dir=data_dir), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})},
                                start_new_session=True)
    finally:
        log.close()


# ----------------------------------------------------------------------------------------------- reading

def last_error(run_dir: str | Path) -> str:
    """The last ``error:`` line (or the last line) of a job's ``train.log``: why it ended."""
    try:
        lines = [ln.strip() for ln in (Path(run_dir) / LOG).read_text(encoding="utf-8", errors="replace")
                 .splitlines() if ln.strip()]
    except OSError:
        return "no log"
    errors = [ln for ln in lines if ln.startswith("error:")]
    line = (errors or lines or ["no output"])[-1]
    return line.removeprefix("error:").strip()[:300]


def read_events(run_dir: str | Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Complete lines of ``events.jsonl`` from byte ``offset``: (events, the offset to read from next)."""
    try:
        with open(Path(run_dir) / EVENTS, "rb") as f:
            f.seek(offset)
            blob = f.read()
    except OSError:
        return [], offset
    end = blob.rfind(b"\n") + 1
    events = []
    for line in blob[:end].splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events, offset + end
