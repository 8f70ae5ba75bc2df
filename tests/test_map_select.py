"""The latent map's click callback reads a selection the browser sends: a point id that is not one of the map's test
images or holes (a forged message: a path, a huge number, a float, nothing) is ignored, never a traceback."""
import streamlit as st

from ui import map_view, state


def _select(customdata, n_points=100, n_holes=2) -> None:
    st.session_state[state.MAP_CHART] = {"selection": {"points": [{"customdata": customdata}]}}
    map_view.on_select("run", n_points, n_holes)


def test_forged_point_ids_are_ignored_and_real_ones_kept():
    for forged in ("../../etc", 10**30, -10**30, None, [], ["x"], 3.5e300, float("inf"), "nan", {"a": 1}, 100, -3):
        _select(forged)
    assert map_view.clicks("run") == [] and map_view.clicked_hole("run") is None
    _select(7)
    _select([42])
    _select(-2)                                        # the second hole
    assert map_view.clicks("run") == [7, 42] and map_view.clicked_hole("run") == 1
