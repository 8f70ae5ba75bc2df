"""Helpers for the AppTest suites (tests/test_app_*.py)."""
from __future__ import annotations

import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app.py"


def open_app(page: str | None = None, timeout: float = 60) -> AppTest:
    """The app run once (home page), then switched to ``page`` (e.g. "app_pages/train.py") and run."""
    at = AppTest.from_file(str(APP), default_timeout=timeout).run()
    assert not at.exception, at.exception
    if page:
        at.switch_page(page).run()
        assert not at.exception, at.exception
    return at


def poll(at: AppTest, done, timeout: float = 90, interval: float = 0.5) -> AppTest:
    """Rerun ``at`` until ``done(at)`` is true (training runs in a thread; each run is a heartbeat)."""
    deadline = time.monotonic() + timeout
    while True:
        at.run()
        assert not at.exception, at.exception
        if done(at):
            return at
        if time.monotonic() > deadline:
            raise AssertionError(f"not done after {timeout} s")
        time.sleep(interval)


def image_urls(at: AppTest) -> list[str]:
    """Every st.image URL on the page (AppTest names media files by a hash of their bytes)."""
    return [u for img in at.get("image") for u in img.value]


def make_env(monkeypatch, tmp_path, **extra) -> Path:
    """Point the app at an empty runs folder (demo runs still come from assets/runs)."""
    runs = tmp_path / "runs"
    monkeypatch.setenv("VAE_LAB_RUNS_DIR", str(runs))
    monkeypatch.setenv("VAE_LAB_THREADS", "1")
    for k, v in extra.items():
        monkeypatch.setenv(k, str(v))
    # every AppTest has the same session id: start each test with no scheduler (its jobs stopped)
    from ui import queue
    queue.close_all()
    return runs


def pick_run(at: AppTest, name: str) -> AppTest:
    """Make the run whose folder is ``name`` active through the sidebar picker (values are paths)."""
    from ui import catalogue
    target = next(e.path for e in catalogue.catalogue() if e.name == name)
    at.sidebar.selectbox(key="app.run").set_value(target)
    at.run()
    assert not at.exception, at.exception
    return at


def texts(elements) -> list[str]:
    return [e.value for e in elements]


def plotly_values(v):
    """An array in a plotly chart's spec: a list, or (plotly 6+) {"dtype", "bdata": base64}."""
    import base64

    import numpy as np
    if isinstance(v, dict):
        return np.frombuffer(base64.b64decode(v["bdata"]), np.dtype(v["dtype"]))
    return np.asarray(v, float)
