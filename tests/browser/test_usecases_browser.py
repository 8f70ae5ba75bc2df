"""The Use cases and Doctor pages in Chromium: tabs render without an exception, the anomaly
section shows the active run's worst test images, the doctor flags a collapsed run and its
button starts the suggested run."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import new_page, settle

from labkit.appserver import app_server

APP = Path(__file__).resolve().parent / "apps" / "usecases_app.py"
EXC = "[data-testid='stException']"


def _collapsed_run(folder: Path) -> None:
    from vae.config import DataConfig, ModelConfig, RunConfig, TrainConfig
    from vae.data import load_dataset
    from vae.evaluate import evaluate
    from vae.runs import save_run
    from vae.train import fit
    data = load_dataset("mnist5k", max_train=500, max_test=100)
    cfg = RunConfig(model=ModelConfig(latent_dim=4, hidden=(64,)),
                    train=TrainConfig(epochs=2, batch_size=64, beta=60.0, threads=1),
                    data=DataConfig(name="mnist5k", max_train=500, max_test=100))
    r = fit(cfg, data)
    save_run(folder / "collapsed", r.model, cfg, {"status": r.status, "message": r.message, "history": r.history,
                                                  "final": evaluate(r.model, data.test)})


@pytest.fixture(scope="module")
def app_url(browser, tmp_path_factory):
    demos = tmp_path_factory.mktemp("demos")
    runs = tmp_path_factory.mktemp("runs")
    results = tmp_path_factory.mktemp("results")
    _collapsed_run(demos)
    (results / "semisup_k100.json").write_text(json.dumps(
        {"labels": 100, "test_error": 0.0957, "baseline_test_error": 0.2397, "minutes": 15.9, "m1_minutes": 3.9}))
    env = {"VAE_LAB_RUNS_DIR": str(runs), "VAE_LAB_DEMO_DIR": str(demos), "VAE_LAB_RESULTS_DIR": str(results),
           "VAE_LAB_THREADS": "1", "VAE_LAB_HEARTBEAT_S": "5"}
    with app_server(APP, env=env) as url:
        yield url, runs



def test_use_cases_tabs_and_anomalies(browser, app_url):
    url, _ = app_url
    page = new_page(browser, url, wait_for="[data-testid='stMain'] h1")
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.locator("[data-testid='stMain'] h1", has_text="Use cases").wait_for()
    settle(page)
    page.locator("[data-testid='stDataFrame']").first.wait_for()  # the semi-supervised table
    for tab in ["Linear probe", "Compression", "Rate–distortion", "Augmentation", "Anomalies"]:
        page.get_by_role("tab", name=tab).click()
        assert page.locator(EXC).count() == 0, tab
    page.get_by_text("most anomalous test images").wait_for()
    page.wait_for_function("document.querySelectorAll('[data-testid=\"stImage\"] img').length >= 16")
    assert page.locator(EXC).count() == 0
    assert not errors, errors
    page.context.close()


def test_doctor_flags_collapse_and_starts_a_run(browser, app_url):
    url, runs = app_url
    page = new_page(browser, f"{url}/doctor", wait_for="[data-testid='stMain'] h1")
    page.locator("[data-testid='stMain'] h1", has_text="Doctor").wait_for()
    page.get_by_text("Posterior collapse: 0 of 4 latent dimensions active").first.wait_for()
    page.locator("[data-testid='stPlotlyChart']").first.wait_for()  # the evidence plot
    page.get_by_role("button", name="Start this run").first.click()
    page.get_by_text("Started the suggested run").wait_for()
    assert page.locator(EXC).count() == 0
    page.context.close()
