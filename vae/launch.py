"""Open the app on a run folder: ``python -m vae app --run PATH`` from a shell, ``vae.show(PATH)`` from a notebook.

The app (``app.py``, ``app_pages/``, ``ui/``) runs from a checkout of VAE Lab, beside this package; it is started
with the same Python, on this machine only (127.0.0.1), with the run's parent folder as its runs folder, and the
address it prints opens that run (``?run=<folder name>``).
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def app_script() -> Path:
    script = ROOT / "app.py"
    if not script.is_file():
        raise ValueError("the app runs from a checkout of VAE Lab (app.py beside the vae package); clone the "
                         "repository and start it with ./run.sh app")
    return script


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(run: str | Path, port: int) -> tuple[list[str], dict[str, str], str]:
    """(the command, its environment, the address that opens ``run``) for a server on ``port``."""
    path = Path(run).expanduser().resolve()
    if not (path / "config.json").is_file():
        raise ValueError(f"{run} is not a run folder (no config.json)")
    cmd = [sys.executable, "-m", "streamlit", "run", str(app_script()), "--server.address", "127.0.0.1",
           "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    env = {**os.environ, "VAE_LAB_RUNS_DIR": str(path.parent), "PYTHONPATH": str(ROOT)}
    folder = _data_folder(path)
    if folder:   # the app reads data files only from the folders it is told of: the one this run was trained on
        env["VAE_LAB_DATA_ROOTS"] = os.pathsep.join(p for p in (env.get("VAE_LAB_DATA_ROOTS", ""), folder) if p)
    return cmd, env, f"http://127.0.0.1:{port}/?run={path.name}"


def _data_folder(run: Path) -> str | None:
    """The folder of the data file ``run`` was trained on, or None for a built-in data set (or an unreadable
    config, which the app then explains)."""
    from .data import DATASETS
    from .runs import RunError, config_from_bytes
    try:
        name = config_from_bytes((run / "config.json").read_bytes(), "config.json").data.name
    except (OSError, RunError):
        return None
    if name.strip().lower() in DATASETS:
        return None
    return str(Path(name).expanduser().resolve().parent)


def show(run: str | Path, *, port: int | None = None, wait_s: float = 60.0) -> str:
    """Start the app on ``run`` in the background (it stops with this Python) and return the address that opens it;
    in Jupyter, open it in a tab or an IFrame."""
    cmd, env, url = command(run, port or free_port())
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    health = url.split("/?")[0] + "/_stcore/health"
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the app stopped at once (exit code {proc.returncode}); try python -m vae app --run "
                               f"{run}")
        try:
            with urllib.request.urlopen(health, timeout=2) as r:
                if r.status == 200:
                    print(f"VAE Lab is showing {Path(run).name} at {url}")
                    return url
        except OSError:
            time.sleep(0.3)
    proc.terminate()
    raise RuntimeError(f"the app did not answer within {wait_s:g} s")
