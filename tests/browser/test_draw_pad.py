"""The drawing pad in Chromium: the in-browser encoder matches torch (MLP and conv), strokes move the posterior
while drawing, the lifted pen hands the drawing to the forward pass, and its point goes to the Sliders."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import ROOT, go, new_page, settle

from labkit.appserver import app_server
from vae import load_run
from vae.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from vae.data import load_dataset
from vae.models import build_model
from vae.runs import save_run

APP = ROOT / "app.py"
PICKER = "[data-testid='stSidebar'] [data-testid='stSelectbox']"
EXC = "[data-testid='stException']"
PAD = "[data-testid='vae-draw-pad']"


@pytest.fixture(scope="module")
def served(browser, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    torch.manual_seed(0)
    cfg = RunConfig(model=ModelConfig(arch="conv", latent_dim=8), train=TrainConfig(epochs=1),
                    data=DataConfig(name="mnist5k"))
    conv = save_run(runs / "conv-8d", build_model(cfg.model).eval(), cfg, {"status": "completed"})
    with app_server(APP, env={"VAE_LAB_RUNS_DIR": str(runs), "VAE_LAB_THREADS": "1"}) as url:
        yield url, conv


def open_draw(browser, url):
    page = new_page(browser, f"{url}/inside", wait_for=PICKER)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors
    settle(page)
    page.get_by_text("Draw one", exact=True).click()
    page.locator(PAD).wait_for()
    page.wait_for_function("() => window.__vaeDraw && window.__vaeDraw() && window.__vaeDraw().live()")
    return page


def pick(page, run_dir) -> None:
    page.locator(PICKER).click()
    page.get_by_role("option").filter(has_text=run_dir.name).first.click()
    settle(page)


@pytest.mark.parametrize("which", ["mlp", "conv"])
def test_the_browser_encoder_matches_torch(browser, served, which):
    url, conv = served
    page = open_draw(browser, url)
    run_dir = ROOT / "assets" / "runs" / "mnist-16d" if which == "mlp" else conv
    pick(page, run_dir)
    page.locator(PAD).wait_for()
    page.wait_for_function("() => window.__vaeDraw() && window.__vaeDraw().live()")
    run = load_run(run_dir)
    x = load_dataset("mnist5k").test.x[:3].float() / 255
    for i in range(3):
        got = page.evaluate("(px) => window.__vaeDraw().encode(px)", x[i].reshape(-1).tolist())
        with torch.no_grad():
            mu, logvar = run.model.encode(x[i:i + 1])
        np.testing.assert_allclose(got["mu"], mu[0].numpy(), atol=1e-4)
        np.testing.assert_allclose(got["logvar"], logvar[0].numpy(), atol=1e-4)
    assert page.locator(EXC).count() == 0 and not page.errors, page.errors
    page.context.close()


def test_strokes_move_the_posterior_and_the_drawing_reaches_the_forward_pass(browser, served):
    url, _ = served
    page = open_draw(browser, url)
    box = page.locator(PAD).bounding_box()
    x0, y0, s = box["x"], box["y"], box["width"] / 280
    readout = page.locator("[data-testid='vae-draw-readout']")
    page.mouse.move(x0 + 140 * s, y0 + 40 * s)
    page.mouse.down()
    seen = []
    for i in range(1, 25):                       # a "1", top to bottom; the posterior is read while drawing
        page.mouse.move(x0 + 140 * s, y0 + (40 + 8 * i) * s)
        if i % 8 == 0:
            page.wait_for_timeout(100)
            seen.append(readout.get_attribute("data-mu"))
    assert len(set(seen)) == 3, "the posterior moves during the stroke, before the pen lifts"
    assert page.get_by_text("Following your drawing").count() == 0, "the page follows it once the pen lifts"
    page.mouse.up()
    page.get_by_text("Following your drawing").wait_for()
    settle(page)
    assert page.evaluate("() => window.__vaeDraw().encodes()") >= 3
    drawn = json.loads(readout.get_attribute("data-mu"))
    mu_text = page.locator("[data-testid='vae-inside-mu'] table").inner_text()
    assert f"{drawn[0]:+.3f}" in mu_text or f"{drawn[1]:+.3f}" in mu_text   # the diagram follows the same mu
    page.get_by_role("button", name="Send this point to the Sliders").click()
    settle(page)
    go(page, "Sliders", "Sliders")
    page.get_by_text("Starting from the precise values you sent.").wait_for()
    assert page.locator(EXC).count() == 0 and not page.errors, page.errors
    page.context.close()
