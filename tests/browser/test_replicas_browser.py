"""Two app servers (replicas) on two ports sharing one runs folder, in Chromium: a run trained on one is listed
on the other, two runs saved at the same moment never share a folder, and the shipped nginx configuration
(deploy/nginx.conf: TLS, the login, websocket upgrade, sticky sessions) serves the app in front of both."""
from __future__ import annotations

import contextlib
import os

import pytest
from conftest import ROOT, new_page, settle, wait_finished

from labkit.appserver import app_server, free_port
from labkit.nginxfront import PASSWORD, USER, missing, render, serve, serve_env
from vae import jobs
from vae.runs import list_runs

APP = ROOT / "app.py"
PICKER = "[data-testid='stSidebar'] [data-testid='stSelectbox']"
EXC = "[data-testid='stException']"



def quick_run(page) -> None:
    """Quick demo settings, cut to 1 epoch of 500 images: a run that finishes in seconds."""
    page.get_by_role("button", name="Quick demo settings").click()
    settle(page)
    box = page.get_by_role("textbox", name="Epochs", exact=True)
    box.fill("1")
    box.press("Enter")
    settle(page)
    page.locator("[data-testid='stExpander'] summary", has_text="Advanced").click()
    box = page.get_by_role("textbox", name="Max training images (0 = all)", exact=True)
    box.fill("500")
    box.press("Enter")
    settle(page)


@contextlib.contextmanager
def replicas(runs_dir, n=2, ports=None):
    env = {**serve_env(), "VAE_LAB_RUNS_DIR": str(runs_dir), "VAE_LAB_THREADS": "1"}
    with contextlib.ExitStack() as stack:
        urls = [stack.enter_context(app_server(APP, env=env, port=None if ports is None else ports[i]))
                for i in range(n)]
        yield urls


def picker_options(page) -> str:
    page.locator(PICKER).click()
    text = page.locator("[role='listbox']").inner_text()
    page.keyboard.press("Escape")
    return text


def test_a_run_trained_on_one_replica_is_listed_on_the_other(browser, tmp_path):
    runs = tmp_path / "runs"
    with replicas(runs) as (one, two):
        a = new_page(browser, f"{one}/train", wait_for=PICKER)
        b = new_page(browser, f"{two}/train", wait_for=PICKER)
        for page in (a, b):               # both replicas start a run at the same moment
            quick_run(page)
        a.get_by_role("button", name="Start").click()
        b.get_by_role("button", name="Start").click()
        for page in (a, b):
            wait_finished(page, runs, servers=(one, two))
        saved = list_runs(runs)
        assert len(saved) == 2 and saved[0] != saved[1], "two runs saved at once share no folder"
        assert all(jobs.read_status(p)["state"] == "done" for p in saved)
        # each replica lists both runs, the one trained on the other included
        for page in (a, b):
            page.goto(page.url.rsplit("/", 1)[0] + "/")
            page.wait_for_selector(PICKER)
            settle(page)
            options = picker_options(page)
            assert all(p.name in options for p in saved), options
            assert page.locator(EXC).count() == 0
            page.context.close()


@pytest.fixture
def nginx_front(tmp_path):
    """deploy/nginx.conf as shipped, rendered with free ports, a throwaway certificate and a login
    (bench/nginxfront.py); and the two replica ports it balances."""
    if why := missing():
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    ports = [free_port(), free_port()]
    return render(tmp_path / "deploy", ports), ports


def logged_in_page(browser, url: str, *, wait_for: str):
    """conftest's new_page, in a context that logs in and accepts the self-signed certificate."""
    ctx = browser.new_context(viewport={"width": 1100, "height": 900}, color_scheme="light", ignore_https_errors=True,
                              http_credentials={"username": USER, "password": PASSWORD})
    page = ctx.new_page()
    page.set_default_timeout(60_000)
    page.goto(url)
    page.wait_for_selector(wait_for, state="attached")
    return page


def test_the_shipped_nginx_config_balances_two_replicas_with_sticky_websockets(browser, tmp_path, nginx_front):
    front, ports = nginx_front
    with replicas(tmp_path / "runs", ports=ports) as urls, serve(front):
        base = f"https://localhost:{front.https}"
        # several browsers through the balancer: each gets the app, its pictures and live updates
        replicas_hit = set()
        for _ in range(4):
            page = logged_in_page(browser, f"{base}/generate", wait_for=PICKER)
            page.get_by_role("button", name="New samples").wait_for()
            settle(page)
            before = page.locator("[data-testid='stMain'] [data-testid='stImage'] img").first.get_attribute("src")
            page.get_by_role("button", name="New samples").click()
            page.wait_for_function(
                "(src) => { const i = document.querySelector(\"[data-testid='stMain'] [data-testid='stImage'] "
                "img\"); return i && i.getAttribute('src') !== src && i.complete && i.naturalWidth > 0; }",
                arg=before)
            cookie = [c for c in page.context.cookies() if c["name"] == "vaelab_replica"]
            assert cookie, "the balancer pins the browser with its cookie"
            assert cookie[0]["secure"], "over TLS the cookie is Secure"
            replicas_hit.add(cookie[0]["value"])
            assert page.locator(EXC).count() == 0
            page.context.close()
        assert len(replicas_hit) == 4, "each new browser gets its own sticky key"
    assert urls
