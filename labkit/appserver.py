"""The one way to start a Streamlit app for a benchmark or a browser test, and Debian's Chromium.

Used by bench/app_timing.py, bench/screenshots.py, bench/slider_bench.py and tests/browser/conftest.py::

    from labkit.appserver import app_server, chromium          # a bench script (bench/ is its sys.path[0])
    from labkit.appserver import app_server, free_port   # a test (the repo root is on pytest's pythonpath)

    with app_server() as url, chromium() as browser:    # app.py; or app_server(script, env={...})
        browser.new_page().goto(f"{url}/train")
        url.pid                                         # the server's process id (also url.proc, url.port)

The server runs with the repository root as its working folder and first on ``PYTHONPATH``, so
an app script anywhere can ``import ui`` (``vae`` is installed); Streamlit itself puts the
script's own folder on ``sys.path``, so the script can import its sibling modules. No script
needs to edit ``sys.path``.

Server output goes to a temporary file, removed when the server stops, whose last lines ``url.log_tail()`` gives (a
failing test can say what the server said); ``VAE_STREAMLIT_LOG`` set to ``1`` (or ``-``, ``true``, ``yes``) shows
it on this terminal instead, any other value is a file it is appended to.
``VAE_CHROMIUM`` overrides the browser's path (default /usr/bin/chromium).
"""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("VAE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
_TERMINAL = {"1", "-", "true", "yes"}


def free_port() -> int:
    """A localhost TCP port free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppURL(str):
    """The server's base URL (``http://127.0.0.1:PORT``), carrying its process: ``.proc``, ``.pid``, ``.port``, and
    ``.log`` (the file its output goes to, when it goes to a file)."""

    proc: subprocess.Popen
    port: int
    log: Path | None

    def __new__(cls, url: str, proc: subprocess.Popen, port: int, log: Path | None = None):
        self = super().__new__(cls, url)
        self.proc, self.port, self.log = proc, port, log
        return self

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, lines: int = 20) -> list[str]:
        """The last ``lines`` lines the server printed, and whether it is still running (for a failure message)."""
        alive = "running" if self.proc.poll() is None else f"exited with code {self.proc.returncode}"
        if self.log is None or not self.log.is_file():
            return [f"server {self.port} {alive}; its output is not kept (VAE_STREAMLIT_LOG)"]
        text = self.log.read_bytes()[-65536:].decode(errors="replace")
        return [f"server {self.port} {alive}, its last lines:", *text.splitlines()[-lines:]]


def _pythonpath(env: dict, root: Path = ROOT) -> str:
    """The app's root first, then whatever PYTHONPATH the caller had (without duplicates or empty entries)."""
    parts = [str(root)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    return os.pathsep.join(dict.fromkeys(parts))


@contextlib.contextmanager
def app_server(script: str | os.PathLike | None = None, env: dict | None = None, timeout: float = 60.0, *,
               port: int | None = None, extra_args: Sequence[str] = (),
               root: str | os.PathLike | None = None) -> Iterator[AppURL]:
    """``streamlit run SCRIPT`` (default: the repo's app.py) headless on 127.0.0.1, a free port unless
    ``port`` is given; waits for ``/_stcore/health`` and yields the base URL (an ``AppURL``).
    ``env`` is added to this process's environment; ``extra_args`` go after the server options
    (e.g. ``["--server.maxUploadSize", "1"]``). ``root`` serves another checkout of the app (its app.py,
    its working folder, its packages first on the path), e.g. an older commit to compare with. The server
    is stopped on exit."""
    port = port or free_port()
    root = Path(root).resolve() if root else ROOT
    cmd = [sys.executable, "-m", "streamlit", "run", str(Path(script or root / "app.py").resolve()),
           "--server.headless", "true", "--browser.gatherUsageStats", "false", "--server.port", str(port),
           "--server.address", "127.0.0.1",
           *extra_args]
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = _pythonpath(full_env, root)
    target = os.environ.get("VAE_STREAMLIT_LOG", "")
    with contextlib.ExitStack() as stack:
        if not target:
            path = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="vae-app-"))) / "server.log"
        elif target.lower() in _TERMINAL:
            path = None
        else:
            path = Path(target)
        log = stack.enter_context(open(path, "ab")) if path is not None else None
        proc = subprocess.Popen(cmd, cwd=root, env=full_env, stdout=log,
                                stderr=subprocess.STDOUT if log is not None else None)
        url = AppURL(f"http://127.0.0.1:{port}", proc, port, path)
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"streamlit exited with code {proc.returncode} before becoming healthy: "
                                       f"{' '.join(cmd)}; " + " / ".join(url.log_tail(10)))
                try:
                    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"streamlit not healthy after {timeout:.0f} s: {' '.join(cmd)}")
                time.sleep(0.2)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def chromium():
    """A headless Playwright ``Browser`` (sync API) running ``CHROMIUM``; closed on exit."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
