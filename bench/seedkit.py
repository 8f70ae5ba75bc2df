"""Shared by the seed benchmarks (anomaly_seeds.py, augment_seeds.py): run CLI commands a few at a time, read
the JSON line each prints, and summarise a figure over seeds."""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable


def vae_cli(*args) -> list[str]:
    return [sys.executable, "-m", "vae", *map(str, args)]


def run_json(cmd: list[str]) -> tuple[dict, float]:
    """Run ``cmd``; its last stdout line as JSON and the wall seconds. A failure ends the benchmark with its
    last stderr line."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), time.perf_counter() - t0


def run_all(tasks: Iterable, one: Callable[[object], dict], workers: int) -> list[dict]:
    """``one(task)`` for every task, ``workers`` at a time (each a subprocess), each row echoed to stderr."""
    def wrapped(task):
        row = one(task)
        print(json.dumps(row), file=sys.stderr, flush=True)
        return row
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(wrapped, list(tasks)))


def spread(values: list[float]) -> dict:
    """Mean, sample standard deviation and count."""
    return {"mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": len(values)}
