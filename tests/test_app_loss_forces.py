"""AppTest: the Loss forces page steps its own copy of the model, with β taking effect at the next step."""
from __future__ import annotations

import json
import re

import pytest
from app_support import make_env, open_app, pick_run, texts


def _map(at) -> dict:
    """What the page sent the map component (ui/forces_map.js draws it)."""
    el = next(e for e in at.main if getattr(e, "key", None) == "step.map")
    assert el.proto.component_name == "vae_lab_forces_map"
    return json.loads(el.proto.json)


def _step(at) -> tuple[int, float]:
    cap = next(c for c in texts(at.caption) if c.startswith("Step "))
    m = re.match(r"Step (\d+) · β = ([\d.e+-]+)", cap)
    return int(m.group(1)), float(m.group(2))



def test_steps_and_beta_and_reset(monkeypatch, tmp_path):
    make_env(monkeypatch, tmp_path)
    at = open_app("app_pages/loss_forces.py")
    assert texts(at.title) == ["Loss forces"] and not at.exception
    assert _step(at) == (0, 1.0)
    drawn = _map(at)
    assert [a["name"] for a in drawn["arrows"]] == ["reconstruction push", "KL push (× β)", "sum"]
    assert drawn["step"] == 0 and len(drawn["mu"]["x"]) == 64 and len(drawn["probe"]["x"]) == 300
    before = drawn["mu"]
    at.button(key="step.one").click().run()
    assert _step(at)[0] == 1 and _map(at)["step"] == 1
    assert _map(at)["mu"] != before, "the next batch's codes are drawn"
    at.button(key="step.ten").click().run()
    assert _step(at)[0] == 11
    assert any("**Last step** (β = 1)" in t for t in texts(at.markdown))
    at.number_input(key="step.beta").set_value(40.0).run()
    assert _step(at) == (11, 40.0), "β changes the arrows now and the next step, without a reset"
    at.button(key="step.one").click().run()
    assert any("**Last step** (β = 40)" in t for t in texts(at.markdown))
    at.multiselect(key="step.shown").set_value(["KL"]).run()
    assert [a["name"] for a in _map(at)["arrows"]] == ["KL push (× β)"]
    at.button(key="step.reset").click().run()
    assert _step(at)[0] == 0 and not at.exception


def test_the_locked_view_keeps_its_axes_while_beta_collapses_the_codes(monkeypatch, tmp_path):
    make_env(monkeypatch, tmp_path)
    at = open_app("app_pages/loss_forces.py")
    assert at.toggle(key="step.lock_view").value, "locked by default"
    view = _map(at)["view"]
    assert view[0] <= -3 and view[1] >= 3 and view[0] == -view[1] == view[2] == -view[3]
    at.number_input(key="step.beta").set_value(8.0).run()
    for _ in range(2):
        at.button(key="step.ten").click().run()
    assert _step(at) == (20, 8.0) and _map(at)["view"] == view, "the axes stay while the codes move"
    at.toggle(key="step.lock_view").set_value(False).run()
    assert _map(at)["view"] != view, "unlocked, the view fits the codes"
    at.toggle(key="step.lock_view").set_value(True).run()
    assert _map(at)["view"] == view
    assert any("all are shrunk by one factor" in c for c in texts(at.caption))


def test_a_16d_run_steps_an_untrained_2d_model(monkeypatch, tmp_path):
    make_env(monkeypatch, tmp_path)
    at = open_app("app_pages/loss_forces.py")
    pick_run(at, "mnist-16d")
    assert any("starts from an untrained 2-D model" in i.value for i in at.info)
    at.button(key="step.one").click().run()
    assert _step(at)[0] == 1 and not at.exception


def test_the_map_data_holds_every_push_scaled_and_the_prior():
    """The longest sum is drawn 0.6 units long, each term with the same scale, the sum is their total, and the
    view holds every code, every tip and the prior's 2-sigma circle (a collapse is seen shrinking, not zoomed)."""
    import numpy as np

    from ui.stepper_view import forces_data
    from vae.stepper import Forces
    mu = np.array([[0.0, 0.0], [0.1, 0.1], [0.2, -0.1]])
    recon = np.array([[0.0, 3.0], [3.0, 0.0], [-1.0, 0.0]])
    kl = -2 * mu
    probe = np.array([[5.0, -1.0], [0.0, 0.0]])
    data, scale = forces_data(probe, np.array([7, 1]), Forces(np.arange(3), mu, recon, kl, None),
                              ["reconstruction", "KL", "sum"], 4)
    longest = np.linalg.norm(recon + kl, axis=1).max()
    assert scale == 0.6 / longest
    by = {a["name"]: np.stack([a["dx"], a["dy"]], 1) for a in data["arrows"]}
    np.testing.assert_allclose(by["reconstruction push"], recon * scale, atol=1e-4)
    np.testing.assert_allclose(by["KL push (× β)"], kl * scale, atol=1e-4)
    np.testing.assert_allclose(by["sum"], (recon + kl) * scale, atol=1e-4)
    assert np.linalg.norm(by["sum"], axis=1).max() == pytest.approx(0.6, abs=1e-3)
    x0, x1, y0, y1 = data["view"]
    assert x0 < -2.2 and y0 < -2.2 and y1 > 2.2 and x1 > 5.0, "the prior's circle and the far test code"
    assert data["probe"]["c"] == [7, 1] and data["step"] == 4
    only, _ = forces_data(probe, None, Forces(np.arange(3), mu, recon, kl, None), ["sum"], 4)
    assert [a["name"] for a in only["arrows"]] == ["sum"] and only["probe"]["c"] == [-1, -1]
    nan = float("nan")           # a diverged step: JSON has no NaN, so the map gets null and skips the point
    bad, _ = forces_data(np.array([[nan, nan]]), None, Forces(np.arange(1), np.array([[nan, 0.0]]),
                                                              np.array([[nan, 1.0]]), np.zeros((1, 2)), None),
                         ["sum"], 5)
    json.dumps(bad, allow_nan=False)
    assert bad["mu"]["x"] == [None] and bad["view"] == pytest.approx([-2.42, 2.42, -2.42, 2.42])
