"""VAE Lab's pages and the interactions a person does there, sent the way Chromium sends them.

Used by bench/load.py, bench/soak.py and tests/test_load_client.py. Each interaction is a
coroutine ``f(session, rng) -> RunResult`` for a session already showing its page:

- ``generate``: press "New samples" (key ``gen.redraw``): a button trigger.
- ``sliders``: release a latent slider of the ``st.components.v2`` panel (key ``sliders.panel``,
  ui/live_decoder.js): its ``commit`` calls ``setStateValue("value", {z, label, data_id,
  browser, want})``, which the frontend sends as the element's ``json_value``
  ``{"value": {...}}``. One dimension (from the panel's ``order``) moves to a new value on the
  range input's grid (``range / 300`` steps), the others keep the last committed z.
- ``map``: click a point of the latent map (``st.plotly_chart(..., on_select=..., key="map.chart")``,
  clickmode ``event+select``): a ``string_value`` selection of one point, with plotly's
  ``x``/``y``/``customdata`` for that point read from the chart's spec.
- ``recon``: change a widget on Reconstructions: the order (segmented control), the number of
  pairs shown (select_slider) or the test image number (number_input), chosen at random.
"""
from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass, field

from .protocol import RunResult, component_data, plotly_point, plotly_traces
from .session import Session

PAGES = {"generate": "generate", "sliders": "sliders", "map": "latent_map", "recon": "reconstructions"}
KEYS = {"generate": "gen.redraw", "sliders": "sliders.panel", "map": "map.chart", "recon": "recon.sort"}
PERSON_COOKIE = "vaelab_person"            # ui/identity.py: a browser's person token, stored after its first page
COOKIE_KEY = "app.who_cookie"              # ui/state.py WHO_COOKIE: the component that stores it


def returning_browser(i: int) -> dict[str, str]:
    """The cookies tab ``i`` brings once its browser has visited before: a person token of its own (43 characters,
    as ``secrets.token_urlsafe(32)`` makes them)."""
    return {PERSON_COOKIE: f"loadbench-tab-{i:06d}-".ljust(43, "x")}


async def open_app(url: str, page: str, timeout: float = 60.0, **kw) -> tuple[Session, list[RunResult]]:
    """A new tab on Home, then a sidebar link to ``page`` (a key of PAGES, or a url path)."""
    s = Session(url, timeout=timeout, **kw)
    home = await s.open()
    if not home.ok:
        return s, [home]
    return s, [home, await s.switch_page(PAGES.get(page, page))]


# ---------------------------------------------------------------------- the four interactions
async def generate(s: Session, rng: random.Random) -> RunResult:
    return await s.click(KEYS["generate"])


def slider_release_value(s: Session, rng: random.Random, browser: bool = True) -> dict:
    """The value the panel commits when a slider is released after a drag to a random spot."""
    data = component_data(s.element(KEYS["sliders"], "bidi_component"))
    if not data:
        raise KeyError("the sliders panel carries no JSON data (a server-side fallback panel?)")
    committed = s.state(KEYS["sliders"])
    z = list(data["z0"])
    if committed:
        prev = json.loads(committed).get("value") or {}
        if prev.get("data_id") == data["data_id"] and len(prev.get("z", [])) == len(z):
            z = list(prev["z"])
    r = float(data["range"])
    dim = rng.choice(data["order"])
    steps = 600  # <input type=range min=-R max=R step=R/300>
    k = rng.randrange(steps + 1)
    while len(z) and abs((-r + k * r / 300) - z[dim]) < 1e-9:
        k = rng.randrange(steps + 1)
    z[dim] = round(-r + k * r / 300, 10)
    return {"z": z, "label": data.get("label0"), "data_id": data["data_id"], "browser": browser, "want": None}


async def slider_release(s: Session, rng: random.Random, browser: bool = True) -> RunResult:
    """``browser=False`` is the panel's fallback (the browser cannot decode): Python draws the image."""
    return await s.set_component_state(KEYS["sliders"], "value", slider_release_value(s, rng, browser))


def map_click_point(s: Session, rng: random.Random) -> dict:
    """A random test point of the map (a marker trace with customdata), not the one selected now."""
    traces = plotly_traces(s.element(KEYS["map"], "plotly_chart").spec)
    pts = [(c, i) for c, t in enumerate(traces) if t.get("customdata") is not None and t.get("x")
           and "markers" in (t.get("mode") or "markers") for i in range(len(t["x"]))]
    if not pts:
        raise KeyError("the latent map has no clickable points")
    current = s.state(KEYS["map"]) or ""
    for _ in range(20):
        point = plotly_point(traces, *rng.choice(pts))
        if f'"customdata":{point["customdata"]}' not in current:
            break
    return point


async def map_click(s: Session, rng: random.Random) -> RunResult:
    return await s.select_points(KEYS["map"], [map_click_point(s, rng)])


async def recon_change(s: Session, rng: random.Random) -> RunResult:
    what = rng.choice(["recon.sort", "recon.count", "recon.index"])
    w = s.model.find(what)
    now = s.state(what)
    if what == "recon.sort":
        options = [o.content for o in w.proto.options]
        return await s.set_value(what, [rng.choice([o for o in options if [o] != now])])
    if what == "recon.count":
        options = list(w.proto.options)
        return await s.set_value(what, rng.choice([o for o in options if [o] != now]))
    hi = int(w.proto.max) if w.proto.has_max else 100
    v = rng.randrange(int(w.proto.min), hi + 1)
    return await s.set_value(what, v if v != now else (v + 1) % (hi + 1))


INTERACTIONS = {"generate": generate, "sliders": slider_release, "map": map_click, "recon": recon_change}


async def warm_up(url: str, pages: list[str], timeout: float = 180.0, **kw) -> list[str]:
    """Each page once, with one interaction, on one tab (imports, model loads, caches);
    returns what went wrong, if anything. ``kw`` goes to the ``Session``."""
    problems, rng = [], random.Random(0)
    s = Session(url, timeout=max(timeout, 180.0), **kw)
    try:
        r = await s.open()
        for page in pages:
            if r.ok:
                r = await s.switch_page(PAGES[page])
            if r.ok:
                r = await INTERACTIONS[page](s, rng)
            if not r.ok:
                problems.append(f"warm-up {page}: {r.action} {r.status} {'; '.join(r.exceptions)[:200]}")
                break
    finally:
        await s.close()
    return problems


# ---------------------------------------------------------------------- a training session
@dataclass
class Trainer:
    """A tab on the Train page that started a run and keeps polling it like the browser's
    ``run_every`` timer (each poll is the job's heartbeat)."""
    session: Session
    started: RunResult
    live_panel: bool                           # the page shows the running job (its Stop button)
    polls: list[RunResult] = field(default_factory=list)
    task: asyncio.Task | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def running(self) -> bool:
        try:
            self.session.model.find("train.stop")
            return True
        except KeyError:
            return False

    async def _poll(self, stop: asyncio.Event) -> None:
        s = self.session
        while not stop.is_set() and not s.closed:
            interval = min(s.auto_reruns.values(), default=1.0)
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval)
                return
            except asyncio.TimeoutError:
                pass
            for fid in list(s.auto_reruns):  # every run_every fragment has its own timer in the browser
                if stop.is_set() or s.closed:
                    return
                self.polls.append(await s.run_fragment(fid))

    def report(self, runs_dir) -> dict:
        """Did it train: the Start result, the live panel, run folders, the polls (each a heartbeat)."""
        polls = self.polls
        return {"start_status": self.started.status, "start_exceptions": self.started.exceptions[:3],
                "live_panel": self.live_panel, "running_at_end": self.running,
                "run_folders": sorted(p.name for p in runs_dir.iterdir() if not p.name.startswith(".")),
                "polls": len(polls),
                "poll_ms_p50": _ms(sorted(p.seconds for p in polls if p.ok)),
                "poll_errors": sum(1 for p in polls if not p.ok),
                "poll_exceptions": sorted({e for p in polls for e in p.exceptions})[:3]}

    def start_polling(self, stop: asyncio.Event) -> None:
        self.task = asyncio.create_task(self._poll(stop))

    async def finish(self) -> None:
        if self.task is not None:
            await self.task
        try:
            if self.running:
                await self.session.click("train.stop")
        finally:
            await self.session.close()


def _ms(sorted_seconds: list[float]) -> float | None:
    return round(sorted_seconds[len(sorted_seconds) // 2] * 1000, 1) if sorted_seconds else None


async def start_training(url: str, seconds: float, timeout: float = 120.0, **kw) -> Trainer:
    """Open Train, press "Quick demo settings" (train.quick), make it last ``seconds`` (time budget
    and enough epochs; 0 keeps the quick settings), press Start (train.start). ``kw`` goes to the ``Session``."""
    s, opened = await open_app(url, "train", timeout=timeout, **kw)
    notes: list[str] = []
    r = opened[-1]
    if r.ok:
        r = await s.click("train.quick")
    if r.ok and seconds > 0:
        for key, value in (("train.time_budget", str(int(seconds))), ("train.epochs", "1000")):  # text boxes
            try:
                r = await s.set_value(key, value)
            except KeyError as e:
                notes.append(f"kept the quick setting for {key}: {e}")
    if r.ok:
        r = await s.click("train.start")
    t = Trainer(s, r, live_panel=False, notes=notes)
    deadline = time.monotonic() + 30
    while r.ok and not s.auto_reruns and time.monotonic() < deadline:  # Start reruns into the live panel
        await asyncio.sleep(0.5)
        r = await s.rerun()
    t.live_panel = t.running
    return t
