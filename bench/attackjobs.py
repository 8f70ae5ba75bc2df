"""The attacks of bench/class_attacks.py on training jobs (issue 20, items 5-7): person A trains; B (another
cookie) tries to stop, resume and delete A's job, with the buttons it is shown and with the ids of buttons only A and
the teacher are shown; B's watcher tab closes; A presses Resume in two tabs at once, and Start in three. Each checks
the runs folder (``job.json``, the processes training a run, the ``start`` events) rather than only the page.
"""
from __future__ import annotations

import asyncio
from pathlib import Path

import attackkit as kit
from attackcases import Ctx, Row, Skip, end_jobs, jobs, starts, state, status, wait_until


def stop_keys(tab: kit.Tab) -> list[str]:
    return sorted(k for k in tab.keys() if k == "train.stop" or k.startswith("train.stop_any"))


async def start_job(ctx: Ctx) -> tuple[kit.Tab, Path]:
    """A, on Train: the quick demo's settings for up to 200 epochs and 240 s, Start; waits for a first epoch."""
    a1 = await ctx.tab("A", page="train", keep="A1")
    await a1.click("train.quick")
    for key, value in (("train.epochs", "200"), ("train.time_budget", "240")):
        await a1.set_value(key, value)
    before = jobs(ctx.runs)
    await a1.click("train.start")
    await wait_until(lambda: [p for p in jobs(ctx.runs) if p not in before], 30, "A's job queued")
    [run] = [p for p in jobs(ctx.runs) if p not in before]
    await wait_until(lambda: state(run) == "running" and status(run).get("epoch", 0) >= 1, 150, "A's first epoch")
    await a1.rerun()
    return a1, run


async def others_stop(ctx: Ctx) -> Row:
    a1, run = await start_job(ctx)
    ctx.state["run"] = run
    stop_id = a1.widget_id("train.stop")
    b = await ctx.tab("B", page="train", keep="B")
    shown = stop_keys(b)
    # the control: B's own Watch button, sent the way the forged clicks below are sent, does what it says
    await b.forge(b.widget_id(f"train.watch.{run.name}"))
    watching = any(t.startswith(f"Watching {run.name}") for t in b.texts())
    shown += stop_keys(b)
    t = await ctx.tab("T", page="train")
    await t.set_value("app.teacher_password", kit.TEACHER_PASSWORD)
    await t.click("app.teacher_unlock")
    await t.rerun()
    teacher_ids = [t.widget_id(k) for k in stop_keys(t) if k.startswith("train.stop_any.")]
    await t.close()
    if not (watching and teacher_ids and a1.who() != b.who()):
        raise RuntimeError(f"no attack made: B's forged Watch worked {watching}, the teacher's Stop ids "
                           f"{len(teacher_ids)}, A is {a1.who()}, B is {b.who()}")
    for wid in [stop_id, *teacher_ids]:
        await b.forge(wid)
    await asyncio.sleep(3)
    stopped = (run / "stop").exists() or "by request" in str(status(run).get("message"))
    if not stopped and state(run) != "running":
        raise RuntimeError(f"A's job ended by itself: {status(run).get('message')}")
    answer = next((x for x in b.texts() if "only its owner or the teacher can stop it" in x), "")
    detail = {"run": run.name, "a_is": a1.who(), "b_is": b.who(), "stop_buttons_b_saw": shown,
              "control_forged_watch_worked": watching,
              "forged_ids": 1 + len(teacher_ids), "stopped": stopped, "state": state(run)}
    return Row("succeeded" if shown or stopped else "refused", answer, detail)


async def watcher_leaves(ctx: Ctx) -> Row:
    run, b = ctx.run(), ctx.kept.pop("B", None)
    if b is None:
        raise Skip("B was not watching")
    for fid in list(b.auto_reruns):
        await b.run_fragment(fid)
    await b.close()
    await asyncio.sleep(4 * kit.HEARTBEAT_S + 1)
    message = str(status(run).get("message"))
    kept = state(run) == "running" and not (run / "stop").exists()
    if not kept and "heartbeat" not in message and not (run / "stop").exists():
        raise RuntimeError(f"A's job ended by itself: {message}")
    return Row("refused" if kept else "succeeded", f"A's job {state(run)} {4 * kit.HEARTBEAT_S + 1:g} s after",
               {"state": state(run), "message": message, "heartbeat_timeout_s": kit.HEARTBEAT_S})


async def others_resume(ctx: Ctx) -> Row:
    run, a1 = ctx.run(), ctx.kept["A1"]
    pid = status(run)["pid"]
    kit.kill_all([pid])
    ctx.state["killed"] = pid
    await wait_until(lambda: status(run).get("state") == "interrupted", 30, "A's job marked interrupted")
    await a1.rerun()
    a2 = await ctx.tab("A", page="train", keep="A2")
    b = await ctx.tab("B", page="train", keep="B2")
    shown = sorted(k for k in b.keys() if k.startswith("train.resume"))
    before = starts(run)
    for wid in (a1.widget_id("train.resume"), a2.widget_id(f"train.resume.{run.name}")):
        await b.forge(wid)
    await asyncio.sleep(2)
    answer = next((x for x in b.texts() if run.name in x and "another person's" in x), "")
    ok = not shown and state(run) == "interrupted" and starts(run) == before
    return Row("refused" if ok else "succeeded", answer,
               {"resume_buttons_b_saw": shown, "state": state(run), "starts": starts(run) - before})


async def others_delete(ctx: Ctx) -> Row:
    run, a1, b = ctx.run(), ctx.kept["A1"], ctx.kept["B2"]
    await a1.rerun()
    shown = sorted(k for k in b.keys() if k.startswith("train.delete"))
    await b.forge(a1.widget_id(f"train.delete.{run.name}"))
    await asyncio.sleep(1)
    there = (run / "config.json").is_file()
    return Row("refused" if there and not shown else "succeeded", f"{run.name} still there: {there}",
               {"delete_buttons_b_saw": shown, "folder_kept": there})


async def two_resumes(ctx: Ctx) -> Row:
    run, a1, a2 = ctx.run(), ctx.kept["A1"], ctx.kept["A2"]
    killed, before = ctx.state.get("killed"), starts(run)
    await a1.rerun()
    await a2.rerun()
    await asyncio.gather(a1.click("train.resume"), a2.click(f"train.resume.{run.name}"))
    await wait_until(lambda: state(run) == "running" and status(run).get("pid") != killed, 90, "the resumed run")
    await asyncio.sleep(3)                                  # time for a second launch, were there one
    procs = kit.processes_naming(str(run), "--resume")
    lines = [x for t in (a1, a2) for x in t.alerts(sidebar=False) if "is already" in x]
    detail = {"processes": len(procs), "starts": starts(run) - before, "lines": lines}
    await end_jobs(ctx.runs)
    ok = len(procs) == 1 and detail["starts"] == 1
    return Row("refused" if ok else "succeeded", lines[0] if lines else "", detail)


async def three_tabs(ctx: Ctx) -> Row:
    await end_jobs(ctx.runs)
    tabs = [await ctx.tab("A", page="train") for _ in range(3)]
    for t in tabs:
        await t.click("train.quick")
    before = jobs(ctx.runs)
    await asyncio.gather(*(t.click("train.start") for t in tabs))
    await asyncio.sleep(2)
    new = [p for p in jobs(ctx.runs) if p not in before]
    lines = [x for t in tabs for x in t.alerts(sidebar=False) if x.startswith("Cannot start")]
    owners = sorted({status(p).get("owner", "")[:8] for p in new})
    await end_jobs(ctx.runs)
    if not new:
        raise RuntimeError(f"no tab started a job: {lines[:1]}")
    return Row("refused" if len(new) == 1 and len(lines) == 2 else "succeeded", lines[0] if lines else "",
               {"jobs": len(new), "owners": owners, "refused_tabs": len(lines)})
