"""The Dimensions page in Chromium: the traversal strips the browser decodes are the core's traversals
(``vae.latent.traverse``) within a few grey levels, for two runs side by side, and the heat map holds the mutual
information the core computes (``vae.disentangle.dimension_report``) and writes it in its cells."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import new_page, settle

from labkit.appserver import ROOT, app_server
from ui import dimensions_view as dv
from vae import disentangle, latent
from vae.data import load_dataset
from vae.runs import load_run

RUNS = ROOT / "assets" / "runs"
TCVAE, VAE = "shapes32-tcvae-10d", "shapes32-vae-10d"
STRIPS = ["dims.strips.0", "dims.strips.1"]


@pytest.fixture(scope="module")
def app_url(browser, tmp_path_factory):
    env = {"VAE_LAB_RUNS_DIR": str(tmp_path_factory.mktemp("runs")), "VAE_LAB_THREADS": "1"}
    with app_server(env=env) as url:
        yield url


@pytest.fixture(scope="module")
def page(browser, app_url):
    p = new_page(browser, f"{app_url}/dimensions?run={TCVAE}&vs={VAE}",
                 wait_for="[data-testid='stMain'] [data-testid='vae-strips']")
    p.errors = []
    p.on("pageerror", lambda e: p.errors.append(str(e)))
    p.wait_for_function("keys => keys.every(k => window.__vaeStrips && window.__vaeStrips(k) "
                        "&& window.__vaeStrips(k).live())", arg=STRIPS, timeout=60_000)
    settle(p)
    return p


def painted(cell: list[int], size: int, channels: int) -> np.ndarray:
    """A cell read back by the hook (RGBA per source pixel) -> [C, S, S] grey levels."""
    rgba = np.asarray(cell, np.float64).reshape(size, size, 4)
    return np.transpose(rgba[..., :channels], (2, 0, 1))


@pytest.mark.parametrize("key, name", [(STRIPS[0], TCVAE), (STRIPS[1], VAE)])
def test_each_strip_is_the_cores_traversal(page, key, name):
    run = load_run(RUNS / name)
    dims = page.evaluate("k => window.__vaeStrips(k).dims()", key)
    kl = run.metrics.kl_per_dim(run.config.model.latent_dim)
    assert dims == sorted(range(len(kl)), key=lambda j: -kl[j]), "rows ordered by KL, largest first"
    for r in (0, 1, len(dims) - 1):                 # the two most informative rows and the least
        read = page.evaluate("([k, r]) => window.__vaeStrips(k).read(r)", [key, r])
        values, want = latent.traverse(run.model, dims[r], span=dv.SPAN, steps=dv.STEPS)
        assert np.allclose(page.evaluate("k => window.__vaeStrips(k).values()", key), values)
        got = np.stack([painted(c, read["size"], read["channels"]) for c in read["cells"]])
        diff = np.abs(got - want * 255.0)
        assert diff.max() <= 3.0, f"{name} row {r} (z{dims[r]}): {diff.max():.1f} grey levels off"
    # the strip is not flat: the most informative dimension changes the picture along the strip
    first = page.evaluate("k => window.__vaeStrips(k).read(0)", key)
    cells = np.stack([painted(c, first["size"], first["channels"]) for c in first["cells"]])
    assert np.abs(cells[0] - cells[-1]).mean() > 5, "z = -3 and z = +3 decode to different pictures"
    assert not page.errors


def core_mi(name: str) -> tuple[np.ndarray, list[str], list[int]]:
    run = load_run(RUNS / name)
    split = load_dataset("shapes32", max_train=1, max_test=dv.MAX_POINTS)
    mu = latent.encode(run.model, split.test)["mu"]
    kl = run.metrics.kl_per_dim(run.config.model.latent_dim)
    rows = disentangle.dimension_report(mu, split.test.factors.numpy(), split.factor_names, kl_per_dim=kl)
    order = sorted(range(len(rows)), key=lambda j: -kl[j])
    return np.array([[rows[j]["mi_normalized"][f] for f in split.factor_names] for j in order]), \
        split.factor_names, order


def test_the_heat_maps_show_the_cores_mutual_information(page):
    charts = page.locator("[data-testid='stMain'] .js-plotly-plot")
    charts.nth(1).wait_for()
    for i, name in enumerate((TCVAE, VAE)):
        want, factors, order = core_mi(name)
        trace = page.evaluate("i => { const t = document.querySelectorAll(\"[data-testid='stMain'] .js-plotly-plot\")"
                              "[i].data[0]; return {x: t.x, y: t.y, z: t.z}; }", i)
        assert trace["x"] == factors
        assert [y.strip("()") for y in trace["y"]] == [f"z{j}" for j in order]
        assert np.allclose(np.asarray(trace["z"], float), want, atol=1e-9)
        # and the numbers written in the cells are those values, to two decimals
        shown = charts.nth(i).locator("g.heatmaplayer text, .heatmaplayer .textpoint text, text.textpoint")
        texts = sorted(float(t) for t in shown.all_text_contents() if t.strip())
        assert texts == sorted(float(f"{v:.2f}") for v in want.ravel()), "every cell's value written in it"
    assert not page.errors
