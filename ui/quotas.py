"""A class's quotas, checked before a job is queued or an upload is kept. No Streamlit here.

Each limit is a setting (``ui.settings``, read on every call; README, "Serving a class", says why each default):
epochs and time budget of a run started in the app, disk per person (their runs and uploads), and a free-space floor
on the runs folder's disk. Jobs per person are counted by the scheduler, under its folder lock. A refusal is a
``QuotaError``: one line saying what the limit is, what the request was, and the setting that changes it.
"""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from vae.budget import check as check_budget
from vae.config import RunConfig

from . import owners, settings


class QuotaError(ValueError):
    """One line: a request over one of the server's limits."""


def _mb(n: float) -> str:
    """A size in the unit that shows it: "37 KB", "512.0 MB"."""
    return f"{n / 2**10:,.0f} KB" if n < 2**20 else f"{n / 2**20:,.1f} MB"


def epochs_limit() -> int | None:
    return settings.max_epochs() or None


def time_limit() -> float | None:
    return settings.max_time_budget() or None


def check_epochs(epochs: int) -> None:
    cap = epochs_limit()
    if cap is not None and epochs > cap:
        raise QuotaError(f"{epochs:,} epochs is over this server's limit of {cap:,} per run (VAE_LAB_MAX_EPOCHS)")


def check_time_budget(seconds: float) -> None:
    cap = time_limit()
    if cap is not None and seconds > cap:
        raise QuotaError(f"a time budget of {seconds:g} s is over this server's limit of {cap:g} s per run "
                         "(VAE_LAB_MAX_TIME_BUDGET_S)")


def bound(config: RunConfig) -> RunConfig:
    """``config`` as a job started in the app may run it: a plain VAE run (semi-supervised runs read other run
    folders and train from the command line), its model within the server's budget (``VAE_LAB_MAX_*``), refused
    over the epoch or time limit; a time budget that is off (0) becomes the limit, so every job the app starts ends
    on the clock."""
    if config.kind != "vae":
        raise QuotaError(f"a {config.kind} run does not train in the app; only VAE runs do (semi-supervised runs "
                         "train with python -m vae semisup)")
    check_budget(config, settings.budget())
    check_epochs(config.train.epochs)
    check_time_budget(config.train.time_budget)
    cap = time_limit()
    if cap is not None and config.train.time_budget <= 0:
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, time_budget=cap))
    return config


def check_free_space(adding: int = 0) -> None:
    """Refuse when the runs folder's disk would have less than the floor free."""
    floor = settings.min_free_bytes()
    if floor <= 0:
        return
    folder = settings.runs_dir()
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free - adding < floor:
        raise QuotaError(f"the server's disk has {_mb(free)} free, under its floor of {_mb(floor)} "
                         "(VAE_LAB_MIN_FREE_MB): new runs and uploads wait until the teacher frees space")


def used_by(person: str) -> int:
    return owners.bytes_of(settings.runs_dir(), settings.uploads_dir(), person)


def check_disk(person: str, adding: int = 0) -> None:
    """Refuse when ``person``'s runs and uploads, plus ``adding`` bytes, would be over their share."""
    quota = settings.disk_per_person()
    if quota <= 0:
        return
    used = used_by(person)
    if used + adding > quota:
        extra = f" plus {_mb(adding)} for this" if adding else ""
        raise QuotaError(f"your runs and uploads hold {_mb(used)}{extra}, over your {_mb(quota)} on this server "
                         "(VAE_LAB_DISK_PER_PERSON_MB): delete some under Train, Your runs")


def before_job(person: str) -> None:
    check_free_space()
    check_disk(person)


def before_upload(person: str, nbytes: int) -> None:
    check_free_space(nbytes)
    check_disk(person, nbytes)


def keep_upload(folder: str | Path, person: str) -> None:
    """Record ``person`` as an owner of an upload the app kept (a run folder, or a data upload's folder)."""
    owners.mark(folder, person)
