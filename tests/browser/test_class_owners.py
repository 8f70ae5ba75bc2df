"""Two people (two browser contexts, so two cookie jars) and a teacher on one server, in Chromium: B cannot stop,
resume or delete A's job and the teacher can; a watcher's closed tab does not stop the owner's job (the owner's does);
two Resumes pressed at once in two tabs of the owner start one process; a reload keeps who you are."""
from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

from conftest import ROOT, expand, settle
from test_jobs_browser import EXC, MAIN_PROGRESS, open_train, start_long_run, wait_for_epoch, wait_text

from labkit.appserver import app_server
from vae import jobs

APP = ROOT / "app.py"
PASSWORD = "a long teacher's password"
SIDEBAR = "[data-testid='stSidebar']"
MAIN = "[data-testid='stMain']"


def server_env(runs: Path, **extra) -> dict:
    # runs that train until stopped need more epochs than a class's limit
    return {"VAE_LAB_RUNS_DIR": str(runs), "VAE_LAB_MAX_JOBS": "2", "VAE_LAB_THREADS": "1", "VAE_LAB_MAX_EPOCHS": "0",
            "VAE_LAB_TEACHER_PASSWORD": PASSWORD, **{k: str(v) for k, v in extra.items()}}


def who(page) -> str:
    """The person the sidebar says this browser is ("person 3f9a2c")."""
    page.locator(SIDEBAR).get_by_text("You are").first.wait_for()
    return re.search(r"You are (person [0-9a-f]{6})", page.locator(SIDEBAR).inner_text()).group(1)


def button(where, name: str):
    """Buttons named exactly ``name`` (after the icon's ligature, which is part of a button's accessible name)."""
    return where.get_by_role("button", name=re.compile(rf"(^|\s){re.escape(name)}$"))


def buttons(page, name: str, where: str = MAIN) -> int:
    return button(page.locator(where), name).count()


def unlock_teacher(page) -> None:
    expand(page, "Teacher")
    box = page.get_by_label("Teacher's password", exact=True)
    box.fill(PASSWORD)
    box.press("Enter")
    settle(page)
    button(page.locator(SIDEBAR), "Unlock").click()
    wait_text(page, SIDEBAR, "Teacher mode")
    settle(page)


def reload_train(page) -> None:
    page.reload()
    page.locator(SIDEBAR).get_by_text("You are").first.wait_for()
    page.locator(MAIN).get_by_role("heading", name="Train", exact=True).wait_for()
    settle(page)


def job_of(runs: Path) -> Path:
    [(run, _)] = jobs.list_jobs(runs)
    return run


def wait_state(run: Path, want: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while jobs.effective_state(jobs.read_status(run)) != want:
        assert time.monotonic() < deadline, f"{run.name} is {jobs.effective_state(jobs.read_status(run))}, not {want}"
        time.sleep(0.2)


def kill_job(run: Path) -> None:
    os.kill(jobs.read_status(run)["pid"], signal.SIGKILL)
    wait_state(run, "interrupted", timeout=60)


def test_b_cannot_stop_resume_or_delete_as_job_and_the_teacher_can(browser, tmp_path):
    runs = tmp_path / "runs"
    with app_server(APP, env=server_env(runs)) as url:
        a = open_train(browser, url)
        me = who(a)
        start_long_run(a)
        run = job_of(runs)
        wait_for_epoch(run, 1, timeout=120)
        reload_train(a)                                          # the same browser is the same person, with its job
        assert who(a) == me and buttons(a, "Stop") == 1
        b = open_train(browser, url)
        assert who(b) != me and buttons(b, "Stop") == 0
        expand(b, "Other runs in progress (1)")
        others = b.locator("[data-testid='stExpander']", has_text="Other runs in progress").inner_text()
        assert run.name in others and "another person's" in others and me not in others
        button(b.locator(MAIN), "Watch").click()
        wait_text(b, MAIN, f"Watching {run.name}")
        wait_text(b, MAIN_PROGRESS, "Epoch")                     # its live dashboard, read-only
        assert buttons(b, "Stop") == 0 and buttons(b, "Stop this run") == 0 and buttons(b, "Stop watching") == 1
        # A's job dies: B sees it interrupted, with no Resume; A sees Resume
        kill_job(run)
        reload_train(b)
        interrupted = b.locator("[data-testid='stExpander']", has_text="Interrupted runs (1)")
        interrupted.wait_for()
        assert run.name in interrupted.inner_text() and buttons(b, "Resume") == 0
        # the teacher resumes it (it stays A's), sees whose it is, and stops it
        t = open_train(browser, url)
        unlock_teacher(t)
        reload_train(t)
        assert "Teacher mode" in t.locator(SIDEBAR).inner_text()         # the same browser stays the teacher
        button(t.locator("[data-testid='stExpander']", has_text="Interrupted runs (1)"), "Resume").click()
        wait_state(run, "running")
        assert jobs.read_status(run)["owner"].startswith("p-") and who(a) == me
        reload_train(b)
        assert buttons(b, "Stop") == 0 and buttons(b, "Resume") == 0
        reload_train(t)
        expand(t, "Other runs in progress (1)")
        box = t.locator("[data-testid='stExpander']", has_text="Other runs in progress")
        assert me in box.inner_text()                            # the teacher sees whose it is
        button(box, "Stop").click()
        wait_state(run, "stopped")
        # B has nothing to delete; A has it under Your runs; the teacher deletes it
        reload_train(b)
        assert buttons(b, "Delete") == 0
        reload_train(a)
        expand(a, "Your runs (1)")
        mine = a.locator("[data-testid='stExpander']", has_text="Your runs (1)")
        assert run.name in mine.inner_text() and button(mine, "Delete").count() == 1
        reload_train(t)
        expand(t, "Every run, by owner (1")
        every = t.locator("[data-testid='stExpander']", has_text="Every run, by owner")
        assert me in every.inner_text()
        button(every, "Delete").click()
        button(t, f"Delete {run.name}").click()
        wait_text(t, MAIN, f"Deleted {run.name}.")
        assert not run.exists()
        for page in (a, b, t):
            assert page.locator(EXC).count() == 0
            page.context.close()


def test_a_closed_watcher_tab_does_not_stop_the_owners_job_and_a_closed_owner_tab_does(browser, tmp_path):
    runs = tmp_path / "runs"
    heartbeat = 2.0
    with app_server(APP, env=server_env(runs, VAE_LAB_HEARTBEAT_S=heartbeat)) as url:
        a = open_train(browser, url)
        start_long_run(a)
        run = job_of(runs)
        wait_text(a, MAIN_PROGRESS, "Epoch", timeout=120_000)
        b = open_train(browser, url)
        expand(b, "Other runs in progress (1)")
        button(b.locator(MAIN), "Watch").click()
        wait_text(b, MAIN, f"Watching {run.name}")
        b.context.close()                                        # the watcher leaves
        time.sleep(5 * heartbeat)                                # ... for five heartbeat timeouts
        status = jobs.read_status(run)
        assert jobs.effective_state(status) == "running" and not (run / jobs.STOP).exists(), status.get("message")
        a.context.close()                                        # the owner leaves: now it stops, and is saved
        wait_state(run, "stopped", timeout=120)
        assert "no heartbeat from its owner's browser" in jobs.read_status(run)["message"]


def _processes_of(run: Path) -> list[int]:
    """Pids of the processes training ``run`` (``python -m vae train --resume RUN``), from /proc."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                argv = (d / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"--resume" in argv and str(run).encode() in argv and jobs.pid_alive(int(d.name)):
                out.append(int(d.name))
    return out


def _starts(run: Path) -> int:
    return sum(e.get("type") == "start" for e in jobs.read_events(run)[0])


def test_two_resumes_pressed_at_once_in_two_tabs_start_one_process(browser, tmp_path):
    runs = tmp_path / "runs"
    with app_server(APP, env=server_env(runs)) as url:
        a1 = open_train(browser, url)
        start_long_run(a1)
        run = job_of(runs)
        wait_for_epoch(run, 1, timeout=120)
        kill_job(run)
        before, killed = _starts(run), jobs.read_status(run)["pid"]
        a2 = a1.context.new_page()                               # the same person's second tab
        a2.set_default_timeout(60_000)
        a2.goto(f"{url}/train")
        a2.get_by_role("button", name="Start").wait_for()         # nothing of theirs is running: the form is open
        settle(a2)
        wait_text(a1, MAIN, "kept up to epoch")                  # the first tab shows its job interrupted
        settle(a1)
        r1 = button(a1.locator(MAIN), "Resume").first
        r2 = button(a2.locator(MAIN), "Resume").first
        r2.wait_for()
        r1.wait_for()
        r1.click(no_wait_after=True)
        r2.click(no_wait_after=True)
        deadline = time.monotonic() + 120
        while not (jobs.effective_state(jobs.read_status(run)) == "running"
                   and jobs.read_status(run).get("pid") != killed):
            assert time.monotonic() < deadline, "the resumed run never started"
            time.sleep(0.2)
        time.sleep(3)                                            # time for a second launch, were there one
        assert len(_processes_of(run)) == 1, _processes_of(run)
        # the tab whose press came second was refused, with one line
        deadline = time.monotonic() + 60
        while not any(f"{run.name} is already" in p.locator(MAIN).inner_text() for p in (a1, a2)):
            assert time.monotonic() < deadline, "neither tab says the second Resume was refused"
            time.sleep(0.3)
        reload_train(a1)
        button(a1.locator(MAIN), "Stop").click()
        wait_state(run, "stopped")
        assert _starts(run) == before + 1
        for page in (a1, a2):
            assert page.locator(EXC).count() == 0
        a1.context.close()
