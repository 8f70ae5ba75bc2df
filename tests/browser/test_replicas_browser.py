"""Two app servers (replicas) on two ports sharing one runs folder, in Chromium: a run trained on one is listed
on the other, two runs saved at the same moment never share a folder, and the shipped nginx configuration
(deploy/nginx.conf: websocket upgrade, sticky sessions) serves the app in front of both."""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
import urllib.request

import pytest
from conftest import ROOT, new_page, settle

from bench.appserver import app_server, free_port
from vae import jobs
from vae.runs import list_runs

APP = ROOT / "app.py"
PICKER = "[data-testid='stSidebar'] [data-testid='stSelectbox']"
EXC = "[data-testid='stException']"



def quick_run(page) -> None:
    """Quick demo settings, cut to 1 epoch of 500 images: a run that finishes in seconds."""
    page.get_by_role("button", name="Quick demo settings").click()
    settle(page)
    box = page.get_by_role("spinbutton", name="Epochs", exact=True)
    box.fill("1")
    box.press("Enter")
    settle(page)
    page.locator("[data-testid='stExpander'] summary", has_text="Advanced").click()
    box = page.get_by_role("spinbutton", name="Max training images (0 = all)", exact=True)
    box.fill("500")
    box.press("Enter")
    settle(page)


@contextlib.contextmanager
def replicas(runs_dir, n=2, ports=None):
    env = {"VAE_LAB_RUNS_DIR": str(runs_dir), "VAE_LAB_THREADS": "1"}
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
            page.get_by_text("Training finished").first.wait_for(timeout=120_000)
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


def _nginx() -> str | None:
    return shutil.which("nginx") or (os.path.exists("/usr/sbin/nginx") and "/usr/sbin/nginx") or None


@pytest.fixture
def nginx_conf(tmp_path):
    """deploy/nginx.conf as shipped, with free ports and private temp paths substituted."""
    if _nginx() is None:
        if os.environ.get("CI"):
            pytest.fail("nginx is not installed (.ci/run installs it)")
        pytest.skip("nginx is not installed (apt-get install nginx)")
    ports = {"8501": str(free_port()), "8502": str(free_port()), "8080": str(free_port())}
    text = (ROOT / "deploy" / "nginx.conf").read_text()
    for old, new in ports.items():
        text = text.replace(f"127.0.0.1:{old}", f"127.0.0.1:{new}")
        text = text.replace(f"listen {old};", f"listen 127.0.0.1:{new};")
    text = text.replace("/tmp/vae-lab-nginx", str(tmp_path / "nginx"))
    conf = tmp_path / "nginx.conf"
    conf.write_text(text)
    return conf, [int(ports["8501"]), int(ports["8502"])], int(ports["8080"])


def test_the_shipped_nginx_config_balances_two_replicas_with_sticky_websockets(browser, tmp_path, nginx_conf):
    conf, ports, front = nginx_conf
    with replicas(tmp_path / "runs", ports=ports) as urls:
        proc = subprocess.Popen([_nginx(), "-c", str(conf), "-g", "daemon off;"], stderr=subprocess.PIPE)
        try:
            base = f"http://127.0.0.1:{front}"
            deadline = time.monotonic() + 20
            while True:
                try:
                    with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
                    time.sleep(0.2)
            # several browsers through the balancer: each gets the app, its pictures and live updates
            replicas_hit = set()
            for _ in range(4):
                page = new_page(browser, f"{base}/generate", wait_for=PICKER)
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
                replicas_hit.add(cookie[0]["value"])
                assert page.locator(EXC).count() == 0
                page.context.close()
            assert len(replicas_hit) == 4, "each new browser gets its own sticky key"
        finally:
            proc.terminate()
            proc.wait(10)
    assert urls
