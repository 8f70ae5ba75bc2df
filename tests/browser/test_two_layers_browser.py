"""A VAE with two stochastic layers (``--latent-layers 2``), trained two epochs from the command line and opened in
Chromium: Inside a VAE shows the lower layer's numbers and a reconstruction that are the core's
(``vae.inside.forward_pass``), and the Sliders decode the top layer in the browser (the conditional prior folded into
the exported decoder) to the picture the core decodes, with the page saying what it does with the lower layer."""
from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from conftest import new_page, settle
from test_foreign_browser import as_bytes, drag_until_two_pictures, painted_is

from labkit.appserver import app_server

PICKER = "[data-testid='stSidebar'] [data-testid='stSelectbox']"
EXC = "[data-testid='stException']"
NOTE = "This model has two stochastic layers"


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory) -> Path:
    from vae.cli import main
    runs = tmp_path_factory.mktemp("runs")
    assert main(["train", "--data", "mnist5k", "--latent-layers", "2", "--latent-dim", "4", "--hidden", "128",
                 "--decoder-hidden", "64,128", "--epochs", "2", "--max-train", "1000", "--max-test", "200",
                 "--threads", "1", "--out", str(runs / "two"), "--quiet"]) == 0
    return runs


@pytest.fixture(scope="module")
def app_url(browser, runs_dir):
    with app_server(env={"VAE_LAB_RUNS_DIR": str(runs_dir), "VAE_LAB_THREADS": "1"}) as url:
        yield url


def open_page(browser, url: str, path: str):
    page = new_page(browser, f"{url}/{path}", wait_for=PICKER)
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    settle(page)
    return page


def core(runs_dir: Path):
    import vae
    from ui.datasets import DataKey, load
    run = vae.load_run(runs_dir / "two")
    return run, load(DataKey.of(run.config.data)).test


def test_inside_shows_both_layers_with_the_cores_numbers_and_picture(browser, app_url, runs_dir):
    from PIL import Image

    from vae.inside import forward_pass
    page = open_page(browser, app_url, "inside?run=two")
    page.locator("[data-testid='vae-inside-lower-z'] table").wait_for()
    run, test = core(runs_dir)
    p = forward_pass(run.model, test.x[0].numpy(), seed=0)
    shown = page.locator("[data-testid='vae-inside-lower-z'] table").inner_text()
    order = np.argsort(-p.lower.kl_per_dim, kind="stable")
    for j in order:
        assert f"z₁,{j}\t{p.lower.z[j]:+.3f}" in shown, (j, shown)
    prior = page.locator("[data-testid='vae-inside-lower-prior-mu'] table").inner_text()
    assert all(f"{p.lower.prior_mu[j]:+.3f}" in prior for j in order)
    kl = float(page.locator("[data-testid='vae-inside-kl'] .num").inner_text())
    top = float(page.locator("[data-testid='vae-inside-kl-top']").inner_text())
    lower = float(page.locator("[data-testid='vae-inside-kl-lower']").inner_text())
    assert (kl, top, lower) == pytest.approx((p.kl, p.kl_top, p.lower.kl), abs=0.011)
    assert float(page.locator("[data-testid='vae-inside-recon'] .num").inner_text()) == pytest.approx(p.recon,
                                                                                                       abs=0.011)
    src = page.locator("[data-testid='vae-inside-xhat'] img").get_attribute("src")
    pic = np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("L"), float)
    step = pic.shape[0] // p.x_hat.shape[-1]
    assert np.abs(pic[::step, ::step] - as_bytes(p.x_hat[0])).max() <= 1, "x̂ is not the core's decode of [z₁, z]"
    assert page.locator("[data-testid='stMain']").get_by_text("lower layer z₁").count() >= 1
    assert page.locator(EXC).count() == 0 and not page.errors, page.errors
    page.context.close()


def test_the_sliders_decode_the_top_layer_in_the_browser_to_the_cores_picture(browser, app_url, runs_dir):
    from vae.latent import decode
    page = open_page(browser, app_url, "sliders?run=two")
    assert page.get_by_text(NOTE).count() == 1
    page.wait_for_selector("[data-testid='vae-live-image']")
    hook = "window.__vaeLab.panel('sliders.panel')"
    page.wait_for_function(f"!!{hook}")
    assert page.evaluate(f"{hook}.server()") is False, "a ReLU two-layer decoder runs in the browser"
    assert drag_until_two_pictures(page, "[data-testid='vae-latent-sliders'] input[type=range]") >= 2
    run, _ = core(runs_dir)
    assert painted_is(page, hook, lambda z: as_bytes(decode(run.model, np.asarray([z], np.float32))[0])) <= 2, \
        "the picture is not the core's decode of the z on the sliders"
    page.goto(f"{app_url}/latent_map?run=two")
    settle(page)
    assert page.get_by_text(NOTE).count() == 1
    assert page.locator(EXC).count() == 0 and not page.errors, page.errors
    page.context.close()
