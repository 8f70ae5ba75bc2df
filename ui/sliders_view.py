"""Glue for the Sliders page: where the sliders start, and the points a user keeps."""
from __future__ import annotations

import numpy as np
import streamlit as st

from vae.data import ImageData
from vae.runs import Run

from . import compute, state

ZERO, PRIOR, TEST = "Zero", "Prior sample", "Test image"
STARTS = [ZERO, PRIOR, TEST]
MAX_SLIDERS = 16        # larger latents show the 16 most informative dimensions unless asked


def forget_custom_start(run_key: str) -> None:
    st.session_state.get(state.SLIDERS_Z0, {}).pop(run_key, None)


def next_seed() -> None:
    st.session_state[state.SLIDERS_SEED] = int(st.session_state.get(state.SLIDERS_SEED, 0)) + 1


def start_point(run: Run, run_key: str, start: str, test: ImageData | None,
                dkey) -> tuple[list[float], int | None, str]:
    """(z0, label0, one line saying where the sliders start)."""
    m = run.config.model
    custom = st.session_state.get(state.SLIDERS_Z0, {}).get(run_key)
    if custom is not None:
        return list(custom["z"]), custom["label"], "Starting from the precise values you sent."
    if start == PRIOR:
        seed = int(st.session_state.get(state.SLIDERS_SEED, 0))
        labels = (0,) if m.conditional else None
        z, _ = compute.prior_samples(run.model, run_key, 1, seed, 1.0, labels)
        return [float(v) for v in z[0]], None, f"Starting from a random draw z ~ N(0, I) (seed {seed})."
    if start == TEST and test is not None:
        i = int(min(st.session_state.get(state.SLIDERS_INDEX, 0), len(test) - 1))
        mu = compute.encode(run.model, test, run_key, str(dkey))["mu"][i]
        label = int(test.y[i]) if (m.conditional and test.y is not None) else None
        return [float(v) for v in mu], label, f"Starting from the latent mean of test image #{i}."
    return [0.0] * m.latent_dim, None, "Starting from z = 0, the centre of the prior."


def saved_points(run_key: str) -> list[dict]:
    return state.per_run(state.SHARED_SAVED, run_key, [])


def save_point(run_key: str, z: list[float], label: int | None) -> None:
    pts = saved_points(run_key)
    pts.append({"name": f"P{len(pts) + 1}", "z": [float(v) for v in z], "label": label})
    del pts[:-12]


def clear_saved(run_key: str) -> None:
    saved_points(run_key).clear()


def set_end(run_key: str, which: str, z: list[float], label: int | None) -> None:
    ends = state.per_run(state.SHARED_ENDS, run_key, {})
    ends[which] = {"z": [float(v) for v in z], "label": label}
    if "A" in ends and "B" in ends:
        from .map_view import SLIDERS
        st.session_state[state.MAP_ENDS_FROM] = SLIDERS


def init_precise(run_key: str, z: list[float]) -> dict[int, str]:
    """Number-input keys per dimension, each initialised once from the committed z."""
    keys = {i: state.precise_key(run_key, i) for i in range(len(z))}
    for i, k in keys.items():
        if k not in st.session_state:
            st.session_state[k] = float(np.round(z[i], 3))
    return keys


def send_precise(run_key: str, z: list[float], label: int | None) -> None:
    st.session_state.setdefault(state.SLIDERS_Z0, {})[run_key] = {"z": [float(v) for v in z], "label": label}
