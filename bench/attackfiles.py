"""The hostile files of bench/class_attacks.py, built in memory (or in a scratch folder), and the files that tell
whether the server read them.

- Run uploads: a run folder's zip whose ``config.json`` says anything (a data set elsewhere, 300 layers of 4,096), and
  the ``metrics.json`` beside it (a run that "failed", so the Doctor offers to start it again).
- ``config.json`` texts the JSON limits are for: nested as deep as 64 KB allow, a 5,000-digit number.
- A data zip of 20 PNGs of 4096² each (each within the per-image cap, together over the pixel budget).
- A real ``vae.track`` folder (ONNX programs), logged by a tiny model in a process of its own.
- ``aged`` files: their access time set an hour before their change time, so that any read moves it (relatime) and
  ``untouched`` can tell, without strace, whether the server opened them.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from labkit.appserver import ROOT

DEMO = ROOT / "assets" / "runs" / "mnist-2d"


def demo_config(**model) -> dict:
    cfg = json.loads((DEMO / "config.json").read_text())
    cfg["model"].update(model)
    return cfg


def run_zip(cfg: dict, folder: str = "run", **metrics) -> bytes:
    """A run folder's zip: the demo run's weights and metrics (with ``metrics`` changed) beside ``cfg``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{folder}/config.json", json.dumps(cfg))
        zf.writestr(f"{folder}/metrics.json", json.dumps({**json.loads((DEMO / "metrics.json").read_text()),
                                                          **metrics}))
        zf.write(DEMO / "model.safetensors", f"{folder}/model.safetensors")
    return buf.getvalue()


def claimed_mb(hidden: list[int], image: int = 28 * 28, latent: int = 2) -> float:
    """The float32 weights an MLP encoder alone of these widths holds (its decoder comes on top)."""
    widths = [image, *hidden, 2 * latent]
    return sum(a * b + b for a, b in zip(widths, widths[1:])) * 4 / 2**20


def nested_json(limit: int = 64 << 10) -> bytes:
    """A config.json nested as deep as fits in the app's 64 KB: a RecursionError for a plain json.loads."""
    depth = (limit - 64) // 2
    return ('{"model": ' + "[" * depth + "]" * depth + "}").encode()


def long_number_json(digits: int = 5000) -> bytes:
    cfg = demo_config()
    cfg["train"]["epochs"] = 0
    return json.dumps(cfg).replace('"epochs": 0', '"epochs": 1' + "0" * (digits - 1)).encode()


def png(side: int) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (side, side), 0).save(buf, format="PNG")
    return buf.getvalue()


PIXEL_ZIP = (20, 4096)          # images, side: each within the app's per-image cap, together over its pixel budget


def pixel_zip(n: int = PIXEL_ZIP[0], side: int = PIXEL_ZIP[1]) -> bytes:
    """``n`` PNGs of ``side``² each (each within the per-image cap): together over the 256 M pixel budget."""
    one = png(side)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for i in range(n):
            zf.writestr(f"big/{i}.png", one)
    return buf.getvalue()


def zip_folder(folder: Path, prefix: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                zf.write(f, f"{prefix}/{f.relative_to(folder)}")
    return buf.getvalue()


TRACK_SCRIPT = """
import sys, numpy as np, vae
from torch import nn
class Tiny(nn.Module):
    def __init__(s):
        super().__init__(); s.e = nn.Linear(256, 4); s.d = nn.Linear(2, 256)
    def encode(s, x):
        return s.e(x.flatten(1)).chunk(2, 1)
    def decode(s, z):
        return s.d(z)
x = np.random.default_rng(0).integers(0, 256, (16, 16, 16), dtype=np.uint8)
with vae.track(sys.argv[1], Tiny(), x, output="logits") as lab:
    lab.log(1, loss=1.0)
"""


def start_tracked_run(folder: Path) -> subprocess.Popen:
    """``vae.track`` logging a tiny model of its own into ``folder`` (ONNX programs included), in a process whose
    output goes to ``folder``'s sibling ``track.log``."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / "track.log", "wb") as log:
        return subprocess.Popen(["nice", "-n", "5", sys.executable, "-c", TRACK_SCRIPT, str(folder)],
                                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)


def aged(path: Path) -> Path:
    """Set every file's access time an hour before its change time: reading one moves it (relatime), a stat does
    not, so ``untouched`` tells whether anything read it since."""
    for f in [path, *path.rglob("*")] if path.is_dir() else [path]:
        if f.is_file():
            st = f.stat()
            os.utime(f, (st.st_mtime - 3600, st.st_mtime))
    return path


def atime_works(folder: Path) -> bool:
    """Does reading a file move its access time on this file system (not mounted noatime)?"""
    probe = Path(folder) / ".atime-probe"
    probe.write_bytes(b"probe")
    aged(probe)
    probe.read_bytes()
    works = not untouched(probe)
    probe.unlink()
    return works


def untouched(path: Path) -> bool:
    files = [f for f in path.rglob("*") if f.is_file()] if path.is_dir() else [path]
    return all(f.stat().st_atime < f.stat().st_mtime for f in files)


def secret_npz(folder: Path) -> Path:
    """A readable 28x28 data set outside the app's folders: a page that showed it would have read it."""
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "secret.npz", x=np.random.default_rng(0).integers(0, 255, (40, 28, 28), dtype=np.uint8))
    return aged(folder / "secret.npz")


def canary_run(folder: Path) -> Path:
    """A copy of a demo run outside the runs folder, whose files tell if anything read them."""
    shutil.copytree(DEMO, folder)
    return aged(folder)
