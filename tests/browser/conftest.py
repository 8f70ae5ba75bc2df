"""Browser-test fixtures: a session Chromium (Debian's) and Streamlit servers on free ports.

Reusable by any browser test in this folder:

- ``browser``: a session-scoped Playwright ``Browser`` (sync API) running /usr/bin/chromium.
  Without Chromium or Playwright the tests are skipped, with the reason, unless the ``CI``
  environment variable is set: then they fail.
- ``start_streamlit(script_path, env=None, query=None) -> url``: a context manager that runs
  ``streamlit run`` headless on a free localhost port, waits for ``/_stcore/health`` and
  stops the server on exit. The ``streamlit_app`` fixture wraps it for one test.
- ``new_page(browser, url)``: a page that has loaded the app (the first element rendered).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("VAE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _unavailable(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"browser tests cannot run on CI: {reason}")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def start_streamlit(script_path, env: dict | None = None, timeout: float = 60.0):
    """Run ``streamlit run script_path`` headless on a free port; yield its base URL."""
    port = free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", str(script_path), "--server.headless", "true",
           "--browser.gatherUsageStats", "false", "--server.port", str(port), "--server.address", "127.0.0.1",
           "--server.fileWatcherType", "none", "--server.runOnSave", "false"]
    full_env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
                **(env or {})}
    log = open(os.devnull, "wb") if not os.environ.get("VAE_STREAMLIT_LOG") else None
    proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT if log else None)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with code {proc.returncode} before becoming healthy: {cmd}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"streamlit not healthy after {timeout:.0f} s: {cmd}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log:
            log.close()


@pytest.fixture(scope="session")
def playwright_instance():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as e:
        _unavailable(f"playwright is not installed ({e})")
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        _unavailable(f"no Chromium at {CHROMIUM} (set VAE_CHROMIUM or apt-get install chromium)")
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright_instance):
    try:
        b = playwright_instance.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    except Exception as e:  # a broken install: same policy as a missing one
        _unavailable(f"Chromium at {CHROMIUM} does not start: {str(e).splitlines()[0]}")
    yield b
    b.close()


@pytest.fixture
def streamlit_app():
    """Factory: ``url = streamlit_app(script_path, env)``; servers stop after the test."""
    with contextlib.ExitStack() as stack:
        yield lambda script_path, env=None: stack.enter_context(start_streamlit(script_path, env))


def new_page(browser, url: str, *, wait_for: str = "[data-testid='stAppViewContainer']", color_scheme="light",
             timeout: float = 60_000):
    """A fresh page (own context) with the app at ``url`` loaded and ``wait_for`` visible."""
    ctx = browser.new_context(viewport={"width": 1100, "height": 900}, color_scheme=color_scheme)
    page = ctx.new_page()
    page.set_default_timeout(timeout)
    page.goto(url)
    page.wait_for_selector(wait_for, state="attached")
    return page
