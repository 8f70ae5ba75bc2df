"""The server's torch threads hold in every thread Streamlit makes (a rerun, a fragment's rerun), not only in the one
that set them: OpenMP keeps its count per thread (bench/omp_threads.py measures what a fresh team costs)."""
import ast
import os
import subprocess
import sys
from pathlib import Path

import torch  # noqa: F401  (loaded, as in any test process: pin_native_threads must then do nothing)

from ui import settings

ROOT = Path(__file__).resolve().parents[1]


def _python(*args: str, threads: str) -> str:
    """stdout of ``python ARGS`` from the repository, with VAE_LAB_THREADS=threads and no OpenMP/MKL setting of its
    own (OpenMP reads those once, when torch loads)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, check=True,
                          env={**env, "VAE_LAB_THREADS": threads, "PYTHONPATH": str(ROOT)}).stdout


def test_the_router_pins_the_threads_before_any_module_that_imports_torch():
    tree = ast.parse((ROOT / "app.py").read_text())
    order = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ui"):
            order.append(("import", node.module, tuple(a.name for a in node.names)))
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and \
                ast.unparse(node.value.func) == "settings.pin_native_threads":
            order.append(("pin",))
    assert order[0] == ("import", "ui", ("settings",)) and order[1] == ("pin",), order


def test_settings_does_not_import_torch_and_pins_both_libraries():
    code = ("import os, sys; from ui import settings; assert 'torch' not in sys.modules, 'ui.settings imports torch'; "
            "settings.pin_native_threads(); print(os.environ['OMP_NUM_THREADS'], os.environ['MKL_NUM_THREADS'])")
    assert _python("-c", code, threads="3").split() == ["3", "3"]


def test_a_torch_that_is_already_loaded_is_left_alone(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    settings.pin_native_threads()                           # torch is imported in this process: too late to matter
    assert "OMP_NUM_THREADS" not in os.environ


PROBE = r"""
import ctypes, sys, threading
import numpy as np
import torch
from ui import compute
from vae import latent
from vae.runs import load_run
torch.set_num_threads(1)                                  # set once, in the main thread, as the server once did
gomp = ctypes.CDLL(next(line.split()[-1] for line in open("/proc/self/maps") if "libgomp" in line))
model = load_run("assets/runs/mnist-2d").model            # the demo run a class opens first
z = np.zeros((10, 2), np.float32)
seen = []

def rerun():
    if sys.argv[1] == "configure":
        compute.configure_torch()                         # what shell.setup does at the top of every rerun
    latent.decode(model, z, None)                         # a click that decodes (a plain Linear alone sets it right)
    seen.append(gomp.omp_get_max_threads())               # the team this thread's parallel regions get

for _ in range(3):
    t = threading.Thread(target=rerun)
    t.start()
    t.join()
print(max(seen))
"""


def _openmp_threads_in_fresh_threads(mode: str) -> int:
    """The OpenMP thread count that fresh threads' decodes run with, in a new interpreter whose main thread set 1."""
    return int(_python("-c", PROBE, mode, threads="1"))


def test_a_rerun_in_a_new_thread_runs_with_the_servers_openmp_count():
    assert _openmp_threads_in_fresh_threads("configure") == 1
    if (os.cpu_count() or 1) > 1:              # the probe sees what a bare thread gets: OpenMP's default, every core
        assert _openmp_threads_in_fresh_threads("bare") == os.cpu_count()
