"""Uploads from the browser, validated by the core before anything is kept.

Data sets: the bytes go to a private temporary folder, ``vae.data.load_dataset`` reads them
with its hostile-input checks (zip names, bombs, pixel counts, dtypes, NaN), and only a
file that loads is kept under ``settings.uploads_dir()`` (content-addressed), so runs
trained on it can reload their test images later.

Runs: a ``.zip`` of a run folder, or the files themselves (``model.safetensors`` +
``config.json`` [+ ``metrics.json``]). Zip entries are checked (names, links, encryption,
sizes, compression ratio) before reading, reads are capped, the files go to a private
temporary folder and ``vae.runs.load_run`` validates them (strict JSON config, safetensors
only: nothing is unpickled, ``torch.load`` is never called; tensor names, shapes, dtypes
and finiteness are checked). Only then is the run written to the runs folder, by
``vae.runs.save_run`` from the validated model.

Every failure is an ``UploadError`` whose message is one line.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import re
import secrets
import shutil
import tempfile
import time
import zipfile
from pathlib import Path

from vae import tracking
from vae.data import DataError, DataSplit, Limits, load_dataset, zip_entry_problem
from vae.foreign import DECODE, ENCODE, MAX_PROGRAM_BYTES
from vae.runs import (
    CONFIG,
    MAX_JSON_BYTES,
    MAX_WEIGHTS_BYTES,
    METRICS,
    WEIGHTS,
    RunError,
    config_from_bytes,
    load_run,
    new_folder,
    save_run,
)
from vae.tracking import TEST_IMAGES
from vae.util import atomic_write_bytes, os_reason

from . import settings

MAX_DATA_UPLOAD = 200 << 20
MAX_RUN_UPLOAD = 200 << 20
MAX_RATIO = 200.0                     # declared uncompressed / compressed, per entry of 1 MiB or more
RUN_FILES = {WEIGHTS: MAX_WEIGHTS_BYTES, CONFIG: MAX_JSON_BYTES, METRICS: MAX_JSON_BYTES}
# a tracked run's own files (vae.track): its two programs and its test images, kept only where the operator allows
TRACKED_FILES = {ENCODE: MAX_PROGRAM_BYTES, DECODE: MAX_PROGRAM_BYTES, TEST_IMAGES: MAX_RUN_UPLOAD}
ACCEPTED_FILES = {**RUN_FILES, **TRACKED_FILES}
RUN_ACCEPTED = f"accepted: a .zip of a run folder, or {WEIGHTS} + {CONFIG} (+ {METRICS})"
DATA_ACCEPTED = "accepted: an .npz with an array 'x' (and optional 'y') or a .zip of PNG/JPEG images"
# The app's caps for uploaded data: a classroom laptop, not a cluster.
# Decoding runs in the server beside every student's clicks: a zip of many small files that each decode to a large
# image is refused from the headers (256 M pixels in all, e.g. 60,000 images of 64x64) before any is decoded.
DATA_LIMITS = Limits(max_file_bytes=MAX_DATA_UPLOAD, max_files=100_000, max_uncompressed_bytes=1 << 30,
                     max_ratio=MAX_RATIO, max_image_pixels=4096 * 4096, max_total_pixels=1 << 28,
                     max_images=200_000)


class UploadError(ValueError):
    """An upload was refused; ``str(e)`` is one line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


def _safe_name(name: str, default: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(name).name).strip(".-")[:60]
    return stem or default


# ----------------------------------------------------------------------------- data sets

def save_dataset_upload(name: str, blob: bytes, *, image_size: int | None = None) -> tuple[str, DataSplit]:
    """Validate an uploaded data set and keep it; returns (path to load it by, the loaded split)."""
    ext = Path(name).suffix.lower()
    if ext not in (".npz", ".zip"):
        raise UploadError(f"{name}: unsupported file type {ext or '(none)'!r}; {DATA_ACCEPTED}")
    if len(blob) > MAX_DATA_UPLOAD:
        raise UploadError(f"{name}: {len(blob):,} bytes, over the {MAX_DATA_UPLOAD >> 20} MB upload limit")
    if not blob:
        raise UploadError(f"{name}: the file is empty; {DATA_ACCEPTED}")
    safe = _safe_name(Path(name).stem, "upload") + ext
    with tempfile.TemporaryDirectory(prefix="vae-lab-upload-") as tmp:
        path = Path(tmp) / safe
        try:
            path.write_bytes(blob)
        except OSError as e:
            raise UploadError(not_stored(name, e)) from None
        try:
            split = load_dataset(str(path), image_size=image_size, limits=DATA_LIMITS, download=False)
        except DataError as e:
            raise UploadError(str(e).replace(str(path), name).replace(safe, name)) from None
        except (OSError, MemoryError) as e:  # the core's checks should prevent these; never a traceback
            raise UploadError(f"{name}: cannot be read ({type(e).__name__})") from None
    digest = hashlib.sha256(blob).hexdigest()[:16]
    keep = settings.uploads_dir() / digest / safe
    if not keep.is_file():
        try:
            keep.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(keep, blob)          # no half-written file either way
        except OSError as e:
            with contextlib.suppress(OSError):
                keep.parent.rmdir()                 # only when this upload made it and it stayed empty
            raise UploadError(not_stored(name, e)) from None
    split.name = str(keep)
    return str(keep), split


# ----------------------------------------------------------------------------- runs

def _from_zip(name: str, blob: bytes) -> dict[str, bytes]:
    try:
        zf = zipfile.ZipFile(io.BytesIO(blob))
    except (zipfile.BadZipFile, ValueError, EOFError, OSError):
        raise UploadError(f"{name}: not a valid zip archive; {RUN_ACCEPTED}") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > 32:
            raise UploadError(f"{name}: {len(infos)} entries; a run archive holds at most {len(ACCEPTED_FILES)} files")
        files: dict[str, zipfile.ZipInfo] = {}
        folders: set[str] = set()
        for info in infos:
            problem = zip_entry_problem(info)
            if problem:
                raise UploadError(f"{name}: entry {info.orig_filename!r} {problem}; {RUN_ACCEPTED}")
            parts = [p for p in info.filename.split("/") if p]
            if info.is_dir() or not parts or parts[0] == "__MACOSX" or parts[-1] == ".DS_Store":
                continue
            if len(parts) > 2:
                raise UploadError(f"{name}: entry {info.filename!r} is nested too deep; {RUN_ACCEPTED}")
            if len(parts) == 2:
                folders.add(parts[0])
            base = parts[-1]
            if base not in ACCEPTED_FILES:
                raise UploadError(f"{name}: unexpected entry {info.filename!r}; {RUN_ACCEPTED}")
            if base in files:
                raise UploadError(f"{name}: two entries named {base}; {RUN_ACCEPTED}")
            cap = ACCEPTED_FILES[base]
            if info.file_size > cap:
                raise UploadError(f"{name}: {base} declares {info.file_size:,} bytes, over the {cap:,}-byte limit")
            if info.file_size >= (1 << 20) and info.file_size > MAX_RATIO * max(1, info.compress_size):
                raise UploadError(f"{name}: {base} expands {info.file_size / max(1, info.compress_size):,.0f}x "
                                  f"(looks like a zip bomb); accepted: ordinary archives")
            files[base] = info
        if len(folders) > 1:
            raise UploadError(f"{name}: files in {len(folders)} folders; {RUN_ACCEPTED}")
        out: dict[str, bytes] = {}
        for base, info in files.items():
            try:
                with zf.open(info) as fp:
                    data = fp.read(info.file_size + 1)
            except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError, ValueError):
                raise UploadError(f"{name}: entry {info.filename!r} is corrupt; accepted: an intact archive") from None
            if len(data) > info.file_size:
                raise UploadError(f"{name}: entry {info.filename!r} holds more than its header declares")
            out[base] = data
    return out


def check_run_size(total: int) -> None:
    """Refuse a run upload of ``total`` bytes over the limit, before its files are read."""
    if total > MAX_RUN_UPLOAD:
        raise UploadError(f"{total:,} bytes uploaded, over the {MAX_RUN_UPLOAD >> 20} MB limit for a run")


def collect_run_files(files: list[tuple[str, bytes]]) -> dict[str, bytes]:
    """Uploaded (name, bytes) pairs -> {model.safetensors, config.json[, metrics.json]: bytes}."""
    if not files:
        raise UploadError(f"no file; {RUN_ACCEPTED}")
    check_run_size(sum(len(b) for _, b in files))
    zips = [n for n, _ in files if n.lower().endswith(".zip")]
    if zips:
        if len(files) != 1:
            raise UploadError(f"upload either one .zip or the run's files, not both; {RUN_ACCEPTED}")
        got = _from_zip(files[0][0], files[0][1])
    else:
        got = {}
        for name, blob in files:
            base = Path(name).name
            if base not in ACCEPTED_FILES:
                raise UploadError(f"{name}: unexpected file name; {RUN_ACCEPTED}")
            if base in got:
                raise UploadError(f"{base} was uploaded twice; {RUN_ACCEPTED}")
            if len(blob) > ACCEPTED_FILES[base]:
                raise UploadError(f"{base}: {len(blob):,} bytes, over the {ACCEPTED_FILES[base]:,}-byte limit")
            got[base] = blob
    missing = [n for n in (WEIGHTS, CONFIG) if n not in got]
    if missing:
        raise UploadError(f"missing {' and '.join(missing)}; {RUN_ACCEPTED}")
    return got


def install_run(files: list[tuple[str, bytes]]) -> Path:
    """Validate an uploaded run and save it into the runs folder; returns its new folder."""
    got = collect_run_files(files)
    try:
        kind = config_from_bytes(got[CONFIG], CONFIG).kind
    except RunError as e:
        raise UploadError(str(e)) from None
    tracked = kind == "tracked"
    if tracked and not settings.allow_tracked_uploads():
        # a tracked run's model is a stored program: code from its author, which a shared server does not run for
        # whoever uploads it (one graph can ask for any amount of memory); its author opens it from its folder
        raise UploadError("a tracked run (your own model, stored as programs) is not accepted as an upload on this "
                          "server: a program is code; open it from its folder with python -m vae app --run PATH, or "
                          "ask the server's operator (VAE_LAB_ALLOW_TRACKED_UPLOADS)")
    if not tracked:
        got = {k: v for k, v in got.items() if k in RUN_FILES}
    with tempfile.TemporaryDirectory(prefix="vae-lab-run-") as tmp:
        try:
            for base, blob in got.items():
                (Path(tmp) / base).write_bytes(blob)
        except OSError as e:
            raise UploadError(not_stored(source_name(files), e)) from None
        try:
            run = load_run(tmp, budget=settings.budget())
        except RunError as e:
            raise UploadError(str(e).replace(str(Path(tmp)) + "/", "").replace(str(Path(tmp)), "upload")) from None
        if tracked and TEST_IMAGES in got:
            _check_test_images(Path(tmp), run)
    source = files[0][0]
    stem = _safe_name(Path(source).stem if source.lower().endswith(".zip") else "run", "run")
    stem = stem if stem not in ("model", "config", "metrics") else "run"
    metrics = dataclasses.replace(run.metrics, meta={}, uploaded_from=source_name(files))
    # an exclusive mkdir: two replicas storing an upload in the same second never share a folder
    out = new_folder(settings.runs_dir(),
                     lambda: f"uploaded-{stem}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}")
    try:
        if tracked:      # its programs hold the model: the checked files are kept as they came
            for base, blob in got.items():
                atomic_write_bytes(out / base, blob)
            return out
        return save_run(out, run.model, run.config, metrics)
    except OSError as e:  # a full disk, say: nothing half-written stays in the runs folder
        shutil.rmtree(out, ignore_errors=True)
        raise UploadError(not_stored(source_name(files), e)) from None


def source_name(files: list[tuple[str, bytes]]) -> str:
    return ", ".join(n for n, _ in files)[:200]


def not_stored(name: str, e: OSError) -> str:
    """A failed write of an upload (a full disk) in one line, without the server's path."""
    return f"{name}: the server could not store it ({os_reason(e)}); nothing was kept"


def _check_test_images(folder: Path, run) -> None:
    """A tracked run's stored test images, read as the pages will read them (header first, then the images)."""
    m = run.config.model
    try:
        tracking.read_test_images(folder, m.channels, m.image_size)
    except (ValueError, OSError) as e:
        raise UploadError(f"{TEST_IMAGES}: {str(e).replace(str(folder) + '/', '')}") from None
