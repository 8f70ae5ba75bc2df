"""AppTest: the Loss forces page steps its own copy of the model, with β taking effect at the next step."""
from __future__ import annotations

import json
import re

from app_support import make_env, open_app, pick_run, texts


def _step(at) -> tuple[int, float]:
    cap = next(c for c in texts(at.caption) if c.startswith("Step "))
    m = re.match(r"Step (\d+) · β = ([\d.e+-]+)", cap)
    return int(m.group(1)), float(m.group(2))



def test_steps_and_beta_and_reset(monkeypatch, tmp_path):
    make_env(monkeypatch, tmp_path)
    at = open_app("app_pages/loss_forces.py")
    assert texts(at.title) == ["Watch each loss term push"] and not at.exception
    assert _step(at) == (0, 1.0)
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert {t.get("name") for t in spec["data"]} >= {"reconstruction push", "KL push (× β)", "sum"}
    at.button(key="step.one").click().run()
    assert _step(at)[0] == 1
    at.button(key="step.ten").click().run()
    assert _step(at)[0] == 11
    assert any("**Last step** (β = 1)" in t for t in texts(at.markdown))
    at.number_input(key="step.beta").set_value(40.0).run()
    assert _step(at) == (11, 40.0), "β changes the arrows now and the next step, without a reset"
    at.button(key="step.one").click().run()
    assert any("**Last step** (β = 40)" in t for t in texts(at.markdown))
    at.multiselect(key="step.shown").set_value(["KL"]).run()
    names = {t.get("name") for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]}
    assert "KL push (× β)" in names and "sum" not in names
    at.button(key="step.reset").click().run()
    assert _step(at)[0] == 0 and not at.exception


def test_a_16d_run_steps_an_untrained_2d_model(monkeypatch, tmp_path):
    make_env(monkeypatch, tmp_path)
    at = open_app("app_pages/loss_forces.py")
    pick_run(at, "mnist-16d")
    assert any("starts from an untrained 2-D model" in i.value for i in at.info)
    at.button(key="step.one").click().run()
    assert _step(at)[0] == 1 and not at.exception


def test_arrows_are_one_line_and_turned_heads_per_term():
    """Shafts as one line trace (no per-point markers for the browser to style), heads as markers at the tips,
    turned clockwise from up along each push, in the same legend group."""
    import numpy as np

    from ui.stepper_view import _arrows
    start = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, -1.0]])
    vec = np.array([[0.0, 1.0], [1.0, 0.0], [-1.0, 0.0]])
    shaft, heads = _arrows(start, vec, "sum", "#000", 3)
    assert shaft["mode"] == "lines" and shaft["x"] == [0.0, 0.0, None, 1.0, 2.0, None, 2.0, 1.0, None]
    assert heads["mode"] == "markers" and heads["showlegend"] is False
    assert heads["x"] == [0.0, 2.0, 1.0] and heads["y"] == [1.0, 1.0, -1.0]        # the tips
    assert heads["marker"]["angle"] == [0.0, 90.0, -90.0]                         # up, right, left
    assert shaft["legendgroup"] == heads["legendgroup"] == "sum"
