"""The attacks of bench/class_attacks.py on what a browser sends (issue 20, items 1-4 and 8-12, and forged widget
values), and what every attack shares. Each attack is a coroutine ``attack(ctx) -> Row``: it acts through
``attackkit.Tab`` (a person's browser tab over Streamlit's websocket) and checks the outcome where it shows: the line
the page shows, the runs folder (``job.json``, its processes), the access time of a file that must not be read. What
the attacks share (the server, the people, the tabs kept from one attack to the next, A's job) is a ``Ctx``; the
attacks on training jobs are in bench/attackjobs.py.
"""
from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import attackfiles as hostile
import attackkit as kit


class Skip(RuntimeError):
    """An attack that builds on an earlier one which did not get there."""


@dataclass
class Row:
    outcome: str
    answer: str = ""
    detail: dict | list = field(default_factory=dict)
    peak_limit_mb: float | None = None     # a peak growth over this turns the outcome into "succeeded"


@dataclass
class Ctx:
    """What the attacks share: the server, its runs folder, the people (tokens) and the tabs kept between attacks."""
    url: str
    runs: Path
    scratch: Path
    leaks: kit.Leaks
    people: dict[str, str] = field(default_factory=lambda: {w: kit.token() for w in "ABCDEFT"})
    state: dict = field(default_factory=dict)
    opened: list = field(default_factory=list)
    kept: dict = field(default_factory=dict)
    peaks: kit.Peaks | None = None        # the server's memory, sampled while the current attack runs
    served: kit.Served | None = None      # behind nginx (``served.front``): the replicas the tabs are placed on
    placed: list = field(default_factory=list)       # behind nginx: each tab opened (who, page, replica, agent)

    def place(self, who: str | None, page: str) -> dict:
        """Behind nginx, the replica a new tab goes to, chosen with the sticky cookie (a person's browser sets its
        own cookies): a person's first tab on replica (their letter's place) mod N, each further one on the next, so
        B meets A's job from the other replica and A's tabs pressing at once are on different replicas."""
        if self.served is None or self.served.front is None:
            return {}
        name = who or "stranger"
        k = sum(1 for p in self.placed if p["who"] == name)
        replica = ((list(self.people).index(who) if who else 0) + k) % len(self.served.replicas)
        agent = f"vae-lab-attacks/{name}-{k}"
        self.placed.append({"who": name, "page": page or "home", "replica": replica, "agent": agent})
        return self.served.tab_kw(replica, agent)

    async def tab(self, who: str | None = None, page: str = "", query: str = "", *, keep: str = "",
                  must_open: bool = True) -> kit.Tab:
        kw = self.place(who, page)
        t = kit.Tab(self.url, self.people[who] if who else None, page, query, leaks=self.leaks, **kw)
        t.replica = self.placed[-1]["replica"] if kw else None      # behind nginx: the replica it was placed on
        if keep:
            self.kept[keep] = t           # closed at the end of the run, not of this attack
        else:
            self.opened.append(t)
        r = await t.open()
        if must_open and not r.ok:
            raise RuntimeError(f"{who or 'a stranger'} could not open {page or 'Home'}: {r.status} {r.exceptions[:2]}")
        return t

    def section(self) -> float:
        """The server's peak memory growth (MB) since the attack or its last section began; begins a new section."""
        return self.peaks.section() if self.peaks is not None else 0.0

    async def close_tabs(self, kept: bool = False) -> None:
        tabs = self.opened + (list(self.kept.values()) if kept else [])
        await asyncio.gather(*(t.close() for t in tabs), return_exceptions=True)
        self.opened = []
        if kept:
            self.kept = {}

    def run(self) -> Path:
        if "run" not in self.state:
            raise Skip("A's training job was not started")
        return self.state["run"]


# ------------------------------------------------------------------------------------------------ the runs folder
def status(run: Path) -> dict:
    try:
        return json.loads((run / "job.json").read_text())
    except (OSError, ValueError):
        return {}


def state(run: Path) -> str | None:
    """The job's state as the app sees it: "running" whose process is gone reads as "interrupted"."""
    s = status(run)
    if s.get("state") == "running" and not kit.alive(s.get("pid")):
        return "interrupted"
    return s.get("state")


def jobs(runs: Path) -> list[Path]:
    return sorted(p for p in runs.iterdir() if (p / "job.json").is_file()) if runs.is_dir() else []


def starts(run: Path) -> int:
    try:
        lines = (run / "events.jsonl").read_text().splitlines()
    except OSError:
        return 0
    return sum(1 for ln in lines if ln.strip() and json.loads(ln).get("type") == "start")


async def wait_until(pred, timeout: float, what: str, every: float = 0.3) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {timeout:g} s")
        await asyncio.sleep(every)


async def end_jobs(runs: Path, timeout: float = 60.0) -> None:
    """Stop every job of the runs folder (its stop file, as Stop does), then kill what is left."""
    active = [p for p in jobs(runs) if state(p) in ("queued", "running")]
    for p in active:
        (p / "stop").write_text("stopped by the attack bench")
    try:
        await wait_until(lambda: all(state(p) not in ("queued", "running") for p in active), timeout, "jobs ending")
    except RuntimeError:
        kit.kill_all(kit.processes_naming(str(runs)))


# ------------------------------------------------------------------------------------------------ page helpers
def one_line(lines: list[str], start: str = "") -> str:
    hits = [ln for ln in lines if ln.startswith(start)]
    return hits[-1] if hits else ""


async def add_run(tab: kit.Tab, files: list[tuple[str, bytes]]) -> tuple[list[int], str]:
    """The sidebar's "Upload a run": drop the files, press "Add this run"; (PUT statuses, the line shown)."""
    statuses, _ = await tab.upload("app.run_upload.", files)
    if not any(s in (200, 204) for s in statuses):
        return statuses, f"HTTP {', '.join(map(str, statuses))} from the upload endpoint"
    await tab.click(next(k for k in tab.keys() if k.startswith("app.run_upload.add.")))
    said = tab.alerts(sidebar=True)
    return statuses, one_line(said, "Upload refused") or one_line(said, "Added")


async def choose_upload(tab: kit.Tab) -> None:
    options = list(tab.model.find("train.data").proto.options)
    await tab.set_value("train.data", next(i for i, o in enumerate(options) if o.startswith("Upload my own")))


def refused_upload(line: str, *words: str) -> bool:
    return line.startswith("Upload refused: ") and "\n" not in line and all(w.lower() in line.lower() for w in words)


# ------------------------------------------------------------------------------------------------ 1-3, 8-12: input
async def query_strings(ctx: Ctx) -> Row:
    canary = ctx.state["canary"]
    rel = os.path.relpath(canary, ctx.runs)
    cases = [("", f"run={rel}"), ("", f"run={canary}"), ("", "run=../../../../etc/passwd"),
             ("dimensions", f"vs={rel}"), ("dimensions", "vs=/etc/passwd"), ("inside", "i=1" + "0" * 5000),
             ("latent_map", "points=" + ",".join(["99999999"] * 3000)), ("sliders", "z=nan,inf"),
             ("no-such-page", "run=" + "A" * 200_000)]
    seen = []
    for page, query in cases:
        tab = await ctx.tab(page=page, query=query, must_open=False)
        r = tab.open_result
        seen.append({"page": page, "query": query[:50] + ("…" if len(query) > 50 else ""), "status": r.status,
                     "page_not_found": r.page_not_found, "lines": [a[:140] for a in tab.alerts(sidebar=False)]})
        await tab.close()
    bad = [s for s in seen if s["status"] != "ok"]
    read = not hostile.untouched(canary) if ctx.state["atime_works"] else None
    answer = next((ln for s in seen for ln in s["lines"] if "was ignored" in ln), "ignored")
    return Row("succeeded" if bad or read else "refused", answer, {"cases": seen, "canary_run_read": read})


async def outside_data(ctx: Ctx) -> Row:
    secret = ctx.state["secret"]
    tab = await ctx.tab("C")
    cases = []
    for target in (str(secret), "/etc/passwd"):
        cfg = hostile.demo_config()
        cfg["data"]["name"] = target
        # a run whose loss "became NaN": the Doctor offers to start the fixed run, on the same data
        zipped = hostile.run_zip(cfg, status="failed", message="the loss became nan at step 900")
        _, line = await add_run(tab, [("elsewhere.zip", zipped)])
        case = {"data": target, "line": line}
        if line.startswith("Added"):
            case["pages"] = await visit(tab, ("reconstructions", "latent_map", "inside", "doctor"))
            case["doctor_start"] = await doctor_start(ctx, tab)
        cases.append(case)
    read = not hostile.untouched(secret) if ctx.state["atime_works"] else None    # None: cannot tell here
    stored = [c for c in cases if c["line"].startswith("Added")]
    notes = [n for c in stored for n in c["pages"].values() if n]
    if read or any(c["line"] == "" for c in cases) or (stored and not notes):
        return Row("succeeded", notes[0] if notes else cases[0]["line"], {"cases": cases, "secret_read": read})
    return Row("contained" if stored else "refused", notes[0] if stored else cases[0]["line"],
               {"cases": cases, "secret_read": read})


async def visit(tab: kit.Tab, pages) -> dict[str, str]:
    """The "not available here" line each page shows for the active run ("" when it shows none)."""
    out = {}
    for page in pages:
        r = await tab.switch_page(page)
        out[page] = next((t for t in tab.texts() if "not available here" in t), "") if r.ok else f"{r.status}"
    return out


async def doctor_start(ctx: Ctx, tab: kit.Tab) -> str:
    """The Doctor's "start this run" for the active run, if it offers one: the job it queues must not read the data."""
    keys = sorted(k for k in tab.keys() if k.startswith("doctor.start."))
    if not keys:
        return "no start button"
    before = set(jobs(ctx.runs))
    await tab.click(keys[0])
    new = [p for p in jobs(ctx.runs) if p not in before]
    try:
        await wait_until(lambda: all(state(p) not in ("queued", "running") for p in new), 60, "the Doctor's job")
    except RuntimeError:
        await end_jobs(ctx.runs)
    said = one_line(tab.alerts(sidebar=False))
    return f"{len(new)} job(s): {[status(p).get('message', '')[:120] for p in new]}; page: {said[:120]}"


async def budget(ctx: Ctx) -> Row:
    tab = await ctx.tab("C")
    cases = []
    for layers in (300, 40, 8):
        cfg = json.dumps(hostile.demo_config(hidden=[4096] * layers)).encode()
        upload = [("model.safetensors", b"\0" * 8), ("config.json", cfg)]
        _, line = await add_run(tab, upload)
        cases.append({"hidden": f"[4096] * {layers}", "upload_bytes": sum(len(b) for _, b in upload), "line": line,
                      "claimed_mb_at_least": round(hostile.claimed_mb([4096] * layers))})
    ok = all(refused_upload(c["line"], "over the budget") for c in cases)
    return Row("refused" if ok else "succeeded", cases[0]["line"], cases,
               peak_limit_mb=min(c["claimed_mb_at_least"] for c in cases) / 10)


async def hostile_json(ctx: Ctx) -> Row:
    tab = await ctx.tab("C")
    lr = json.dumps(hostile.demo_config()).replace('"lr": 0.001', '"lr": 1e400').encode()
    cases = []
    for name, blob in (("nested 32k deep", hostile.nested_json()),
                       ("a 5,000-digit integer", hostile.long_number_json()), ("lr 1e400", lr)):
        _, line = await add_run(tab, [("model.safetensors", b"\0" * 8), ("config.json", blob)])
        cases.append({"config": name, "bytes": len(blob), "line": line})
    ok = all(refused_upload(c["line"]) and "Traceback" not in c["line"] for c in cases)
    return Row("refused" if ok else "succeeded", cases[0]["line"], cases)


async def tracked(ctx: Ctx) -> Row:
    folder = await ctx.state["tracked"]()
    tab = await ctx.tab("C")
    uploads = {"the folder as a zip": [("tracked.zip", hostile.zip_folder(folder, "tracked"))],
               "its model, config and metrics": [(n, (folder / n).read_bytes())
                                                 for n in ("model.safetensors", "config.json", "metrics.json")]}
    cases = []
    for name, upload in uploads.items():
        _, line = await add_run(tab, upload)
        cases.append({"upload": name, "files": [n for n, _ in upload], "line": line})
    ok = all(refused_upload(c["line"]) for c in cases)
    return Row("refused" if ok else "succeeded", cases[-1]["line"], cases)


async def oversize(ctx: Ctx) -> Row:
    """Streamlit receives an upload whole (up to its 200 MB per file, ``server.maxUploadSize``) and keeps it in memory
    for the session; every rerun of that tab copies it once more for a moment (Streamlit deep-copies each widget's
    value). That part is the transport's. The app's part is the Add: it must refuse without reading the files, so
    the Add's rerun grows the server by at most that one copy of the uploaded bytes (plus 50 MB of slack); reading
    the files would add a second copy. A plain rerun's growth is recorded beside it, not compared with: it measured
    anywhere from 105 to 197 MB for the same 210 MB (the copy is freed while the peak is sampled), so a verdict
    against it flipped from run to run."""
    tab = await ctx.tab("C")
    statuses, _ = await tab.upload("app.run_upload.", [("big.zip", bytes(201 << 20))])
    ctx.section()
    two = [("model.safetensors", bytes(105 << 20)), ("metrics.json", bytes(105 << 20))]
    statuses2, _ = await tab.upload("app.run_upload.", two)
    received = ctx.section()
    await tab.rerun()
    rerun = ctx.section()
    await tab.click(next(k for k in tab.keys() if k.startswith("app.run_upload.add.")))
    line = one_line(tab.alerts(sidebar=True), "Upload refused")
    added = ctx.section()
    uploaded = sum(len(b) for _, b in two) / 2**20
    detail = {"one_201_mb_put": statuses, "two_105_mb_put": statuses2, "received_peak_growth_mb": received,
              "plain_rerun_peak_growth_mb": rerun, "add_peak_growth_mb": added, "uploaded_mb": uploaded,
              "line": line}
    ok = statuses == [413] and statuses2 == [204, 204] and refused_upload(line, "over the 200 MB limit")
    read = added > uploaded + 50                   # a copy of the files beyond Streamlit's own
    return Row("refused" if ok and not read else "succeeded", f"HTTP {statuses[0]}; {line}", detail)


async def pixels(ctx: Ctx) -> Row:
    """Refused from the images' headers: decoding even four of them would grow the server by 64 MB."""
    tab = await ctx.tab("D", page="train")
    await choose_upload(tab)
    blob, (n, side) = ctx.state["pixel_zip"], hostile.PIXEL_ZIP
    statuses, r = await tab.upload("train.upload", [("many.zip", blob)])
    line = one_line(tab.alerts(sidebar=False), "Upload refused")
    detail = {"zip_bytes": len(blob), "images": n, "pixels_each": side * side, "put": statuses, "status": r.status,
              "all_decoded_mb": n * side * side / 2**20}
    ok = refused_upload(line, "pixels") and tab.element("train.start").disabled
    return Row("refused" if ok else "succeeded", line, detail, peak_limit_mb=4 * side * side / 2**20)


async def error_paths(ctx: Ctx) -> Row:
    from labkit.hostile_files import cases
    tab = await ctx.tab("F", page="train")
    await choose_upload(tab)
    seen = []
    for name, (path, args, word) in cases(ctx.scratch / "hostile").items():
        if args or path is None or not Path(path).is_file():
            continue                     # needs the command line's limits, or is a folder: not a page upload
        _, r = await tab.upload("train.upload", [(Path(path).name, Path(path).read_bytes())])
        line = one_line(tab.alerts(sidebar=False), "Upload refused")
        seen.append({"case": name, "status": r.status, "line": line[:160], "ok": refused_upload(line, word)})
    ok = all(s["ok"] and s["status"] == "ok" for s in seen)
    return Row("refused" if ok else "succeeded", f"{len(seen)} files, each one line, e.g. {seen[0]['line']}", seen)


def _selection(customdata) -> str:
    point = {"curve_number": 0, "point_number": 0, "point_index": 0, "x": 0.0, "y": 0.0, "customdata": customdata}
    return json.dumps({"selection": {"points": [point], "point_indices": [0], "box": [], "lasso": []}})


FORGED = [  # (page, widget key, WidgetState field, value, what it is)
    ("sliders", "sliders.panel", "json_value", "{not json", "the sliders panel's state, not JSON"),
    ("sliders", "sliders.panel", "json_value", json.dumps({"value": {"z": ["a", None], "data_id": "x"}}),
     "the panel's z, not numbers"),
    ("sliders", "sliders.panel", "json_value", json.dumps({"value": {"z": [1e308] * 50_000, "data_id": "x"}}),
     "the panel's z, 50,000 numbers"),
    ("latent_map", "map.chart", "string_value", "not json", "a plot selection, not JSON"),
    ("latent_map", "map.chart", "string_value", _selection("../../etc"), "a clicked point whose id is '../../etc'"),
    ("latent_map", "map.chart", "string_value", _selection(10**30), "a clicked point whose id is 10^30"),
    ("reconstructions", "recon.index", "int_value", -5, "test image -5"),
    ("reconstructions", "recon.count", "string_array_value", ["99999"], "99,999 pairs (not an option)"),
    ("train", "train.data", "string_value", "/etc/passwd", "data set /etc/passwd (not an option)"),
    ("train", "train.hidden", "string_value", "4096," * 200_000, "1 MB of layer widths"),
]


async def forged_values(ctx: Ctx) -> Row:
    """Values no browser would send, each from a fresh tab: the page must answer in one line or ignore them."""
    seen = []
    for page, key, name, value, what in FORGED:
        tab = await ctx.tab(page=page)
        r = await tab.send(key, **{name: value})
        if key == "train.hidden" and r.ok:
            r = await tab.click("train.start")
        shown = tab.exceptions()
        seen.append({"value": what, "status": r.status, "exceptions": shown,
                     "lines": [a[:140] for a in tab.alerts(sidebar=False)][:2]})
        await tab.close()
    bad = [s for s in seen if any(e["trace"] or e["type"] for e in s["exceptions"])]
    generic = [s for s in seen if s["exceptions"] and s not in bad]
    if bad:
        e = bad[0]["exceptions"][0]
        answer = f"{len(bad)} of {len(seen)} showed a traceback, e.g. {bad[0]['value']}: {e['type']}: {e['message']}"
        return Row("succeeded", answer, seen)
    answer = (f"{len(generic)} of {len(seen)} showed Streamlit's generic error line, none a traceback" if generic
              else f"{len(seen)} forged values: no exception")
    return Row("contained" if generic else "refused", answer, seen)


async def no_leaks(ctx: Ctx) -> Row:
    found = sorted(set(ctx.leaks.found))
    answer = found[0] if found else f"{ctx.leaks.pages} pages shown to attack tabs: no traceback or server path"
    return Row("succeeded" if found else "refused", answer, {"pages": ctx.leaks.pages, "found": found[:20]})


# ------------------------------------------------------------------------------------------------ 4: the Train form
async def form_numbers(ctx: Ctx) -> Row:
    tab = await ctx.tab("E", page="train")
    await tab.click("train.quick")
    before = jobs(ctx.runs)
    cases = []
    for key, value in (("train.epochs", "1000"), ("train.time_budget", "604800"), ("train.latent_dim", "500")):
        kept = tab.state(key)
        await tab.set_value(key, value)
        lines = [a for a in tab.alerts(sidebar=False) if a.startswith("Cannot start")]
        cases.append({"field": key, "value": value, "start_disabled": tab.element("train.start").disabled,
                      "lines": lines})
        await tab.set_value(key, kept)
    ok = all(c["start_disabled"] and len(c["lines"]) == 1 for c in cases) and jobs(ctx.runs) == before
    return Row("refused" if ok else "succeeded", cases[0]["lines"][0] if cases[0]["lines"] else "", cases)


async def form_width(ctx: Ctx) -> Row:
    tab = await ctx.tab("E", page="train")
    await tab.click("train.quick")
    before = jobs(ctx.runs)
    cases = []
    for n in (40, 8):
        await tab.set_value("train.hidden", ",".join(["4096"] * n))
        await tab.click("train.start")
        cases.append({"hidden": f"4096 x {n}", "line": one_line(tab.alerts(sidebar=False), "Cannot start")})
    new = [p.name for p in jobs(ctx.runs) if p not in before]
    if new:
        await end_jobs(ctx.runs)
    ok = not new and all("over the budget" in c["line"] for c in cases)
    return Row("refused" if ok else "succeeded", cases[0]["line"], {"cases": cases, "jobs_started": new},
               peak_limit_mb=hostile.claimed_mb([4096] * 8) / 10)
