"""The load benchmark's protocol client (labkit/stclient) against a real server of the app:
two simulated tabs do each interaction bench/load.py sends, and the app answers as it would
answer Chromium. Nothing here is timed."""
from __future__ import annotations

import asyncio
import concurrent.futures
import random

import pytest

from labkit import stclient
from labkit.appserver import app_server
from labkit.stclient import vaelab


def ok(r: stclient.RunResult) -> stclient.RunResult:
    assert r.status == "ok" and not r.exceptions, f"{r.action}: {r.status} {r.exceptions}"
    return r


def captions(s: stclient.Session) -> dict[str, str]:
    return {cap: url for url, cap in s.images()}


async def generate_and_map(url: str) -> None:
    rng = random.Random(0)
    s, opened = await vaelab.open_app(url, "generate")
    try:
        for r in opened:
            ok(r)
        before = s.images()
        assert len(before) == 1 and "seed 0" in before[0][1], before
        r = ok(await vaelab.generate(s, rng))
        after = s.images()
        assert "seed 1" in after[0][1] and after[0][0] != before[0][0], (before, after)
        assert r.media_count == 1, "the new picture was fetched, as a browser does"

        ok(await s.switch_page(vaelab.PAGES["map"]))
        for _ in range(2):
            point = vaelab.map_click_point(s, rng)
            r = ok(await s.select_points(vaelab.KEYS["map"], [point]))
            shown = [c for c in captions(s) if c.startswith("Clicked #")]
            assert len(shown) == 1 and shown[0].startswith(f"Clicked #{point['customdata']},"), (point, shown)
            assert r.media_count >= 1
        r = ok(await vaelab.map_click(s, rng))
        assert s.error is None
    finally:
        await s.close()


async def sliders_and_recon(url: str) -> None:
    rng = random.Random(1)
    s, opened = await vaelab.open_app(url, "sliders")
    try:
        for r in opened:
            ok(r)
        key = vaelab.KEYS["sliders"]
        # the panel's fallback: the browser says it cannot decode, so the page shows the
        # server-decoded image of the released z; a second release changes it
        pictures = []
        for _ in range(2):
            ok(await s.set_component_state(key, "value", vaelab.slider_release_value(s, rng, browser=False)))
            panel_images = [u for u, cap in s.images() if cap == ""]
            assert len(panel_images) == 1, s.images()
            pictures.append(panel_images[0])
        assert pictures[0] != pictures[1], "a new z decodes to a new picture"
        # the normal path (decoded in the browser): the released z reaches Python, which saves it
        for name in ("P1", "P2"):
            ok(await vaelab.slider_release(s, rng))
            assert not [u for u, cap in s.images() if cap == ""], "no server image while the browser decodes"
            ok(await s.click("sliders.save"))
        saved = captions(s)
        assert saved["P1"] != saved["P2"], "two released points decode to two pictures"

        ok(await s.switch_page(vaelab.PAGES["recon"]))
        ok(await s.set_value("recon.count", "8"))  # an option label (an int is an index)
        pairs = [cap for cap in captions(s) if "nats" in cap]
        assert len(pairs) == 8, pairs
        first = s.images()[0]
        ok(await s.set_value("recon.sort", ["Best first"]))
        assert s.images()[0] != first, "another order shows other pairs first"
        for _ in range(3):
            ok(await vaelab.recon_change(s, rng))
        assert s.error is None
    finally:
        await s.close()


async def reruns_stay_in_their_fragment(url: str) -> None:
    """Each page's interaction reruns the part of the page it changes (a fragment), not the sidebar and the rest:
    it sends well under the messages of a full run of the page, and the sidebar's run picker stays on screen."""
    rng = random.Random(2)
    for page in ("generate", "sliders", "map", "recon"):
        s, opened = await vaelab.open_app(url, page)
        try:
            for r in opened:
                ok(r)
            full = ok(await s.rerun())
            assert not s.model.run_fragments, "a rerun of the page runs all of it"
            for _ in range(2):
                r = ok(await vaelab.INTERACTIONS[page](s, rng))
                assert s.model.run_fragments, f"{page}: the interaction reran the whole page"
                assert r.messages <= 0.75 * full.messages, (page, r.messages, full.messages)
            assert s.element("app.run", "selectbox") is not None, "the sidebar is still there"
        finally:
            await s.close()


async def both(url: str) -> None:
    # One tab first visits every page: two tabs racing through a cold server's first imports
    # can hit a half-imported pandas in plotly (reported; not what this test is about).
    assert await vaelab.warm_up(url, list(vaelab.PAGES)) == []
    await asyncio.gather(generate_and_map(url), sliders_and_recon(url))
    await returning_and_first(url)
    await reruns_stay_in_their_fragment(url)


async def returning_and_first(url: str) -> None:
    """A tab with the person cookie is that person and gets no cookie component; a first visit gets one."""
    back = stclient.Session(url, cookies=vaelab.returning_browser(7))
    first = stclient.Session(url)
    try:
        ok(await back.open())
        ok(await first.open())
        with pytest.raises(KeyError):
            back.element(vaelab.COOKIE_KEY, "bidi_component")
        assert first.element(vaelab.COOKIE_KEY, "bidi_component") is not None
    finally:
        await back.close()
        await first.close()


def test_load_client_interactions_work_on_the_app(tmp_path):
    """In a thread of its own: after the browser tests, Playwright's sync API holds this thread's event loop."""
    with app_server(env={"VAE_LAB_RUNS_DIR": str(tmp_path)}) as url:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, both(url)).result()
