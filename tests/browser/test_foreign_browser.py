"""VAEs written in their users' own code (tests/foreign_models.py), each trained a few epochs by the test's own loop on
a small slice, logged with ``vae.track`` into the app's runs folder, and opened in Chromium:

- every page opens on each of them without an exception, and the run stays active from page to page;
- the pictures are the core's: Generate's grid against ``run.sample``, a reconstruction against ``run.reconstruct``,
  the slider's picture against ``run.decode`` of the z on the sliders (within two grey levels);
- a slider drag changes the picture before the release, in the browser (the pytorch/examples MLP, whose stored
  decoder translates) and from the server (the conv VAE with GroupNorm and SiLU, whose decoder cannot), and so
  does the latent pad of that 2-D conv VAE;
- the pages that cannot apply say so in one line: Loss forces, and the Doctor's "Start this run".
"""
from __future__ import annotations

import io
import re
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import go, new_page, settle

from labkit.appserver import app_server

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))     # tests/: the user-style models and their data
from foreign_models import ConvRGBVAE, ExamplesVAE, GaussianVAE, train_and_log  # noqa: E402
from helpers import blobs  # noqa: E402

PICKER = "[data-testid='stSidebar'] [data-testid='stSelectbox']"
EXC = "[data-testid='stException']"
PANEL = "sliders.panel"
SLIDERS = "[data-testid='vae-latent-sliders'] input[type=range]"
HEADINGS = {"Home": "VAE Lab", "Compare": "Compare runs"}
CLASSES = {"examples": "ExamplesVAE", "conv": "ConvRGBVAE", "gauss": "GaussianVAE"}


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory) -> Path:
    """The three models, each trained two epochs in its own loop and logged, and one whose loop logged a NaN."""
    import torch

    import vae
    from vae.data import load_dataset
    torch.manual_seed(0)
    runs = tmp_path_factory.mktemp("runs")
    digits = load_dataset("mnist5k", max_train=512, max_test=200)
    x = digits.train.x.float() / 255
    ex = ExamplesVAE()
    with vae.track(runs / "examples", ex, digits.test.x, labels=digits.test.y, output="probs") as lab:
        train_and_log(lab, ex, x.view(-1, 784))
    data = blobs(160, side=16, channels=3, classes=2)
    conv = ConvRGBVAE(side=16, latent=2)
    with vae.track(runs / "conv", conv, data.x[:64], labels=data.y[:64], output="logits", decode=conv.generate,
                   encode=lambda t: tuple(conv.encoder(t).flatten(1).chunk(2, dim=1))) as lab:
        train_and_log(lab, conv, data.x.float() / 255, batch=32)
    g = GaussianVAE()
    with vae.track(runs / "gauss", g, digits.test.x, labels=digits.test.y, output="mean", sigma=0.2) as lab:
        train_and_log(lab, g, x)
    nan = ExamplesVAE()
    with vae.track(runs / "nan", nan, digits.test.x[:64], output="probs") as lab:
        lab.log(1, loss=200.0, kl=3.0)
        lab.log(2, loss=float("nan"), kl=float("inf"))
    # two folders as a run logged before tracked runs kept their test images: the pages fall back on built-in
    # digits of the model's shape, or say in one line that none fits (tests/test_app_foreign.py covers the stored ones)
    for name in ("examples", "conv"):
        (runs / name / vae.tracking.TEST_IMAGES).unlink()
    return runs


@pytest.fixture(scope="module")
def app_url(browser, runs_dir):
    with app_server(env={"VAE_LAB_RUNS_DIR": str(runs_dir), "VAE_LAB_THREADS": "1"}) as url:
        yield url


def open_app(browser, url: str, path: str = ""):
    page = new_page(browser, f"{url}/{path}", wait_for=PICKER)
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    settle(page)
    return page


def core_run(runs_dir: Path, name: str):
    import vae
    return vae.load_run(runs_dir / name)


def picture_of(page, url: str, img) -> np.ndarray:
    """The PNG an st.image shows, as uint8 [H, W(, C)]."""
    from PIL import Image
    src = img.get_attribute("src")
    blob = page.context.request.get(src if src.startswith("http") else url + src).body()
    pic = np.asarray(Image.open(io.BytesIO(blob)).convert("RGB"))
    return pic[..., 0] if (pic[..., 0] == pic[..., 1]).all() and (pic[..., 0] == pic[..., 2]).all() else pic


def tile(picture: np.ndarray, index: int, ncol: int, side: int, scale: int, pad: int = 1) -> np.ndarray:
    """Tile ``index`` of a ``ui.images.grid`` picture, scaled back down: [C, side, side] uint8."""
    r, c = divmod(index, ncol)
    y0, x0 = (pad + r * (side + pad)) * scale, (pad + c * (side + pad)) * scale
    t = picture[y0 + scale // 2:y0 + side * scale:scale, x0 + scale // 2:x0 + side * scale:scale]
    return t[None] if t.ndim == 2 else np.transpose(t, (2, 0, 1))


def as_bytes(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, 0, 1) * 255).round()


# ------------------------------------------------------------------------------------------- every page

@pytest.mark.parametrize("name", ["examples", "conv", "gauss"])
def test_every_page_opens_on_a_foreign_model_and_keeps_it_active(browser, app_url, name):
    from ui.pages import PAGES
    page = open_app(browser, app_url, f"?run={name}")
    picker = page.locator(f"{PICKER} input[role=combobox]")
    for info in PAGES:
        go(page, info.title, HEADINGS.get(info.title, info.title))
        page.wait_for_timeout(300)
        settle(page)
        assert page.locator(EXC).count() == 0, f"{info.title}: {page.locator(EXC).first.inner_text()[:400]}"
        assert picker.input_value().startswith(f"{name} · "), f"{info.title}: the active run is now " \
                                                              f"{picker.input_value()!r}"
        if info.title == "Loss forces":
            line = page.get_by_text("VAE Lab runs but does not train")
            assert line.count() == 1 and "\n" not in line.inner_text().strip()
    sidebar = page.locator("[data-testid='stSidebar']").inner_text()
    assert f"{CLASSES[name]} (your code, vae.track)" in sidebar
    assert not page.errors, page.errors
    page.context.close()


# ------------------------------------------------------------------------------------------- right pictures

@pytest.mark.parametrize("name", ["examples", "conv"])
def test_generate_draws_the_cores_samples(browser, app_url, runs_dir, name):
    from ui.images import scale_for
    page = open_app(browser, app_url, f"generate?run={name}")
    page.get_by_text("z is drawn from N(0, I)").wait_for()
    caption = page.get_by_text(re.compile(r"^48 samples · seed 0 · temperature 1\.0$"))
    img = page.locator("[data-testid='stImage']", has=caption).locator("img")
    run = core_run(runs_dir, name)
    want = as_bytes(run.sample(48, seed=0))
    side = want.shape[-1]
    pic = picture_of(page, app_url, img)
    got = np.stack([tile(pic, i, 12, side, scale_for(side, 56)) for i in range(48)])
    assert got.shape == want.shape and want.std() > 5
    worst = float(np.abs(got - want).max())
    assert worst <= 2, f"Generate's pixels differ from run.sample's by up to {worst} grey levels"
    page.context.close()


def test_reconstructions_are_the_cores_and_say_which_images(browser, app_url, runs_dir):
    """A model logged without its test images, on 28x28 digits: the page says it shows the built-in MNIST test
    digits, and each reconstruction is run.reconstruct of that digit."""
    from ui.datasets import DataKey, load
    from ui.images import scale_for
    page = open_app(browser, app_url, "reconstructions?run=examples")
    page.get_by_text("showing the built-in MNIST test digits instead").wait_for()
    pairs = page.locator("[data-testid='stImage']", has_text=re.compile(r"#\d+ · ")).first
    caption = pairs.locator("[data-testid='stImageCaption']").first.inner_text()
    j = int(re.match(r"#(\d+) · ", caption).group(1))
    test = load(DataKey("mnist5k")).test
    pic = picture_of(page, app_url, pairs.locator("img").first)
    got = tile(pic, 1, 2, 28, scale_for(28, 70))
    want = as_bytes(core_run(runs_dir, "examples").reconstruct(test.x[j:j + 1])[0])
    assert want.std() > 5 and float(np.abs(got - want).max()) <= 2, f"test image #{j}'s reconstruction"
    assert float(np.abs(tile(pic, 0, 2, 28, scale_for(28, 70)) - test.x[j].numpy()).max()) <= 1, "the input"
    page.context.close()


def test_a_model_without_fitting_images_says_so_in_one_line(browser, app_url):
    page = open_app(browser, app_url, "reconstructions?run=conv")
    note = page.get_by_text("holds no test images, and no built-in data set has its 3x16px images")
    note.wait_for()
    assert "\n" not in note.first.inner_text().strip()
    assert page.locator(EXC).count() == 0
    page.context.close()


# ------------------------------------------------------------------------------------------- dragging

def drag_until_two_pictures(page, locator: str) -> int:
    """Input events every 30 ms on the first slider until two pictures were painted (at most 30 s), no release."""
    return page.locator(locator).first.evaluate("""async (inp) => {
        const hook = window.__vaeLab.panel('%s'), f0 = hook.frames(), t0 = performance.now();
        for (let i = 1; hook.frames() - f0 < 2 && performance.now() - t0 < 30000; i++) {
            inp.value = Math.min(2.5, 0.05 * i); inp.dispatchEvent(new Event('input', {bubbles: true}));
            await new Promise(r => setTimeout(r, 30));
        }
        return hook.frames() - f0; }""" % PANEL)


def painted_is(page, hook: str, decode, timeout: float = 30) -> float:
    """Wait until the panel's canvas shows ``decode(z)`` (bytes [C, S, S]) for the z the panel holds at that moment
    (read again on every look: a release may still be on its way); the largest difference seen last. The failure
    names the z the panel held and how many pictures it painted and asked for."""
    deadline = time.monotonic() + timeout
    wants: dict[tuple, np.ndarray] = {}
    while True:
        z = tuple(page.evaluate(f"{hook}.z()"))
        if z not in wants:
            wants[z] = decode(list(z))
        read = page.evaluate(f"{hook}.read()")
        s, c = read["size"], read["channels"]
        got = np.transpose(np.asarray(read["rgba"], float).reshape(s, s, 4)[..., :c], (2, 0, 1))
        worst = float(np.abs(got - wants[z]).max())
        if worst <= 2:
            return worst
        if time.monotonic() > deadline:
            print(f"painted_is: z now {z}, z seen {list(wants)}, frames {page.evaluate(f'{hook}.frames()')}, "
                  f"requests {page.evaluate(f'{hook}.requests()')}")
            return worst
        page.wait_for_timeout(100)


@pytest.mark.parametrize("name, where", [("examples", "browser"), ("conv", "server")])
def test_a_slider_drag_changes_the_picture_to_the_cores(browser, app_url, runs_dir, name, where):
    page = open_app(browser, app_url, f"sliders?run={name}")
    page.wait_for_selector("[data-testid='vae-live-image']")
    page.wait_for_function(f"window.__vaeLab && window.__vaeLab.panel('{PANEL}')")
    hook = f"window.__vaeLab.panel('{PANEL}')"
    assert page.evaluate(f"{hook}.server()") == (where == "server")
    if where == "server":
        notice = page.get_by_text("Decoded on the server while you drag")
        assert notice.count() == 1 and "no browser layer for" in notice.inner_text()
    assert drag_until_two_pictures(page, SLIDERS) >= 2, "the picture did not change while the slider moved"
    z = page.evaluate(f"{hook}.z()")
    assert max(z) > 0, z
    run = core_run(runs_dir, name)
    assert painted_is(page, hook, lambda z: as_bytes(run.decode(np.asarray([z], np.float32))[0])) <= 2, \
        "the picture is not run.decode of the z on the sliders"
    assert page.locator(EXC).count() == 0 and not page.errors, page.errors
    page.context.close()


def test_the_latent_pad_of_a_2d_foreign_model_decodes_on_the_server_while_dragging(browser, app_url, runs_dir):
    page = open_app(browser, app_url, "latent_map?run=conv")
    pad = page.locator("[data-testid='vae-latent-pad']")
    pad.wait_for()
    hook = "window.__vaeLab.panel('map.pad')"
    page.wait_for_function(f"!!{hook}")
    assert page.evaluate(f"{hook}.server()")
    pad.scroll_into_view_if_needed()
    box = pad.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    start = page.evaluate(f"{hook}.frames()")
    page.mouse.move(cx, cy)
    page.mouse.down()
    deadline = time.monotonic() + 30
    i = 0
    while page.evaluate(f"{hook}.frames()") - start < 2 and time.monotonic() < deadline:
        i += 1
        page.mouse.move(cx + min(i, 60) * box["width"] / 150, cy - min(i, 60) * box["height"] / 150)
        page.wait_for_timeout(30)
    during = page.evaluate(f"{hook}.frames()") - start
    z = page.evaluate(f"{hook}.z()")
    page.mouse.up()
    assert during >= 2, "the pad's picture did not change while dragging"
    assert z[0] > 0 and z[1] > 0, z
    run = core_run(runs_dir, "conv")
    assert painted_is(page, hook, lambda z: as_bytes(run.decode(np.asarray([z], np.float32))[0])) <= 2, \
        "the pad's picture is not run.decode of its z"
    assert page.locator(EXC).count() == 0 and not page.errors, page.errors
    page.context.close()


# ------------------------------------------------------------------------------------------- Inside, Doctor

def test_inside_names_the_users_model_and_shows_the_cores_loss_terms(browser, app_url, runs_dir):
    from ui.datasets import DataKey, load
    from vae.inside import forward_pass
    page = open_app(browser, app_url, "inside?run=gauss")
    diagram = page.locator("[data-testid='vae-inside']")
    diagram.wait_for()
    text = diagram.inner_text()
    assert "GaussianVAE's encode, stored as ONNX" in text and "GaussianVAE's decode, stored as ONNX" in text
    assert "MLP" not in text and not re.search(r"\d+ → \d+", text), "the diagram claims layer sizes"
    x = load(DataKey("mnist5k")).test.x[0].numpy()
    p = forward_pass(core_run(runs_dir, "gauss").model, x, seed=0)
    recon = float(page.locator("[data-testid='vae-inside-recon'] .num").inner_text())
    kl = float(page.locator("[data-testid='vae-inside-kl'] .num").inner_text())
    assert recon == pytest.approx(p.recon, abs=0.02) and kl == pytest.approx(p.kl, abs=0.02)
    assert "Gaussian −log p(x | z) with the σ = 0.2" in page.locator("[data-testid='stMain']").inner_text()
    page.context.close()


def test_the_doctor_finds_the_nan_its_loop_logged_and_cannot_start_a_fix(browser, app_url):
    page = open_app(browser, app_url, "doctor?run=nan")
    page.get_by_text("The loop logged NaN or Inf: kl, loss").wait_for()
    line = page.get_by_text("trains in its own loop (logged with vae.track), so VAE Lab cannot start")
    assert line.count() == 1 and "\n" not in line.inner_text().strip()
    assert page.get_by_role("button", name="Start this run").count() == 0
    assert page.get_by_text("In your own loop, try:").count() >= 1
    assert page.locator(EXC).count() == 0
    page.context.close()
