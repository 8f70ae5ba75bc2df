"""The view in the URL: a teacher copies the address bar and every student opens the same view.

The page is the URL's path (``st.navigation``); the query string carries the active run (``run``, its folder
name), the Inside page's test image (``i``), the Latent map's clicked points (``points``) and the Sliders'
point (``z``). A value from the URL is applied once per session, on the first page run that reads it;
after that the pages write their state back, so the address bar always shows the current view. A value that
does not fit (no such run, a test image out of range) is ignored with one line at the top of the page, kept
until the person moves to another page.
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


def begin(notice, page: str) -> None:
    """app.py, before the sidebar and the page: ``notice`` (a container at the top of the page) shows what a link
    asked for and this session ignored, while the person stays on ``page``."""
    kept = [(p, line) for p, line in st.session_state.get(S.LINK_IGNORED, []) if p == page]
    st.session_state[S.LINK_IGNORED] = kept
    st.session_state[S.LINK_NOTICE] = (notice, page)
    for _, line in kept:
        notice.warning(line, icon=":material/link_off:")


def restore(param: str, apply: Callable[[str], None], accepts: str) -> None:
    """Call ``apply(value)`` with the URL's ``param`` once per session. A value it refuses (ValueError, KeyError,
    ...) changes nothing, and one line says what was ignored and what ``param`` ``accepts``."""
    value = take(param)
    if value is None:
        return
    try:
        apply(value)
    except (ValueError, TypeError, KeyError, IndexError):
        shown = value if len(value) <= 40 else value[:37] + "…"
        line = f"The link's {param}={shown} was ignored: {param} takes {accepts}."
        notice, page = st.session_state.get(S.LINK_NOTICE, (st, ""))
        st.session_state.setdefault(S.LINK_IGNORED, []).append((page, line))
        notice.warning(line, icon=":material/link_off:")


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
