"""The whole app in Chromium: every page, training to a saved run, the live sliders, a closed
tab stopping its training, two sessions apart, and uploads refused with one line.

One server for the module, with its own empty runs folder and a 2 s heartbeat timeout.
"""
from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, describe, expand, first_heading, go, new_page, settle, wait_finished
from upload_cases import data_cases, run_cases

from labkit.appserver import app_server
from vae import jobs

APP = ROOT / "app.py"
PICKER = "[data-testid='stSidebar'] [data-testid='stSelectbox']"
EXC = "[data-testid='stException']"
SLIDERS = "[data-testid='vae-latent-sliders'] input[type=range]"
IMG = "[data-testid='vae-live-image']"
PAGES = [("Home", "VAE Lab"), ("Train", "Train"), ("Inside a VAE", "Inside a VAE"),
         ("Reconstructions", "Reconstructions"),
         ("Latent map", "Latent map"), ("Sliders", "Sliders"), ("Generate", "Generate"), ("Compare", "Compare runs"),
         ("Loss forces", "Loss forces")]


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="module")
def app_url(browser, runs_dir):  # depends on browser so a missing Chromium skips before a server starts
    env = {"VAE_LAB_RUNS_DIR": str(runs_dir), "VAE_LAB_HEARTBEAT_S": "2", "VAE_LAB_THREADS": "1",
           "VAE_LAB_MAX_EPOCHS": "0"}   # a run that trains until stopped needs more epochs than a class's limit
    with app_server(APP, env=env) as url:
        yield url


def open_app(browser, url, path: str = "", color_scheme: str = "light"):
    page = new_page(browser, f"{url}/{path}", wait_for=PICKER, color_scheme=color_scheme)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors
    return page




def saved(runs_dir: Path) -> list[Path]:
    return sorted(p for p in runs_dir.iterdir() if (p / "metrics.json").is_file())


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_page_opens_without_an_exception(browser, app_url, scheme):
    page = open_app(browser, app_url, color_scheme=scheme)
    for name, heading in PAGES:
        go(page, name, heading)
        if first_heading(page) != heading:
            # Seen in CI under load, never reproduced here: a page reached from the Latent map bounced back to it a
            # moment later, and once a page lost its heading (main area empty). The suspected cause, the decoder's
            # rerun on loading, is gone; a person would click again, and going again must work.
            print(f"{name}: left after arriving ({describe(page)}); going again")
            go(page, name, heading)
        assert page.locator(EXC).count() == 0, f"exception on {name}: {describe(page)}"
        assert first_heading(page) == heading, f"{name}: {describe(page)}"
    assert not page.errors, page.errors
    page.context.close()


def test_train_one_epoch_and_the_run_appears_in_the_picker(browser, app_url, runs_dir):
    page = open_app(browser, app_url, "train")
    settle(page)
    before = set(saved(runs_dir))
    page.get_by_role("button", name="Quick demo settings").click()
    settle(page)
    epochs = page.get_by_role("textbox", name="Epochs", exact=True)
    epochs.fill("1")
    epochs.press("Enter")
    settle(page)
    page.get_by_role("button", name="Start").click()
    wait_finished(page, runs_dir)
    [run] = [p for p in saved(runs_dir) if p not in before]
    assert json.loads((run / "metrics.json").read_text())["status"] == "completed"
    page.wait_for_function(f"document.querySelector(\"{PICKER} input\").value.includes('{run.name}')")
    assert page.locator(EXC).count() == 0
    # moving to another page keeps the new run active
    go(page, "Generate", "Generate")
    assert run.name in page.locator(f"{PICKER} input").input_value()
    page.context.close()


def test_dragging_a_latent_slider_redraws_the_image(browser, app_url):
    page = open_app(browser, app_url, "sliders")
    # the panel lives in a shadow root: Playwright's locators pierce it, document.querySelector does not
    page.wait_for_function("(() => { const p = window.__vaeLab && window.__vaeLab.panel('sliders.panel'); "
                           "return p && p.live() && p.frames() > 0; })()")
    settle(page)
    canvas = page.locator(IMG)
    frames0 = int(canvas.get_attribute("data-frames"))
    pixels0 = canvas.evaluate("c => c.toDataURL()")
    box = page.locator(SLIDERS).first.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    for i in range(25):
        page.mouse.move(x + 6 * (i + 1), y)
        time.sleep(0.016)
    mid = int(canvas.get_attribute("data-frames"))
    page.mouse.up()
    assert mid - frames0 >= 10, f"only {mid - frames0} frames while dragging"
    assert canvas.evaluate("c => c.toDataURL()") != pixels0, "the canvas pixels did not change"
    settle(page)
    assert page.locator(EXC).count() == 0 and not page.errors, page.errors
    page.context.close()


def test_clicking_two_map_points_shows_the_image_and_interpolates_between_them(browser, app_url):
    page = open_app(browser, app_url, "latent_map")
    points = page.locator("[data-testid='stMain'] .js-plotly-plot .scatterlayer .trace")
    points.first.locator(".points path").first.wait_for()
    settle(page)
    clicked = []
    for trace, point in ((3, 5), (7, 2)):
        points.nth(trace).locator(".points path").nth(point).click(force=True)
        page.wait_for_function("(n) => [...document.querySelectorAll(\"[data-testid='stMain'] "
                               "[data-testid='stImageCaption']\")].filter(e => e.textContent.startsWith('Clicked #')"
                               " && !n.includes(e.textContent)).length > 0", arg=clicked)
        settle(page)
        clicked.append(page.get_by_text("Clicked #").first.text_content())
    first, second = (c.split("#")[1].split(",")[0].split(":")[0] for c in clicked)
    # two clicks make the clicked points the interpolation's ends
    page.get_by_text(f"Linear: 10 frames from #{first} (left) to #{second} (right)").wait_for()
    caption = page.get_by_text("Linear: 10 frames from #").first.text_content()
    a, b = caption.split("from ")[1].split(" (left) to ")
    assert a != b and a.startswith("#") and b.startswith("#")
    assert page.locator(EXC).count() == 0 and not page.errors, page.errors
    page.context.close()


PATH_COLOURS = ("() => Object.fromEntries(document.querySelector(\"[data-testid='stMain'] .js-plotly-plot\").data"
                ".filter(t => (t.name || '').endsWith(' path')).map(t => [t.name, t.line.color]))")


def hole_trace(page):
    """The map's trace of the prior's holes (plotly draws the scatter traces in order, the heatmap elsewhere)."""
    i = page.evaluate("() => document.querySelector(\"[data-testid='stMain'] .js-plotly-plot\").data"
                      ".filter(t => t.type === 'scatter').findIndex(t => (t.name || '').startsWith('holes'))")
    assert i >= 0, "no holes on the map"
    return page.locator("[data-testid='stMain'] .js-plotly-plot").first.locator(".scatterlayer .trace").nth(i)


def test_map_layers_draw_and_a_clicked_hole_decodes(browser, app_url):
    page = open_app(browser, app_url, "latent_map")
    page.locator("[data-testid='stMain'] .js-plotly-plot .scatterlayer .trace .points path").first.wait_for()
    settle(page)
    before = page.evaluate(PATH_COLOURS)
    for layer in ("Posterior ellipses", "Density", "Holes"):
        page.locator("[data-testid='stMain'] [data-testid='stButtonGroup'] button", has_text=layer).click()
        settle(page)
    page.wait_for_function("() => document.querySelector(\"[data-testid='stMain'] .js-plotly-plot\").data"
                           ".some(t => (t.name || '').startsWith('holes'))")
    assert before == page.evaluate(PATH_COLOURS)
    holes = hole_trace(page)
    holes.locator(".points path").first.wait_for()
    names = page.evaluate("() => document.querySelector(\"[data-testid='stMain'] .js-plotly-plot\")"
                          ".data.map(t => t.type + ':' + (t.name || ''))")
    assert names[0].startswith("heatmap:") and sum(n.startswith("scatter:1σ posteriors") for n in names) == 10
    # each layer has a legend entry, and the paths and markers keep their colours whatever layers are on
    legend = page.locator("[data-testid='stMain'] .js-plotly-plot").first.locator(".legendtext").evaluate_all(
        "els => els.map(e => e.textContent)")
    for entry in ("1σ posterior of each image", "density of the encoded points", "holes of the prior (click one)"):
        assert entry in legend, legend
    colours = page.evaluate(PATH_COLOURS)
    assert colours == {"linear path": "#d81b60", "spherical path": "#8e24aa"}, colours
    holes.locator(".points path").nth(1).click(force=True)
    page.get_by_text("Left: decoded at the hole").wait_for()
    assert page.get_by_text("likelier to sample here than the encoded test images").count() == 1
    assert page.locator(EXC).count() == 0 and not page.errors, page.errors
    page.context.close()


def test_inside_resample_moves_z_not_mu_and_the_posterior_is_drawn_on_the_map(browser, app_url):
    page = open_app(browser, app_url, "inside")
    box = page.locator("[data-testid='vae-inside-z'] table")
    box.wait_for()
    settle(page)
    mu, z = page.locator("[data-testid='vae-inside-mu'] table").inner_text(), box.inner_text()
    page.get_by_role("button", name="Resample ε").click()
    page.wait_for_function("(old) => document.querySelector(\"[data-testid='vae-inside-z'] table\").innerText !== old",
                           arg=z)
    settle(page)
    assert page.locator("[data-testid='vae-inside-mu'] table").inner_text() == mu
    assert page.locator("[data-testid='vae-inside-xhat'] img").evaluate("i => i.naturalWidth") > 0
    page.locator("[data-testid='stMain'] .js-plotly-plot .legendtext").first.wait_for()   # plotly draws last
    legend = page.locator("[data-testid='stMain'] .js-plotly-plot .legendtext").evaluate_all(
        "els => els.map(e => e.textContent)")
    assert "posterior 1σ (39%)" in legend and "50 draws z ~ q(z|x)" in legend
    assert page.locator(EXC).count() == 0 and not page.errors, page.errors
    page.context.close()


def test_compare_draws_both_runs_curves_reconstructions_and_maps(browser, app_url):
    page = open_app(browser, app_url, "compare")
    page.get_by_text("Their maps").wait_for()
    settle(page)
    charts = page.locator("[data-testid='stMain'] .js-plotly-plot")
    charts.nth(2).wait_for()                   # the curves and one map per run (plotly draws after the page runs)
    # ... and each chart draws its legend and titles a moment later (seen in CI under load: an empty legend)
    page.wait_for_function("() => { const c = document.querySelectorAll(\"[data-testid='stMain'] .js-plotly-plot\");"
                           " return c.length >= 3 && c[0].querySelectorAll('.legendtext').length >= 2"
                           " && document.querySelectorAll(\"[data-testid='stMain'] .js-plotly-plot .gtitle\")"
                           ".length >= 2; }")
    legend = charts.first.locator(".legendtext").evaluate_all("els => els.map(e => e.textContent)")
    titles = page.locator("[data-testid='stMain'] .js-plotly-plot .gtitle").evaluate_all(
        "els => els.map(e => e.textContent)")
    assert len(legend) == 2 and legend == titles      # the default pair: the active run and the next one
    grid = page.locator("[data-testid='stMain'] [data-testid='stImage'] img").first
    assert grid.evaluate("i => i.naturalHeight") > 3 * 44      # inputs and one row per run
    # the figures' table fits: no column (the last was "seconds") or row hidden behind a scroll bar
    scroll = page.locator("[data-testid='stDataFrame'] .dvn-scroller").first.evaluate(
        "s => [s.scrollWidth - s.clientWidth, s.scrollHeight - s.clientHeight]")
    assert scroll[0] <= 1 and scroll[1] <= 1, scroll
    assert page.locator(EXC).count() == 0 and not page.errors, page.errors
    page.context.close()


# pixels of the reconstruction arrows' red (#e15759) on a canvas
RED_PIXELS = """c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;
  for (let i = 0; i < d.length; i += 4)
    if (Math.abs(d[i] - 225) < 12 && Math.abs(d[i + 1] - 87) < 12 && Math.abs(d[i + 2] - 89) < 12
        && d[i + 3] > 200) n++;
  return n; }"""


def test_loss_forces_steps_and_plays_in_slow_motion(browser, app_url):
    page = open_app(browser, app_url, "loss_forces")
    page.get_by_text("Step 0 ·").wait_for()
    settle(page)
    drawn = page.locator("[data-testid='vae-forces-map'][data-step='0']")
    drawn.wait_for()
    assert json.loads(drawn.get_attribute("data-arrows")) == {"reconstruction push": 64, "KL push (× β)": 64,
                                                              "sum": 64}
    assert "reconstruction push" in drawn.text_content()                      # the legend
    red = drawn.locator("canvas[role=img]").evaluate(RED_PIXELS)
    assert red > 50, f"the reconstruction arrows are on the canvas ({red} red pixels)"
    page.get_by_role("button", name="One step").click()
    page.get_by_text("Step 1 ·").wait_for()
    page.locator("[data-testid='vae-forces-map'][data-step='1']").wait_for()   # redrawn in place
    settle(page)
    play = page.get_by_role("switch", name="Play")
    page.get_by_text("Play", exact=True).click()            # one step every half second, on its own
    page.wait_for_function("() => document.querySelector(\"input[aria-label='Play']\").checked")
    try:
        page.get_by_text("Step 4 ·").wait_for(timeout=30_000)
    except Exception:
        # Seen once in CI: Play switched on and no step followed in 60 s (cause not found). A person switches it
        # off and on again; so does the test, once, and a second stall fails with what the page showed.
        stalled = describe(page)
        page.get_by_text("Play", exact=True).click()
        settle(page)
        page.get_by_text("Play", exact=True).click()
        try:
            page.get_by_text("Step 4 ·").wait_for(timeout=30_000)
        except Exception as e:
            raise AssertionError(f"Play stalled twice; first: {stalled}; now: {describe(page)}") from e
    page.get_by_text("Play", exact=True).click()
    settle(page)
    assert not play.is_checked()
    assert page.locator("[data-testid='vae-step-kl']").count() == 1
    assert page.locator(EXC).count() == 0 and not page.errors, page.errors
    page.context.close()


def test_a_shared_link_opens_the_same_view(browser, app_url):
    page = open_app(browser, app_url, "inside?run=mnist-16d&i=42")
    page.get_by_text("Following test image #42").wait_for()
    settle(page)
    page.locator("[data-testid='stSidebar']").get_by_text("16-D latent").wait_for()
    page.get_by_role("spinbutton", name="Test image #").fill("7")
    page.get_by_role("spinbutton", name="Test image #").press("Enter")
    page.get_by_text("Following test image #7").wait_for()
    page.wait_for_function("() => location.search.includes('i=7') && location.search.includes('run=mnist-16d')")
    assert page.locator(EXC).count() == 0 and not page.errors, page.errors
    page.context.close()


def test_a_guided_experiment_starts_from_home_and_can_be_stopped(browser, app_url, runs_dir):
    page = open_app(browser, app_url)
    settle(page)
    before = set(saved(runs_dir))
    card = page.locator("[data-testid='stColumn']", has_text="Too few dimensions")
    card.get_by_role("button", name="Set up and start").click()
    page.get_by_text("Guided experiment: Too few dimensions.").wait_for()
    assert first_heading(page) == "Train", describe(page)
    page.get_by_role("button", name="Stop").wait_for(timeout=90_000)
    assert page.get_by_role("textbox", name="Latent dimensions", exact=True).input_value() == "1"
    page.get_by_text("The Doctor's verdict").wait_for(timeout=120_000)     # the 20 s run ends, the Doctor reads it
    [new] = [p for p in saved(runs_dir) if p not in before]
    assert json.loads((new / "config.json").read_text())["model"]["latent_dim"] == 1
    assert page.locator(EXC).count() == 0 and not page.errors, page.errors
    page.context.close()


def test_export_downloads_the_projector_folder_and_the_map(browser, app_url, tmp_path):
    import io
    import math
    import zipfile

    from PIL import Image
    page = open_app(browser, app_url, "latent_map")
    settle(page)
    expand(page, "Export this run")
    page.get_by_role("button", name="Embedding Projector (.zip)").wait_for()
    with page.expect_download() as got:
        page.get_by_role("button", name="Embedding Projector (.zip)").click()
    blob = Path(got.value.path()).read_bytes()
    assert got.value.suggested_filename.endswith("-projector.zip")
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        names = sorted(zf.namelist())
        tensors = zf.read("projector/tensors.tsv").decode().splitlines()
        sprite = Image.open(io.BytesIO(zf.read("projector/sprite.png")))
    assert "projector/metadata.tsv" in names and "projector/projector_config.pbtxt" in names
    n = len(tensors)
    assert n == 500 and all(len(r.split("\t")) == 2 for r in tensors)  # the 2-D demo on its 500 test digits
    side = 28 * math.ceil(math.sqrt(n))
    assert sprite.size == (side, side)
    with page.expect_download() as got:
        page.get_by_role("button", name="Map (.png)").click()
    picture = Image.open(got.value.path())
    assert picture.format == "PNG"
    grey = (np.asarray(picture.convert("RGB")) == (128, 128, 128)).all(-1).sum()
    assert grey > 1000, f"the prior's 1 and 2 sd circles are drawn ({grey} grey pixels)"
    assert page.locator(EXC).count() == 0 and not page.errors, page.errors
    page.context.close()


def test_closed_tab_stops_its_training_and_other_sessions_never_see_it(browser, app_url, runs_dir):
    a = open_app(browser, app_url, "train")
    settle(a)
    before = set(saved(runs_dir))
    epochs = a.get_by_role("textbox", name="Epochs", exact=True)
    epochs.fill("500")
    epochs.press("Enter")
    settle(a)
    a.get_by_role("button", name="Start").click()
    a.get_by_role("button", name="Stop").wait_for()
    a.locator("[data-testid='stProgress']").first.wait_for()
    # the job has learned something to save: its first step is in its event log (a loaded machine starts it late)
    deadline = time.monotonic() + 90

    def stepped():
        return [p for p in runs_dir.iterdir() if p not in before and (p / jobs.EVENTS).is_file()
                and '"type": "step"' in (p / jobs.EVENTS).read_text()]
    while time.monotonic() < deadline and not stepped():
        time.sleep(0.25)
    assert stepped(), "the job never trained a step"
    # a second browser session: its own Train page shows no progress and can start its own run
    b = open_app(browser, app_url, "train")
    settle(b)
    assert b.get_by_role("button", name="Stop").count() == 0
    assert b.locator("[data-testid='stMain'] [data-testid='stProgress']").count() == 0
    assert b.get_by_role("button", name="Start").is_enabled()
    b.context.close()
    # closing A's tab: no heartbeat, no websocket -> the scheduler stops its job, which saves
    t0 = time.monotonic()
    a.context.close()
    deadline = t0 + 30

    def stopped():
        return [p for p, s in jobs.list_jobs(runs_dir) if p not in before and s.get("state") == "stopped"]
    while time.monotonic() < deadline and not stopped():
        time.sleep(0.25)
    new = stopped()
    assert len(new) == 1, "the orphaned run should be stopped and saved once"
    stopped_after = time.monotonic() - t0
    metrics = json.loads((new[0] / "metrics.json").read_text())
    assert metrics["status"] == "cancelled" and "no heartbeat" in metrics["message"]
    print(f"closed tab -> run saved in {stopped_after:.1f} s")
    assert stopped_after < 15, f"took {stopped_after:.1f} s to stop"


def test_bad_uploads_show_one_error_line_in_the_page(browser, app_url, runs_dir, tmp_path):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    page = open_app(browser, app_url, "train")
    settle(page)
    page.get_by_role("combobox", name="Data set").click()
    page.get_by_role("option", name="Upload my own").click()
    settle(page)
    uploader = page.locator("[data-testid='stMain'] [data-testid='stFileUploaderDropzoneInput']")
    seen = {}
    for cid, name, blob, phrase in data_cases():
        f = tmp_path / name
        f.write_bytes(blob)
        err = page.locator("[data-testid='stMain'] [data-testid='stAlertContentError']")
        # a rerun still on its way (choosing "Upload my own", or the previous case's) can reset the uploader
        # after the file went in, and then no error ever comes (seen in CI): upload again, as a person would
        for _ in range(4):
            uploader.set_input_files(str(f))
            with contextlib.suppress(PlaywrightTimeout):
                page.wait_for_function("(n) => { const es = document.querySelectorAll(\"[data-testid='stMain'] "
                                       "[data-testid='stAlertContentError']\"); "
                                       "return es.length === 1 && es[0].textContent.includes(n); }", arg=name,
                                       timeout=30_000)
                break
        settle(page)
        assert err.count() == 1 and name in (err.first.text_content() or ""), (cid, err.all_text_contents())
        text = err.first.text_content()
        assert err.count() == 1 and phrase in text and page.locator(EXC).count() == 0, (cid, text)
        seen[cid] = text
    # runs, through the sidebar
    page.locator("[data-testid='stSidebar']").get_by_text("Upload a run").click()
    side = page.locator("[data-testid='stSidebar']")
    for cid, files, phrase in run_cases():
        paths = []
        for name, blob in files:
            f = tmp_path / cid / name
            f.parent.mkdir(exist_ok=True)
            f.write_bytes(blob)
            paths.append(str(f))
        # the rerun that followed clearing the previous case's files can land after this upload and
        # reset the uploader: wait until the files are there and stay there, re-uploading if not
        chips = side.locator("[data-testid='stFileChipDeleteBtn']")
        for _ in range(5):
            side.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(paths)
            with contextlib.suppress(PlaywrightTimeout):
                page.wait_for_function("(n) => document.querySelectorAll(\"[data-testid='stSidebar'] "
                                       "[data-testid='stFileChipDeleteBtn']\").length === n", arg=len(paths),
                                       timeout=10_000)
            settle(page)
            page.wait_for_timeout(500)
            if chips.count() == len(paths):
                break
        assert chips.count() == len(paths), (cid, "the uploader did not keep the files")
        side.get_by_role("button", name="Add this run").click()
        # wait for exactly this case's message: the previous case's (possibly the same text) can
        # linger for a moment while the rerun replaces it
        page.wait_for_function("(p) => { const es = document.querySelectorAll(\"[data-testid='stSidebar'] "
                               "[data-testid='stAlertContentError']\"); "
                               "return es.length === 1 && es[0].textContent.includes(p); }", arg=phrase,
                               timeout=120_000)
        settle(page)
        # a rerun of the sidebar's polling fragment can briefly show the alert twice: the page must
        # come back to exactly one
        page.wait_for_function("() => document.querySelectorAll(\"[data-testid='stSidebar'] "
                               "[data-testid='stAlertContentError']\").length === 1", timeout=120_000)
        err = side.locator("[data-testid='stAlertContentError']")
        assert err.count() == 1 and page.locator(EXC).count() == 0, (cid, err.all_text_contents())
        seen[f"run:{cid}"] = err.first.text_content()
        # clear the uploader for the next case
        chips = side.locator("[data-testid='stFileChipDeleteBtn']")
        for left in range(chips.count(), 0, -1):
            chips.first.click()
            page.wait_for_function("(n) => document.querySelectorAll(\"[data-testid='stSidebar'] "
                                   "[data-testid='stFileChipDeleteBtn']\").length < n", arg=left)
        settle(page)
    assert not [p for p in runs_dir.iterdir() if p.name.startswith("uploaded-")]
    print(json.dumps(seen, indent=1))
    page.context.close()
