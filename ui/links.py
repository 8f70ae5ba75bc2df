"""The view in the URL: a teacher copies the address bar and every student opens the same view.

The page is the URL's path (``st.navigation``); the query string carries the active run (``run``, its folder
name), the Inside page's test image (``i``), the Latent map's clicked points (``points``) and the Sliders'
point (``z``). A value from the URL is applied once per session, on the first page run that reads it;
after that the pages write their state back, so the address bar always shows the current view.
"""
from __future__ import annotations

from typing import Callable

import streamlit as st

from . import state as S


def take(param: str) -> str | None:
    """The URL's value of ``param`` the first time this session asks (None after, or when absent)."""
    done = st.session_state.setdefault(S.LINK_TAKEN, set())
    if param in done:
        return None
    done.add(param)
    value = st.query_params.get(param)
    return value if isinstance(value, str) and value.strip() else None


def restore(param: str, apply: Callable[[str], None]) -> None:
    """Call ``apply(value)`` with the URL's ``param`` once per session; a value it refuses (ValueError) is ignored."""
    value = take(param)
    if value is not None:
        try:
            apply(value)
        except (ValueError, TypeError, KeyError, IndexError):
            pass


def publish(param: str, value: str | None) -> None:
    """Show ``value`` as ``param`` in the address bar (None removes it)."""
    if value is None:
        if param in st.query_params:
            del st.query_params[param]
    elif st.query_params.get(param) != value:
        st.query_params[param] = value


def floats(text: str, n: int) -> list[float]:
    """``n`` comma-separated finite numbers (raises ValueError otherwise)."""
    vals = [float(v) for v in text.split(",")]
    if len(vals) != n or any(v != v or abs(v) == float("inf") for v in vals):
        raise ValueError(f"expected {n} finite numbers")
    return vals
