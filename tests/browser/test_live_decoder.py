"""The latent panel in a real Chromium: parity with torch, frames while dragging, value returned.

One Streamlit server runs ``apps/latent_panel_app.py``; each test picks the model and mode
with query parameters, so a new model costs a page load, not a server start.
"""
from __future__ import annotations

import json
import time
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
import torch
from apps.model_factory import make_model  # tests/browser/apps/, this folder being on sys.path
from conftest import new_page

from labkit.appserver import app_server

APP = Path(__file__).parent / "apps" / "latent_panel_app.py"
IMG = "[data-testid='vae-live-image']"
SLIDERS = "[data-testid='vae-latent-sliders'] input[type=range]"
COMMITTED = "[data-testid='vae-committed']"

MLP_GREY = {"arch": "mlp", "image_size": 28, "latent_dim": 8, "hidden": [64, 32]}
MLP_RGB_COND = {"arch": "mlp", "channels": 3, "image_size": 30, "latent_dim": 5, "hidden": [48],
                "activation": "elu", "conditional": True, "num_classes": 4}
CONV_32D = {"arch": "conv", "image_size": 28, "latent_dim": 32, "hidden": [32, 64], "fc_dim": 256}
CONV_RGB_COND = {"arch": "conv", "channels": 3, "image_size": 30, "latent_dim": 6, "hidden": [8, 16],
                 "fc_dim": 32, "activation": "silu", "conditional": True, "num_classes": 3}
CONV_64_LEAKY = {"arch": "conv", "image_size": 64, "latent_dim": 4, "hidden": [4, 8, 8], "fc_dim": 16,
                 "activation": "leaky_relu"}
CONV_2D = {"arch": "conv", "image_size": 28, "latent_dim": 2, "hidden": [16, 32], "fc_dim": 64}


@pytest.fixture(scope="module")
def app_url(browser):  # depends on browser so a missing Chromium skips before a server starts
    with app_server(APP) as url:
        yield url


def open_panel(browser, app_url, cfg, seed=0, *, wait_for=IMG, **params):
    query = urllib.parse.urlencode({"cfg": json.dumps(cfg), "seed": seed, **params})
    page = new_page(browser, f"{app_url}/?{query}", wait_for=wait_for)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors
    return page


def torch_pixels(cfg, seed, z, label=None) -> np.ndarray:
    model = make_model(cfg, seed)
    with torch.no_grad():
        y = torch.tensor([label]) if label is not None else None
        return torch.sigmoid(model.decode(torch.tensor([z], dtype=torch.float32), y))[0].numpy()


def painted(read: dict) -> np.ndarray:
    """The hook's read-back (RGBA of each source pixel as painted) -> [C, S, S] bytes."""
    s, c = read["size"], read["channels"]
    rgba = np.asarray(read["rgba"], dtype=np.float64).reshape(s, s, 4)
    assert (rgba[..., 3] == 255).all()
    if c == 1:
        assert (rgba[..., 0] == rgba[..., 1]).all() and (rgba[..., 0] == rgba[..., 2]).all(), "grey must be R=G=B"
    return np.transpose(rgba[..., :c], (2, 0, 1))


def frames(page) -> int:
    return int(page.get_attribute(IMG, "data-frames"))


def committed(page):
    return json.loads(page.text_content(COMMITTED))


@pytest.mark.parametrize("cfg", [MLP_GREY, MLP_RGB_COND, CONV_32D, CONV_RGB_COND, CONV_64_LEAKY],
                         ids=["mlp-grey", "mlp-rgb-cond", "conv-32d", "conv-rgb-cond", "conv-64-leaky"])
def test_browser_decode_matches_torch(browser, app_url, cfg):
    seed = 3
    page = open_panel(browser, app_url, cfg, seed)
    rng = np.random.default_rng(0)
    k = cfg.get("num_classes", 0) if cfg.get("conditional") else 0
    worst = 0.0
    for trial in range(4):
        z = (rng.standard_normal(cfg["latent_dim"]) * 1.5).tolist()
        label = trial % k if k else None
        got = painted(page.evaluate("([z, y]) => window.__vaeLab.panel('panel').decode(z, y)", [z, label]))
        want = torch_pixels(cfg, seed, z, label) * 255
        assert got.shape == want.shape, (got.shape, want.shape)
        worst = max(worst, float(np.abs(got - want).max()))
        assert want.std() > 10, "the test model should give varied pixels"
    assert worst <= 1.0, f"browser pixels differ from torch by {worst:.3f}/255"
    assert not page.errors, page.errors
    page.context.close()


def test_slider_input_paints_what_torch_decodes(browser, app_url):
    """The sliders path (not the hook): set values, dispatch input, read the canvas."""
    page = open_panel(browser, app_url, CONV_32D, 1)
    before = frames(page)
    values = np.random.default_rng(1).uniform(-2.5, 2.5, 6).round(2).tolist()
    page.locator(SLIDERS).evaluate_all("""(inputs, vals) => vals.forEach((v, i) => {
        inputs[i].value = v; inputs[i].dispatchEvent(new Event('input', {bubbles: true})); })""", values)
    page.wait_for_function(f"window.__vaeLab.panel('panel').frames() > {before}")
    page.wait_for_timeout(100)  # rAF: several inputs, one paint with the latest values
    hook = "window.__vaeLab.panel('panel')"
    z = page.evaluate(f"{hook}.z()")
    assert np.allclose([z[i] for i in range(6)], values, atol=1e-9), (z[:6], values)
    got = painted(page.evaluate(f"{hook}.read()"))
    want = torch_pixels(CONV_32D, 1, z) * 255
    assert np.abs(got - want).max() <= 1.0
    assert frames(page) - before <= 2, "six inputs within one frame should paint about once"
    page.context.close()


def drag_slider(page, index: int, *, steps: int = 40, dx: float = 4.0, interval: float = 0.016):
    """Press on slider ``index``'s thumb, move right every ``interval`` s; return frames painted
    before the mouse is released and right after."""
    box = page.locator(SLIDERS).nth(index).bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2  # z0 = 0: the thumb is centred
    page.mouse.move(x, y)
    start = frames(page)
    page.mouse.down()
    for i in range(steps):
        page.mouse.move(x + dx * (i + 1), y)
        time.sleep(interval)
    during = frames(page) - start
    page.mouse.up()
    return during


def test_dragging_paints_during_the_drag_and_commits_on_release(browser, app_url):
    page = open_panel(browser, app_url, CONV_32D, 0)
    assert page.locator(SLIDERS).count() == 32
    runs_before = int(page.text_content("[data-testid='vae-runs']"))
    during = drag_slider(page, 0, steps=40)
    assert during >= 20, f"only {during} frames painted during a 40-move drag"
    # the value returns to Python after release (one rerun), and equals the panel's z
    hook = "window.__vaeLab.panel('panel')"
    z = page.evaluate(f"{hook}.z()")
    assert z[0] > 0.3, z[0]
    page.wait_for_function(f"(() => {{ const t = document.querySelector(\"{COMMITTED}\"); "
                           f"return t && JSON.parse(t.textContent)[0] > 0.3; }})()")
    assert committed(page) == pytest.approx(z, abs=1e-9)
    assert int(page.text_content("[data-testid='vae-runs']")) > runs_before
    # Reset: back to z0 (zeros) in the panel and in Python
    page.get_by_test_id("vae-reset").click()
    page.wait_for_function(f"(() => {{ const t = document.querySelector(\"{COMMITTED}\"); "
                           f"return t && JSON.parse(t.textContent)[0] === 0; }})()")
    assert committed(page) == [0.0] * 32
    assert page.locator(SLIDERS).first.input_value() == "0"
    assert not page.errors, page.errors
    page.context.close()


def test_weights_travel_once(browser, app_url):
    """First load: the weights, and no rerun that nobody asked for (a commit on load would rerun the page, and
    one sent as the user leaves can take them back to it). From then on reruns carry only the spec's header, the
    JS is not called again for the same data, and the panel still decodes like torch."""
    received: list[int] = []
    query = urllib.parse.urlencode({"cfg": json.dumps(CONV_32D), "seed": 0})
    ctx = browser.new_context(viewport={"width": 1100, "height": 900})
    page = ctx.new_page()
    page.set_default_timeout(60_000)
    page.on("websocket", lambda ws: ws.on("framereceived", lambda p: received.append(len(p))))
    page.goto(f"{app_url}/?{query}")
    page.wait_for_selector(IMG, state="attached")
    assert sum(received) > 1_000_000, f"the first load should carry the weights, got {sum(received)} bytes"
    page.wait_for_timeout(1500)
    assert page.text_content("[data-testid='vae-runs']") == "1", "the page reran on its own after loading"

    def rerun() -> int:
        received.clear()
        runs = int(page.text_content("[data-testid='vae-runs']"))
        page.get_by_role("button", name="rerun").click()
        page.wait_for_function(f"+document.querySelector(\"[data-testid='vae-runs']\").textContent > {runs}")
        page.wait_for_timeout(500)
        return sum(received)

    shown = frames(page)
    for _ in range(2):
        assert rerun() < 50_000, "a rerun moved the weights again"
    assert frames(page) == shown, "the JS repainted on a rerun with identical data"
    z = np.random.default_rng(5).standard_normal(32).tolist()
    got = painted(page.evaluate("(z) => window.__vaeLab.panel('panel').decode(z)", z))
    assert np.abs(got - torch_pixels(CONV_32D, 0, z) * 255).max() <= 1.0
    assert page.get_by_text("Live decoding is off").count() == 0
    ctx.close()


def test_a_header_the_page_cannot_resolve_asks_for_the_weights_again(browser, app_url):
    """A page handed only the spec's header (it never drew the run that carried the weights) asks for them,
    gets them in one rerun, says so in one more, and decodes like torch; reruns then carry the header only."""
    received: list[int] = []
    query = urllib.parse.urlencode({"cfg": json.dumps(CONV_32D), "seed": 0, "lost": 1})
    ctx = browser.new_context(viewport={"width": 1100, "height": 900})
    page = ctx.new_page()
    page.set_default_timeout(60_000)
    page.on("websocket", lambda ws: ws.on("framereceived", lambda p: received.append(len(p))))
    page.goto(f"{app_url}/?{query}")
    page.wait_for_function("window.__vaeLab && window.__vaeLab.panel('panel') && window.__vaeLab.panel('panel').live()")
    page.wait_for_timeout(1500)
    assert page.text_content("[data-testid='vae-runs']") == "3"   # the header, the weights, the "got them"
    assert sum(received) > 1_000_000
    received.clear()
    runs = int(page.text_content("[data-testid='vae-runs']"))
    page.get_by_role("button", name="rerun").click()
    page.wait_for_function(f"+document.querySelector(\"[data-testid='vae-runs']\").textContent > {runs}")
    page.wait_for_timeout(500)
    assert sum(received) < 50_000, "a rerun moved the weights again"
    z = np.random.default_rng(6).standard_normal(32).tolist()
    got = painted(page.evaluate("(z) => window.__vaeLab.panel('panel').decode(z)", z))
    assert np.abs(got - torch_pixels(CONV_32D, 0, z) * 255).max() <= 1.0
    ctx.close()


def test_class_selector_commits_label(browser, app_url):
    page = open_panel(browser, app_url, CONV_RGB_COND, 0)
    before = frames(page)
    page.locator("[data-testid='vae-class-select']").select_option("2")
    page.wait_for_function(f"(() => {{ const t = document.querySelector(\"{COMMITTED}\"); "
                           f"return t && JSON.parse(t.textContent).label === 2; }})()")
    assert frames(page) > before
    assert page.locator("[data-testid='vae-class-select'] option").first.text_content() == "class 0"
    hook = "window.__vaeLab.panel('panel')"
    got = painted(page.evaluate(f"{hook}.read()"))
    want = torch_pixels(CONV_RGB_COND, 0, page.evaluate(f"{hook}.z()"), 2) * 255
    assert np.abs(got - want).max() <= 1.0
    page.context.close()


def test_pad_drag_paints_and_commits(browser, app_url):
    page = open_panel(browser, app_url, CONV_2D, 0, mode="pad")
    pad = page.locator("[data-testid='vae-latent-pad']")
    box = pad.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    start = frames(page)
    page.mouse.move(cx, cy)
    page.mouse.down()
    for i in range(30):
        page.mouse.move(cx + i * box["width"] / 80, cy - i * box["height"] / 80)
        time.sleep(0.016)
    during = frames(page) - start
    page.mouse.up()
    assert during >= 15, f"only {during} frames during a 30-move pad drag"
    # dragged right and up from the centre: both coordinates positive (default extent +-3)
    page.wait_for_function(f"(() => {{ const t = document.querySelector(\"{COMMITTED}\"); "
                           f"if (!t) return false; const z = JSON.parse(t.textContent); "
                           f"return z[0] > 0.5 && z[1] > 0.5; }})()")
    z = committed(page)
    assert z == pytest.approx(page.evaluate("window.__vaeLab.panel('panel').z()"), abs=1e-9)
    assert z[0] == pytest.approx(29 / 80 * 6, abs=0.1) and z[1] == pytest.approx(29 / 80 * 6, abs=0.1)
    page.context.close()


def test_pad_background_extent_and_order(browser, app_url):
    """The pad maps its area to the given extent, across = order[0], up = order[1]."""
    cfg = {**CONV_2D, "latent_dim": 3}
    page = open_panel(browser, app_url, cfg, 0, mode="pad", bg="1", order="[2, 0]")
    pad = page.locator("[data-testid='vae-latent-pad']")
    box = pad.bounding_box()
    # press at 3/4 across, 1/4 down: z2 = -2 + 0.75 * 4 = 1, z0 = 3 - 0.25 * 4 = 2
    page.mouse.click(box["x"] + 0.75 * box["width"], box["y"] + 0.25 * box["height"])
    page.wait_for_function(f"(() => {{ const t = document.querySelector(\"{COMMITTED}\"); "
                           f"return t && JSON.parse(t.textContent)[2] > 0.5; }})()")
    z = committed(page)
    assert z == pytest.approx([2.0, 0.0, 1.0], abs=0.05)
    # the background is drawn: the pad's pixels are not one flat colour
    spread = pad.evaluate("""c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let lo = 255, hi = 0;
        for (let i = 0; i < d.length; i += 4) { lo = Math.min(lo, d[i]); hi = Math.max(hi, d[i]); }
        return hi - lo; }""")
    assert spread > 150
    page.context.close()


@pytest.mark.parametrize("strips", ["0", "1"], ids=["a-round-trip-a-picture", "strips-when-cheap"])
def test_server_path_paints_while_dragging_and_commits(browser, app_url, strips):
    """A decoder the browser cannot run: the same panel, said in one line, and the pictures come from the server
    while the slider moves (before any release), each the one torch decodes for the z on the sliders: one round
    trip a picture, or from the moving slider's strip when the server sends one."""
    page = open_panel(browser, app_url, MLP_GREY, 0, fallback="server", strips=strips)
    notice = page.get_by_text("Decoded on the server while you drag")
    notice.wait_for()
    assert "\n" not in notice.first.text_content().strip()
    assert page.locator(SLIDERS).count() == MLP_GREY["latent_dim"]
    hook = "window.__vaeLab.panel('panel')"
    assert page.evaluate(f"{hook}.server()") and not page.evaluate(f"{hook}.live()")
    before = frames(page)
    # a drag: input events every 30 ms until two pictures came back (at most 30 s), and no change event yet
    during = page.locator(SLIDERS).first.evaluate("""async (inp) => {
        const hook = window.__vaeLab.panel('panel'), f0 = hook.frames(), t0 = performance.now();
        for (let i = 0; hook.frames() - f0 < 2 && performance.now() - t0 < 30000; i++) {
            inp.value = (0.05 * i) % 2.5; inp.dispatchEvent(new Event('input', {bubbles: true}));
            await new Promise(r => setTimeout(r, 30));
        }
        return hook.frames() - f0; }""")
    assert during >= 2, "no picture came back while the slider moved"
    # stop on a value: the picture the server sends for it is what torch decodes there
    page.locator(SLIDERS).first.evaluate("inp => { inp.value = 1.7; inp.dispatchEvent(new Event('input', "
                                         "{bubbles: true})); }")
    z = page.evaluate(f"{hook}.z()")
    want = torch_pixels(MLP_GREY, 0, z) * 255
    deadline = time.monotonic() + 30
    while True:
        got = painted(page.evaluate(f"{hook}.read()"))
        if np.abs(got - want).max() <= 1.0 or time.monotonic() > deadline:
            break
        page.wait_for_timeout(100)
    assert np.abs(got - want).max() <= 1.0, "the server's picture is not torch's for the z on the sliders"
    assert frames(page) > before
    if strips == "0":
        assert page.evaluate(f"{hook}.fromStrip()") == 0 and page.evaluate(f"{hook}.requests()") >= 2
    # release: the value returns to Python (the page reruns, not only the panel)
    page.locator(SLIDERS).first.evaluate("inp => inp.dispatchEvent(new Event('change', {bubbles: true}))")
    page.wait_for_function(f"(() => {{ const t = document.querySelector(\"{COMMITTED}\"); "
                           f"return t && Math.abs(JSON.parse(t.textContent)[0] - 1.7) < 1e-9; }})()")
    assert committed(page) == pytest.approx(z, abs=1e-9)
    assert not page.errors, page.errors
    page.context.close()


def test_browser_fallback_keeps_sliders_and_decodes_on_server(browser, app_url):
    page = open_panel(browser, app_url, MLP_GREY, 0, fallback="browser", wait_for=SLIDERS)
    page.get_by_text("Live decoding is off").wait_for()
    page.wait_for_selector("[data-testid='stImage'] img")  # the panel reported it cannot decode
    assert page.locator(SLIDERS).count() == MLP_GREY["latent_dim"]
    src = page.locator("[data-testid='stImage'] img").first.get_attribute("src")
    drag_slider(page, 0, steps=10)
    page.wait_for_function(f"(() => {{ const t = document.querySelector(\"{COMMITTED}\"); "
                           f"return t && JSON.parse(t.textContent)[0] > 0.1; }})()")
    page.wait_for_function("(src) => document.querySelector(\"[data-testid='stImage'] img\").src !== src", arg=src)
    page.context.close()
