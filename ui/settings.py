"""Where the app keeps things and how it behaves, from environment variables.

- ``VAE_LAB_RUNS_DIR``: folder of saved runs (trained or uploaded in the app), shared by
  every session; default ``runs/`` in the repository.
- ``VAE_LAB_DEMO_DIR``: folder of the pretrained demo runs; default ``assets/runs``.
- ``VAE_LAB_HEARTBEAT_S``: a training run whose browser tab has sent no heartbeat for this
  many seconds (and whose websocket is gone) stops itself and is saved; default 60.
- ``VAE_LAB_POLL_S``: how often a page polls a training run, seconds; default 1.
- ``VAE_LAB_THREADS``: torch CPU threads of the web server (inference); default half the cores, at
  least 1.
- ``VAE_LAB_MAX_JOBS``: training runs that train at once, each in its own process, per app server
  (replica); more wait in a queue. Default: one per core; ``deploy/replicas.sh N`` sets it to the cores divided
  among the N replicas, so the machine as a whole trains one job per core. Measured on 2 cores with 15 sessions
  clicking: p95 176 ms beside one job, 160 ms beside two (the jobs run at nice 10, the server keeps its core's
  share; README, "Serving a class").
- ``VAE_LAB_JOB_THREADS``: torch threads of each training process; default 1.
- ``VAE_LAB_JOB_NICE``: how much lower a training process's priority is than the server's; default 10.
- ``VAE_LAB_TRAIN_LAUNCHER``: the command prefix that runs ``-m vae train ...`` for a job: empty (default)
  runs this Python; ``torchrun --standalone --nproc-per-node 2`` or ``srun -p gpu torchrun ...`` hand the
  job to those engines (the runs folder must then be shared storage).

A class on one server (README, "Serving a class", the quotas table says why each default; 0 turns a limit
off, except the first, which is at least 1):

- ``VAE_LAB_JOBS_PER_PERSON``: runs one person may have queued or training at once, counted from the runs
  folder's ``job.json`` owners (all their tabs, every replica); default 1, at least 1.
- ``VAE_LAB_MAX_EPOCHS``: epochs of a run started in the app; default 200.
- ``VAE_LAB_MAX_TIME_BUDGET_S``: the time budget of a run started in the app, seconds; a run started with the
  budget off (0) gets this budget; default 300.
- ``VAE_LAB_DISK_PER_PERSON_MB``: what one person's runs and uploads may hold; default 500.
- ``VAE_LAB_SNAPSHOTS_KEPT``: epoch snapshots a run keeps (evenly spaced, first and last included) once its job
  ends; default 20.
- ``VAE_LAB_MIN_FREE_MB``: below this much free space on the runs folder's disk, new runs and uploads are
  refused; default 2048.
- ``VAE_LAB_ALLOW_TRACKED_UPLOADS``: ``1`` lets people upload runs logged with vae.track (their models are
  programs the server runs: trust the room first); default off.
- ``VAE_LAB_TEACHER_PASSWORD``: unlocks teacher mode in the sidebar (stop, resume and delete any run; see who
  owns what); unset or empty = no teacher mode.

Read on every call (cheap), so a test can set them before starting the app.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _float(name: str, default: float, lo: float) -> float:
    try:
        return max(lo, float(os.environ.get(name, default)))
    except ValueError:
        return default


def runs_dir() -> Path:
    env = os.environ.get("VAE_LAB_RUNS_DIR")
    return Path(env).expanduser().resolve() if env else ROOT / "runs"


def demo_dir() -> Path:
    env = os.environ.get("VAE_LAB_DEMO_DIR")
    return Path(env).expanduser().resolve() if env else ROOT / "assets" / "runs"


def uploads_dir() -> Path:
    """Validated data-set uploads, kept so that runs trained on them can reload their test images."""
    return runs_dir() / ".uploads"


def heartbeat_timeout() -> float:
    return _float("VAE_LAB_HEARTBEAT_S", 60.0, 0.5)


def poll_seconds() -> float:
    return _float("VAE_LAB_POLL_S", 1.0, 0.2)


def _int(name: str, default: int, lo: int) -> int:
    try:
        return max(lo, int(os.environ.get(name, default)))
    except ValueError:
        return default


def max_jobs() -> int:
    return _int("VAE_LAB_MAX_JOBS", max(1, os.cpu_count() or 1), 1)


def job_threads() -> int:
    return _int("VAE_LAB_JOB_THREADS", 1, 1)


def job_nice() -> int:
    return _int("VAE_LAB_JOB_NICE", 10, 0)


def train_launcher() -> str:
    return os.environ.get("VAE_LAB_TRAIN_LAUNCHER", "").strip()


def pin_native_threads() -> None:
    """Give every thread of the server ``torch_threads()`` OpenMP threads, before torch is first imported.

    Streamlit runs each rerun, and each fragment's rerun, in a thread of its own, and OpenMP keeps its thread
    count per thread: a new thread starts at every core, whatever ``torch.set_num_threads`` said in another, so
    its first torch op built a new OpenMP team: 10-20 ms of CPU for a click that decodes, against about 1 ms
    for the decode itself (bench/omp_threads.py). The environment variables are read once, when
    torch (and its OpenMP) load; after that ``compute.configure_torch`` is the per-thread remedy."""
    if "torch" in sys.modules:
        return
    n = str(torch_threads())
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = n


def torch_threads() -> int:
    try:
        n = int(os.environ.get("VAE_LAB_THREADS", "0"))
    except ValueError:
        n = 0
    return n if n > 0 else max(1, (os.cpu_count() or 2) // 2)


def data_roots() -> tuple[Path, ...]:
    """The only folders a data set may be read from by path (built-in names are always accepted): the uploads
    folder, and the folders in ``VAE_LAB_DATA_ROOTS`` (``os.pathsep``-separated), which a teacher sets for a
    class's own data and ``python -m vae app --run PATH`` sets for the run it opens. Anything a run's config
    names elsewhere (``/etc/...``, another user's home) is "not available here"."""
    extra = [Path(p).expanduser() for p in os.environ.get("VAE_LAB_DATA_ROOTS", "").split(os.pathsep) if p.strip()]
    return (uploads_dir(), *extra)


def budget():
    """The largest model the app builds, from an upload, a saved run or the Train form: ``VAE_LAB_MAX_PARAMS``
    (default 16 M parameters, 64 MB of weights), ``VAE_LAB_MAX_LAYERS`` (8), ``VAE_LAB_MAX_WIDTH`` (4096),
    ``VAE_LAB_MAX_LATENT`` (128). A class server holds many models at once; the command line keeps the core's
    larger default."""
    from vae.budget import Budget
    return Budget(max_params=_int("VAE_LAB_MAX_PARAMS", 16_000_000, 1), max_layers=_int("VAE_LAB_MAX_LAYERS", 8, 1),
                  max_width=_int("VAE_LAB_MAX_WIDTH", 4096, 1), max_latent=_int("VAE_LAB_MAX_LATENT", 128, 1),
                  max_prior_components=1000, setting="VAE_LAB_MAX")


# ---------------------------------------------------------------------------------------------- a class's quotas

def jobs_per_person() -> int:
    return _int("VAE_LAB_JOBS_PER_PERSON", 1, 1)


def max_epochs() -> int:
    """0: only the core's own range."""
    return _int("VAE_LAB_MAX_EPOCHS", 200, 0)


def max_time_budget() -> float:
    """Seconds; 0: no limit (a run may also have its budget off)."""
    return _float("VAE_LAB_MAX_TIME_BUDGET_S", 300.0, 0.0)


def disk_per_person() -> int:
    """Bytes; 0: no limit."""
    return int(_float("VAE_LAB_DISK_PER_PERSON_MB", 500.0, 0.0) * 2**20)


def snapshots_kept() -> int:
    """0: keep every snapshot."""
    return _int("VAE_LAB_SNAPSHOTS_KEPT", 20, 0)


def min_free_bytes() -> int:
    """Bytes; 0: no floor."""
    return int(_float("VAE_LAB_MIN_FREE_MB", 2048.0, 0.0) * 2**20)


def allow_tracked_uploads() -> bool:
    """Whether a run logged with vae.track (its model stored as ONNX programs, code from its author) may be uploaded
    and opened here: off unless the operator sets ``VAE_LAB_ALLOW_TRACKED_UPLOADS=1``."""
    return os.environ.get("VAE_LAB_ALLOW_TRACKED_UPLOADS", "").strip().lower() in ("1", "true", "yes")


def teacher_password() -> str:
    """The teacher's password ("" = no teacher mode)."""
    return os.environ.get("VAE_LAB_TEACHER_PASSWORD", "")
