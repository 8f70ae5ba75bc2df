"""AppTest: the view lives in the URL: run, test image, clicked points and the Sliders' point come back."""
from __future__ import annotations

from app_support import APP, make_env, texts
from streamlit.testing.v1 import AppTest


def _open(page: str, **params) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    for k, v in params.items():
        at.query_params[k] = v
    at.run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def test_a_link_opens_the_run_and_the_test_image(monkeypatch, tmp_path):
    make_env(monkeypatch, tmp_path)
    at = _open("app_pages/inside.py", run="mnist-16d", i="42")
    assert at.sidebar.selectbox(key="app.run").value.endswith("mnist-16d")
    assert at.number_input(key="inside.index").value == 42
    assert any(c.startswith("Following test image #42") for c in texts(at.caption))
    assert at.query_params["run"] == "mnist-16d" and at.query_params["i"] == "42"
    at.number_input(key="inside.index").set_value(7).run()
    assert at.query_params["i"] == "7", "the address follows the view"


def test_bad_link_values_are_ignored_with_one_line_each(monkeypatch, tmp_path):
    make_env(monkeypatch, tmp_path)
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.query_params["run"], at.query_params["i"] = "no-such-run", "999999"
    at.run()                                   # the first page a link opens takes its run
    assert at.sidebar.selectbox(key="app.run").value.endswith("mnist-2d")
    assert texts(at.main.warning) == ["The link's run=no-such-run was ignored: run takes the folder name of a run "
                                      "in the Active run list."]
    at.run()
    assert len(at.main.warning) == 1, "the line stays while the person stays on the page"
    at.switch_page("app_pages/inside.py").run()
    assert at.number_input(key="inside.index").value == 0
    assert texts(at.main.warning) == ["The link's i=999999 was ignored: i takes a test image number 0..499."]
    at.switch_page("app_pages/generate.py").run()
    assert not at.main.warning


def test_clicked_points_and_the_sliders_point_come_back(monkeypatch, tmp_path):
    make_env(monkeypatch, tmp_path)
    at = _open("app_pages/latent_map.py", points="3,42")
    caps = [c for img in at.get("image") for c in img.captions]
    assert "Linear: 10 frames from #3 (left) to #42 (right)" in caps
    assert at.query_params["points"] == "3,42"
    at = _open("app_pages/sliders.py", z="1.5,-0.5")
    assert "Starting from the precise values you sent." in texts(at.caption)
    assert at.query_params["z"] == "1.500,-0.500"
