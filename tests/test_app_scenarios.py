"""AppTest: a guided experiment set up from Home starts on the Train page, and the Doctor's verdict follows."""
from __future__ import annotations

import json

from app_support import make_env, open_app, poll, texts

from ui import scenarios, train_panel


def test_each_scenario_sets_up_its_settings_and_starts(monkeypatch, tmp_path):
    runs = make_env(monkeypatch, tmp_path)
    at = open_app()
    assert [b.proto.label for b in at.button if b.key.startswith("home.scenario_button.")] == \
        ["Set up and start"] * len(scenarios.SCENARIOS)
    monkeypatch.setattr(train_panel, "QUICK_SECONDS", 3)        # a short run: this test is about the wiring
    at.button(key="home.scenario_button.free_bits").click().run()
    assert not at.exception, at.exception
    assert texts(at.title) == ["Train"]
    beta = scenarios.COLLAPSE_BETA
    assert at.text_input(key="train.beta").value == f"{beta:g}" and at.text_input(key="train.free_bits").value == "0.5"
    assert at.text_input(key="train.latent_dim").value == "8" and at.text_input(key="train.time_budget").value == "3"
    assert any("Guided experiment: Free bits to the rescue" in i.value for i in at.info)

    def done(a):
        return any("The Doctor's verdict" in t for t in texts(a.markdown))
    poll(at, done, timeout=120)
    [run] = [p for p in runs.iterdir() if (p / "metrics.json").is_file()]
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["train"]["beta"] == beta and cfg["train"]["free_bits"] == 0.5 and cfg["model"]["latent_dim"] == 8
    assert cfg["train"]["time_budget"] == 3
    # a run of one's own started afterwards: the experiment's banner and verdict go
    at.button(key="train.start").click().run()
    assert not any("Guided experiment" in i.value for i in at.info), [i.value for i in at.info]
    at.button(key="train.stop").click().run()
    assert not at.exception


def test_blurry_sets_the_gaussian_sigma(monkeypatch, tmp_path):
    make_env(monkeypatch, tmp_path)
    at = open_app()
    monkeypatch.setattr(train_panel, "QUICK_SECONDS", 2)
    at.button(key="home.scenario_button.blurry").click().run()
    assert at.session_state["train.likelihood"] == "gaussian" and at.text_input(key="train.gaussian_sigma").value == "1"
    at.button(key="train.stop").click().run()
    assert not at.exception


def test_a_stopped_first_run_leaves_the_second_to_start_by_hand_within_the_experiment(monkeypatch, tmp_path):
    """The two-run experiment: Stop on its first run puts the second run's settings in the form without starting it,
    says so, and the Start pressed for it keeps the experiment's banner (any other Start by hand ends it)."""
    runs = make_env(monkeypatch, tmp_path)
    monkeypatch.setitem(scenarios.DIMENSIONS.settings, "train.time_budget", 150)   # stopped long before
    at = open_app()
    at.button(key="home.scenario_button.dims").click().run()
    assert not at.exception, at.exception
    poll(at, lambda a: any(b.key == "train.stop" and not b.disabled for b in a.button), timeout=60)
    poll(at, lambda a: any((p / "snapshots").is_dir() for p in runs.iterdir()), timeout=120)   # an epoch kept
    at.button(key="train.stop").click().run()

    def asked(a):
        return any("You stopped the first run" in i.value for i in a.info)
    poll(at, asked, timeout=120)
    assert at.session_state["train.objective"] == "btcvae", "the second run's settings are in the form"
    assert len([p for p in runs.iterdir() if p.is_dir()]) == 1, "the second run did not start by itself"
    at.button(key="train.start").click().run()
    assert not at.exception, at.exception
    assert any("Guided experiment: Make the dimensions mean something** (run 2 of 2)" in i.value for i in at.info), \
        [i.value for i in at.info]
    assert len([p for p in runs.iterdir() if p.is_dir()]) == 2
    at.button(key="train.stop").click().run()
    assert not at.exception
