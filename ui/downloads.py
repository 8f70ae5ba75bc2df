"""The Export panel: the active run and its codes as files, the same ones ``python -m vae export`` writes, and its
decoder as the in-browser decoder's JSON (or one line saying why it has none).

Each download is built when its button is pressed (Streamlit calls the function then, on its own
thread), so drawing the page costs nothing; the projector's sprite of 10,000 thumbnails is the
slowest at about a second.
"""
from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import streamlit as st

from vae import bundle
from vae.data import ImageData
from vae.export import spec_bytes
from vae.runs import Run

from . import state as S
from .catalogue import RunEntry


def _projector_zip(mu: np.ndarray, test: ImageData, names: list[str] | None) -> bytes:
    with tempfile.TemporaryDirectory(prefix="vae-lab-projector-") as tmp:
        files = bundle.write_projector(tmp, mu, test.x.numpy().astype(np.float32) / 255.0,
                                       None if test.y is None else test.y.numpy(), names)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for f in files:
                zf.write(f, f"projector/{Path(f).name}")
    return buf.getvalue()


def decoder_export(entry: RunEntry, run: Run) -> None:
    """The decoder as the in-browser decoder's JSON spec (what the Sliders run in the browser; ``vae.export`` describes
    the format), or one line saying why this decoder has none."""
    from .live_decoder import cached_spec
    spec, reason = cached_spec(entry.key, run.model)
    if spec is None:
        st.caption(f"No browser decoder to export: {reason}.")
        return
    st.download_button("Decoder for the browser (.json)", lambda: spec_bytes(spec), f"{Path(entry.path).name}-"
                       "decoder.json", "application/json", on_click="ignore", icon=":material/code:",
                       key=f"{S.MAP_EXPORT}.decoder")


def panel(entry: RunEntry, run: Run, test: ImageData | None, enc: dict[str, np.ndarray] | None,
          names: list[str] | None) -> None:
    """Download buttons for the run (zip), and, with test codes ``enc``, the CSV, the map PNG and the projector."""
    with st.expander("Export this run", icon=":material/download:"):
        st.caption("The run as a zip (upload it on another VAE Lab), the test images' latent means and labels as "
                   "CSV, this map as a PNG, and a folder for the Embedding Projector (TensorBoard, or load its two "
                   ".tsv files at projector.tensorflow.org) with each point's digit as its thumbnail. "
                   f"From the command line: `python -m vae export RUN_DIR --to DIR`, where RUN_DIR is this run's "
                   f"folder ({entry.name}, in the app's runs folder or, for a demo run, assets/runs).")
        if run.config.kind == "tracked":
            st.caption("This run's zip holds its ONNX programs (encode.onnx, decode.onnx): a VAE Lab serving a class "
                       "takes it as an upload only where its operator allows stored programs.")
        cols = st.columns(4)
        stem = Path(entry.path).name
        if run.path is not None:
            cols[0].download_button("Run (.zip)", lambda: bundle.run_zip(run.path), f"{stem}.zip", "application/zip",
                                    on_click="ignore", icon=":material/folder_zip:", key=f"{S.MAP_EXPORT}.run")
        decoder_export(entry, run)
        if test is None or enc is None:
            st.caption("No test images fit this run, so only the run itself can be exported.")
            return
        labels = None if test.y is None else test.y.numpy()
        mu, logvar = enc["mu"], enc["logvar"]

        def map_png() -> bytes:
            points, axes, centre = bundle.map_points(mu)
            return bundle.map_png(points, labels, names, axes=axes, prior_center=centre,
                                  title=f"{stem}: {len(mu):,} test images")

        cols[1].download_button("Latent means (.csv)", lambda: bundle.latents_csv(mu, logvar, labels, names),
                                f"{stem}-latents.csv", "text/csv", on_click="ignore", icon=":material/table:",
                                key=f"{S.MAP_EXPORT}.csv")
        cols[2].download_button("Map (.png)", map_png, f"{stem}-map.png", "image/png", on_click="ignore",
                                icon=":material/image:", key=f"{S.MAP_EXPORT}.png")
        cols[3].download_button("Embedding Projector (.zip)", lambda: _projector_zip(mu, test, names),
                                f"{stem}-projector.zip", "application/zip", on_click="ignore",
                                icon=":material/hub:", key=f"{S.MAP_EXPORT}.projector")
