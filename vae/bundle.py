"""Take a run out of VAE Lab: the run as a zip, its codes as CSV, its map as PNG, and a folder the
Embedding Projector opens.

Everything here is bytes or files from plain arrays, so the app's download buttons and
``python -m vae export RUN_DIR --to DIR`` write exactly the same things:

- ``run_zip(run_dir)``: ``model.safetensors``, ``config.json`` and ``metrics.json`` inside one
  folder named after the run: the layout the app's run upload accepts.
- ``latents_csv(codes, labels, class_names)``: one row per test image: ``index``, ``label``,
  ``class`` (when labelled), ``mu_0..mu_{D-1}`` and ``logvar_0..logvar_{D-1}``.
- ``map_png(points, labels, class_names)``: the 2-D map (the latent means themselves for a 2-D
  latent, their first two principal components otherwise) drawn as a scatter with a legend, round
  ticks and the prior's 1σ and 2σ circles, as the Latent map page draws it.
- ``write_projector(out, mu, images, labels, class_names)``: TensorBoard's projector layout
  (``tensors.tsv``, ``metadata.tsv``, ``sprite.png``, ``projector_config.pbtxt``) and the same
  embedding described for the standalone projector (``projector_config.json``): load the folder
  in TensorBoard (``tensorboard --logdir DIR``) or the two TSV files at projector.tensorflow.org.

Files are written to a temporary name and renamed, so an interrupted export never leaves a
half-written file behind under its real name.
"""
from __future__ import annotations

import csv
import io
import json
import math
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .runs import CONFIG, METRICS, WEIGHTS, RunError
from .util import atomic_write_bytes

#: The Embedding Projector refuses sprites larger than this on a side.
MAX_SPRITE_PX = 8192
#: Ten distinct colours (Tableau 10, the default of most plotting libraries); more classes cycle.
PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
           "#bab0ac"]


def run_zip(run_dir: str | Path) -> bytes:
    """The run folder's three files as a zip, inside a folder named after the run."""
    run_dir = Path(run_dir)
    missing = [n for n in (WEIGHTS, CONFIG) if not (run_dir / n).is_file()]
    if missing:
        raise RunError(f"{run_dir}: missing {' and '.join(missing)}; a run folder holds {WEIGHTS} + {CONFIG}")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in (WEIGHTS, CONFIG, METRICS, "encode.onnx", "decode.onnx", "test_images.safetensors"):
            if (run_dir / name).is_file():
                zf.write(run_dir / name, f"{run_dir.name}/{name}")
    return buf.getvalue()


def _names(labels: np.ndarray | None, class_names: list[str] | None) -> list[str] | None:
    if labels is None:
        return None
    return [class_names[int(v)] if class_names and int(v) < len(class_names) else str(int(v)) for v in labels]


def latents_csv(mu: np.ndarray, logvar: np.ndarray, labels: np.ndarray | None = None,
                class_names: list[str] | None = None) -> str:
    """One row per image: index, label and class (when labelled), the posterior means and log-variances."""
    mu, logvar = np.asarray(mu, np.float32), np.asarray(logvar, np.float32)
    if mu.shape != logvar.shape or mu.ndim != 2:
        raise ValueError(f"mu and logvar must both be [N, D], got {mu.shape} and {logvar.shape}")
    d = mu.shape[1]
    names = _names(labels, class_names)
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["index", *(["label", "class"] if names else []), *(f"mu_{j}" for j in range(d)),
                *(f"logvar_{j}" for j in range(d))])
    for i in range(mu.shape[0]):
        w.writerow([i, *([int(labels[i]), names[i]] if names else []), *(f"{v:.6g}" for v in mu[i]),
                    *(f"{v:.6g}" for v in logvar[i])])
    return out.getvalue()


def map_points(mu: np.ndarray) -> tuple[np.ndarray, tuple[str, str], tuple[float, float] | None]:
    """2-D coordinates for the map, their axis names, and where the prior's centre (z = 0) lands: z itself for
    D = 2, the first two PCs beyond (the centre then moves with the data's mean); for D = 1 there is no 2-D prior
    to draw (None)."""
    from .latent import project
    points, proj = project(mu, "pca")
    if proj.method == "identity":
        return points, ("z0", "z1"), ((0.0, 0.0) if np.asarray(mu).shape[1] == 2 else None)
    centre = proj.transform(np.zeros((1, np.asarray(mu).shape[1]), np.float32))[0]
    return points, ("PC 1", "PC 2"), (float(centre[0]), float(centre[1]))


def nice_ticks(lo: float, hi: float, target: int = 6) -> list[float]:
    """Round tick values (a 1, 2 or 5 times a power of ten apart) inside [lo, hi], about ``target`` of them."""
    span = max(hi - lo, 1e-9)
    raw = span / max(1, target)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    return [round(first + k * step, 10) for k in range(int((hi - first) / step + 1e-9) + 1)]


def _tick_text(v: float) -> str:
    return f"{v:g}" if v != 0 else "0"


def map_png(points: np.ndarray, labels: np.ndarray | None = None, class_names: list[str] | None = None, *,
            size: int = 900, axes: tuple[str, str] = ("z0", "z1"), title: str = "",
            prior_center: tuple[float, float] | None = None) -> bytes:
    """A scatter of ``points`` [N, 2] coloured by label, as PNG bytes: one scale on both axes (a circle stays a
    circle), round tick values, a legend, and, given ``prior_center``, the prior's 1σ and 2σ circles there
    (dotted and dashed, as the Latent map page draws them)."""
    points = np.asarray(points, np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points must be [N, 2], got {points.shape}")
    legend_w, margin = (110 if labels is not None else 0), 56
    img = Image.new("RGB", (size + legend_w, size), "white")
    draw = ImageDraw.Draw(img)
    finite = points[np.isfinite(points).all(1)]
    lo, hi = (finite.min(0), finite.max(0)) if len(finite) else (np.zeros(2), np.ones(2))
    if prior_center is not None:       # the whole 2-sigma circle stays on the picture
        c = np.asarray(prior_center, np.float64)
        lo, hi = np.minimum(lo, c - 2), np.maximum(hi, c + 2)
    mid, half = (lo + hi) / 2, max(float((hi - lo).max()), 1e-6) / 2 * 1.06
    lo, hi = mid - half, mid + half
    inner = size - 2 * margin

    def to_px(p: np.ndarray) -> np.ndarray:
        t = (p - lo) / (hi - lo)
        return np.stack([margin + t[..., 0] * inner, size - margin - t[..., 1] * inner], -1)

    draw.rectangle([margin, margin, size - margin, size - margin], outline="#888888")
    for axis in (0, 1):  # round ticks with their values on both axes
        for v in nice_ticks(lo[axis], hi[axis]):
            t = margin + (v - lo[axis]) / (hi[axis] - lo[axis]) * inner
            text = _tick_text(v)
            if axis == 0:
                draw.line([t, size - margin, t, size - margin + 5], fill="#888888")
                draw.text((t - 3 * len(text), size - margin + 8), text, fill="#333333")
            else:
                y = size - t
                draw.line([margin - 5, y, margin, y], fill="#888888")
                draw.text((margin - 9 - 6 * len(text), y - 6), text, fill="#333333")
    draw.text((size / 2 - 10, size - 18), axes[0], fill="#000000")
    draw.text((4, margin - 24), axes[1], fill="#000000")
    if title:
        draw.text((margin, 10), title, fill="#000000")
    if prior_center is not None:
        _prior_circles(draw, to_px, prior_center, inner / (hi[0] - lo[0]))
    px = to_px(points)
    classes = np.unique(labels) if labels is not None else np.array([0])
    for c in classes:
        colour = PALETTE[int(c) % len(PALETTE)] if labels is not None else "#4e79a7"
        for x, y in px[(labels == c) if labels is not None else slice(None)]:
            if np.isfinite(x) and np.isfinite(y):
                draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)
    if labels is not None:
        names = _names(classes, class_names)
        for row, (c, name) in enumerate(zip(classes, names)):
            y = margin + 18 * row
            draw.ellipse([size + 6, y + 2, size + 16, y + 12], fill=PALETTE[int(c) % len(PALETTE)])
            draw.text((size + 22, y), name[:14], fill="#000000")
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _prior_circles(draw: ImageDraw.ImageDraw, to_px, centre: tuple[float, float], px_per_unit: float) -> None:
    """The prior's 1σ (dotted) and 2σ (dashed) circles, labelled "1 sd" and "2 sd", in grey."""
    cx, cy = to_px(np.asarray(centre, np.float64))
    for r, dash in ((1, 4), (2, 10)):
        rad = r * px_per_unit
        n = max(24, int(2 * math.pi * rad / dash))
        for k in range(0, n, 2):                      # every other segment: a dashed outline
            a0, a1 = 2 * math.pi * k / n, 2 * math.pi * (k + 1) / n
            draw.line([cx + rad * math.cos(a0), cy - rad * math.sin(a0), cx + rad * math.cos(a1),
                       cy - rad * math.sin(a1)], fill="#808080", width=2)
        draw.text((cx + rad * 0.72 + 4, cy - rad * 0.72 - 14), f"{r} sd", fill="#808080")   # PIL's font has no σ


def sprite(images: np.ndarray) -> tuple[bytes, int]:
    """Thumbnails [N, C, H, W] in [0, 1] tiled row by row into one square PNG; returns (png, thumbnail side).

    Thumbnails shrink (by whole-pixel steps) when N of them would exceed the projector's 8192 px limit."""
    images = np.asarray(images, np.float32)
    n, c, h, w = images.shape
    per_row = max(1, math.ceil(math.sqrt(n)))
    side = h
    while per_row * side > MAX_SPRITE_PX and side > 1:
        side -= 1
    tiles = (np.clip(images, 0, 1) * 255).round().astype(np.uint8).transpose(0, 2, 3, 1)
    mode = "L" if c == 1 else "RGB"
    sheet = Image.new(mode, (per_row * side, per_row * side), 0)
    for i in range(n):
        t = Image.fromarray(tiles[i, ..., 0] if c == 1 else tiles[i], mode)
        if side != h:
            t = t.resize((side, side), Image.Resampling.BILINEAR)
        r, col = divmod(i, per_row)
        sheet.paste(t, (col * side, r * side))
    buf = io.BytesIO()
    sheet.save(buf, format="PNG", optimize=True)
    return buf.getvalue(), side


def write_projector(out: str | Path, mu: np.ndarray, images: np.ndarray | None = None,
                    labels: np.ndarray | None = None, class_names: list[str] | None = None,
                    name: str = "vae-latent-means") -> list[Path]:
    """Write the Embedding Projector folder; returns the files written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    mu = np.asarray(mu, np.float32)
    files = {"tensors.tsv": "\n".join("\t".join(f"{v:.6g}" for v in row) for row in mu).encode() + b"\n"}
    names = _names(labels, class_names)
    if names is not None:
        # two columns need a header row (one column must not have one): index and class
        rows = ["index\tlabel"] + [f"{i}\t{n}" for i, n in enumerate(names)]
        files["metadata.tsv"] = ("\n".join(rows) + "\n").encode()
    embedding = {"tensorName": name, "tensorShape": list(mu.shape), "tensorPath": "tensors.tsv"}
    pbtxt = [f'  tensor_name: "{name}"', '  tensor_path: "tensors.tsv"']
    if names is not None:
        embedding["metadataPath"] = "metadata.tsv"
        pbtxt.append('  metadata_path: "metadata.tsv"')
    if images is not None:
        if len(images) != len(mu):
            raise ValueError(f"{len(images)} images for {len(mu)} codes; the sprite needs one per code")
        files["sprite.png"], side = sprite(images)
        embedding["sprite"] = {"imagePath": "sprite.png", "singleImageDim": [side, side]}
        pbtxt += ["  sprite {", '    image_path: "sprite.png"', f"    single_image_dim: {side}",
                  f"    single_image_dim: {side}", "  }"]
    files["projector_config.pbtxt"] = ("embeddings {\n" + "\n".join(pbtxt) + "\n}\n").encode()
    files["projector_config.json"] = (json.dumps({"embeddings": [embedding]}, indent=1) + "\n").encode()
    written = []
    for fname, blob in files.items():
        atomic_write_bytes(out / fname, blob)
        written.append(out / fname)
    return written


def export_run(run, test, class_names: list[str] | None, to: str | Path, *, max_images: int = 10_000) -> dict:
    """Everything above for a loaded ``vae.runs.Run`` and its test images (``ImageData`` or None) into ``to``:
    ``<run>.zip`` always; ``latents.csv``, ``map.png`` and ``projector/`` when there are test images.
    Returns ``{"files": [paths], "images": n}``."""
    if run.path is None:
        raise RunError("the run has no folder to zip; save it first")
    to = Path(to)
    if to.exists() and not to.is_dir():
        raise RunError(f"--to {to} is a file; give a folder (it is created if missing)")
    to.mkdir(parents=True, exist_ok=True)
    files = [to / f"{run.path.name}.zip"]
    atomic_write_bytes(files[0], run_zip(run.path))
    n = 0
    if test is not None and len(test):
        n = min(len(test), max_images)
        x = test.x[:n]
        labels = None if test.y is None else test.y[:n].numpy()
        codes = run.encode(x, None if labels is None else test.y[:n])
        atomic_write_bytes(to / "latents.csv", latents_csv(codes["mu"], codes["logvar"], labels, class_names).encode())
        points, axes, centre = map_points(codes["mu"])
        atomic_write_bytes(to / "map.png", map_png(points, labels, class_names, axes=axes, prior_center=centre,
                                                   title=f"{run.path.name}: {n:,} test images"))
        files += [to / "latents.csv", to / "map.png"]
        files += write_projector(to / "projector", codes["mu"], x.numpy().astype(np.float32) / 255.0, labels,
                                 class_names)
    return {"files": [str(f) for f in files], "images": n}
