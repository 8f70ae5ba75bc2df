"""AppTest: a guided experiment set up from Home starts on the Train page, and the Doctor's verdict follows."""
from __future__ import annotations

import json

from app_support import make_env, open_app, poll, texts

from ui import scenarios


def test_each_scenario_sets_up_its_settings_and_starts(monkeypatch, tmp_path):
    runs = make_env(monkeypatch, tmp_path)
    at = open_app()
    assert [b.proto.label for b in at.button if b.key.startswith("home.scenario_button.")] == \
        ["Set up and start"] * len(scenarios.SCENARIOS)
    monkeypatch.setattr(scenarios, "SECONDS", 3)        # a short run: this test is about the wiring
    at.button(key="home.scenario_button.free_bits").click().run()
    assert not at.exception, at.exception
    assert texts(at.title) == ["Train"]
    assert at.session_state["train.beta"] == 20.0 and at.session_state["train.free_bits"] == 0.5
    assert at.session_state["train.latent_dim"] == 8 and at.session_state["train.time_budget"] == 3
    assert any("Guided experiment: Free bits to the rescue" in i.value for i in at.info)

    def done(a):
        return any("The Doctor's verdict" in t for t in texts(a.markdown))
    poll(at, done, timeout=120)
    [run] = [p for p in runs.iterdir() if (p / "metrics.json").is_file()]
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["train"]["beta"] == 20.0 and cfg["train"]["free_bits"] == 0.5 and cfg["model"]["latent_dim"] == 8
    assert cfg["train"]["time_budget"] == 3


def test_blurry_sets_the_gaussian_sigma(monkeypatch, tmp_path):
    make_env(monkeypatch, tmp_path)
    at = open_app()
    monkeypatch.setattr(scenarios, "SECONDS", 2)
    at.button(key="home.scenario_button.blurry").click().run()
    assert at.session_state["train.likelihood"] == "gaussian" and at.session_state["train.gaussian_sigma"] == 1.0
    assert at.number_input(key="train.gaussian_sigma").value == 1.0
    at.button(key="train.stop").click().run()
    assert not at.exception
