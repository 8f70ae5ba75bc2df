"""Training as queued jobs in Chromium: Start beyond the limit waits in the queue with its place, trains when
a slot frees, Stop saves; and a server killed mid-training comes back to find its jobs (the live one still
training, the dead one interrupted with a Resume button for its owner). Each browser context is a person (its
cookie); the servers run without a class's epoch limit, since these runs train until stopped."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from conftest import ROOT, expand, new_page, settle

from labkit.appserver import app_server
from vae import jobs

APP = ROOT / "app.py"
PICKER = "[data-testid='stSidebar'] [data-testid='stSelectbox']"
EXC = "[data-testid='stException']"
MAIN_PROGRESS = "[data-testid='stMain'] [data-testid='stProgress']"


def open_train(browser, url):
    page = new_page(browser, f"{url}/train", wait_for=PICKER)
    page.get_by_role("button", name="Start").wait_for()
    settle(page)
    return page


def reopen_train(browser, url, person):
    """The Train page in a new context holding ``person``'s cookies (``storage_state()`` of their old context)."""
    ctx = browser.new_context(viewport={"width": 1100, "height": 900}, storage_state=person)
    page = ctx.new_page()
    page.set_default_timeout(60_000)
    page.goto(f"{url}/train")
    page.wait_for_selector(PICKER, state="attached")
    settle(page)
    return page



def set_number(page, name: str, value: int) -> None:
    box = page.get_by_role("textbox", name=name, exact=True)
    box.fill(str(value))
    box.press("Enter")
    settle(page)


def start_long_run(page) -> None:
    """A small model on 300 digits for 500 epochs: it trains until stopped."""
    set_number(page, "Epochs", 500)
    expand(page, "Advanced")
    set_number(page, "Max training images (0 = all)", 300)
    set_number(page, "Max test images (0 = all)", 50)
    page.get_by_role("button", name="Start").click()
    page.get_by_role("button", name="Stop").wait_for()



def progress_text(page) -> str:
    bar = page.locator(MAIN_PROGRESS).first
    bar.wait_for()
    return bar.inner_text()


def wait_text(page, selector: str, text: str, timeout: float = 60_000) -> None:
    page.wait_for_function("([sel, t]) => [...document.querySelectorAll(sel)].some(e => e.innerText.includes(t))",
                           arg=[selector, text], timeout=timeout)


def test_start_beyond_the_limit_queues_with_its_place_then_trains_and_stop_saves(browser, tmp_path):
    runs = tmp_path / "runs"
    env = {"VAE_LAB_RUNS_DIR": str(runs), "VAE_LAB_MAX_JOBS": "1", "VAE_LAB_THREADS": "1", "VAE_LAB_MAX_EPOCHS": "0"}
    with app_server(APP, env=env) as url:
        a, b = open_train(browser, url), open_train(browser, url)
        start_long_run(a)
        wait_text(a, MAIN_PROGRESS, "Epoch")                         # A trains
        start_long_run(b)
        wait_text(b, MAIN_PROGRESS, "place 1")                       # B waits, and says where
        assert "At most 1 run(s) train at once" in progress_text(b)
        a.get_by_role("button", name="Stop").click()
        wait_text(a, "[data-testid='stAlert']", "Stopped by request", timeout=60_000)
        assert "now the active run" in a.locator("[data-testid='stAlert']").first.inner_text()
        wait_text(b, MAIN_PROGRESS, "Epoch", timeout=60_000)          # A's slot went to B
        b.get_by_role("button", name="Stop").click()
        wait_text(b, "[data-testid='stAlert']", "Stopped by request", timeout=60_000)
        states = sorted(s["state"] for _, s in jobs.list_jobs(runs))
        assert states == ["stopped", "stopped"], states
        for page in (a, b):
            assert page.locator(EXC).count() == 0
            page.context.close()


def test_a_server_killed_mid_training_comes_back_to_its_jobs(browser, tmp_path):
    runs = tmp_path / "runs"
    env = {"VAE_LAB_RUNS_DIR": str(runs), "VAE_LAB_MAX_JOBS": "2", "VAE_LAB_THREADS": "1", "VAE_LAB_MAX_EPOCHS": "0"}
    with app_server(APP, env=env) as url:
        pages = [open_train(browser, url), open_train(browser, url)]
        for page in pages:
            start_long_run(page)
            wait_text(page, MAIN_PROGRESS, "Epoch")
        live, dead = [p for p, _ in jobs.list_jobs(runs)]
        wait_for_epoch(live, 1)
        wait_for_epoch(dead, 1)
        os.kill(url.pid, signal.SIGKILL)                               # the server dies; its jobs do not
        os.kill(jobs.read_status(dead)["pid"], signal.SIGKILL)         # ... but one of them dies too
        people = [page.context.storage_state() for page in pages]      # their browsers keep who they are
        for page in pages:
            page.context.close()
    time.sleep(0.5)
    assert jobs.is_alive(jobs.read_status(live))
    with app_server(APP, env=env) as url:
        page = reopen_train(browser, url, people[1])                  # the dead job's owner comes back
        # the live job is listed as in progress; the dead one as interrupted, kept up to its last epoch
        expand(page, "Other runs in progress (1)")
        wait_text(page, "[data-testid='stMain']", live.name)
        wait_text(page, "[data-testid='stMain']", "kept up to epoch")
        assert dead.name in page.locator("[data-testid='stExpander']", has_text="Interrupted runs").inner_text()
        # Resume continues the dead one here, live
        page.get_by_role("button", name="Resume").first.click()
        try:
            page.get_by_role("button", name="Stop").wait_for(timeout=90_000)
        except Exception as e:       # say what the page shows instead
            raise AssertionError(page.locator("[data-testid='stMain']").inner_text()[:800]) from e
        wait_text(page, MAIN_PROGRESS, "Epoch")
        page.get_by_role("button", name="Stop").click()
        wait_text(page, "[data-testid='stAlert']", "Stopped by request")
        assert jobs.read_status(dead)["state"] == "stopped"
        assert page.locator(EXC).count() == 0
        page.context.close()
        # the live job's owner comes back to the job the old server left running, with its Stop button
        page = reopen_train(browser, url, people[0])
        page.get_by_role("button", name="Stop").wait_for(timeout=90_000)
        page.get_by_role("button", name="Stop").click()
        wait_text(page, "[data-testid='stAlert']", "Stopped by request")
        assert jobs.read_status(live)["state"] == "stopped"
        assert page.locator(EXC).count() == 0
        page.context.close()


def wait_for_epoch(run_dir: Path, n: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while (jobs.read_status(run_dir) or {}).get("epoch", 0) < n:
        assert time.monotonic() < deadline, f"{run_dir.name} did not finish epoch {n}"
        time.sleep(0.2)
