"""Guided experiments: one click on the Home page sets up the Train page for a known failure (or its cure) and
starts it; the Train page says what to look for, and when the run ends, what the Doctor makes of it.

Each scenario is the quick demo (MNIST digits, MLP, a time budget) with a few settings changed. A scenario with a
second run (``then``: "Make the dimensions mean something", a β-VAE and then a β-TCVAE on the same data) trains its
two runs one after the other, never at once (a person has one job at a time): when the first ends, the Train page
puts the second's settings into the form and starts it, and when that one ends it shows the two runs' heat maps of
mutual information side by side (``ui.dimensions_view``), the Dimensions page holding the same two runs.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import streamlit as st

from vae.runs import RunError, load_run
from vae.usecases import doctor

from . import catalogue, charts, datasets, dimensions_view, settings, train_form, train_panel
from . import state as S


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    look_for: str           # two sentences: what to watch while it trains
    expect: str             # what the Doctor should find ("" = a healthy run)
    settings: dict = field(default_factory=dict)
    then: dict | None = None        # a second run's settings, started when the first ends (its own base)
    then_look_for: str = ""         # what to watch while the second run trains
    ending: str = ""                # what to look for in the two runs' heat maps at the end


# β for "Make it collapse" (and "Free bits to the rescue", its cure): large enough that the 8-D model stays collapsed
# however many of its 30 epochs a machine fits in the time budget, with room to spare on both sides (a slow machine
# collapses after 2 epochs, a fast one stays collapsed over twice the epochs; at β = 20 a model could come back to a
# dimension): README, "The guided experiments, measured".
COLLAPSE_BETA = 50.0

SCENARIOS = (
    Scenario("collapse", "Make it collapse",
             f"β = {COLLAPSE_BETA:g} makes every nat of KL cost {COLLAPSE_BETA:g} times as much, so the encoder stops "
             "using its dimensions. Watch the KL-per-dimension bars sink to zero and the reconstructions turn into "
             "one blurred average digit.",
             "posterior_collapse", {S.TRAIN_LATENT: 8, S.TRAIN_BETA: COLLAPSE_BETA}),
    Scenario("blurry", "Make it blurry",
             "A Gaussian likelihood with σ = 1 says a pixel may be off by a whole unit at no cost, so "
             "reconstruction barely matters next to the KL. Watch the reconstructions stay smooth grey blobs "
             "even as the loss settles.",
             "blurry", {S.TRAIN_LATENT: 8, S.TRAIN_LIKELIHOOD: "gaussian", S.TRAIN_SIGMA: 1.0}),
    Scenario("one_dim", "Too few dimensions",
             "With a 1-D latent every digit must sit on one line, so neighbours on the line are different "
             "digits. Watch the reconstructions morph one digit into another and the −ELBO stay high.",
             "", {S.TRAIN_LATENT: 1}),
    Scenario("free_bits", "Free bits to the rescue",
             f"The same β = {COLLAPSE_BETA:g} as “Make it collapse”, but free bits leave the first 0.5 nats of each "
             "dimension unpenalised. Watch the KL bars hold at the floor and the reconstructions stay digits "
             "(blurrier than at β = 1, which the Doctor will say).",
             "", {S.TRAIN_LATENT: 8, S.TRAIN_BETA: COLLAPSE_BETA, S.TRAIN_FREE_BITS: 0.5}),
)

# "Make the dimensions mean something": the same data (shapes32, whose five generating factors are known), the same
# 10-D MLP and the same time, first the plain VAE (a beta-VAE at beta = 1), then a beta-TCVAE that weighs the total
# correlation DIMS_TC_WEIGHT times. README, "The guided experiments, measured": three seeds of each, and of a
# beta-VAE at beta = 4, which separates less than the beta-TCVAE in the same time; at the core's default TC weight
# of 6, 60 s was too short for the beta-TCVAE to separate much.
DIMS_SECONDS = 60
DIMS_TC_WEIGHT = 20.0
DIMS_BASE = {S.TRAIN_DATA: "shapes32", S.TRAIN_LATENT: 10, S.TRAIN_EPOCHS: 100, S.TRAIN_BUDGET: DIMS_SECONDS,
             S.TRAIN_HIDDEN: "256,128", S.TRAIN_BATCH: 128, S.TRAIN_LR: 1e-3, S.TRAIN_BETA: 1.0}
DIMENSIONS = Scenario(
    "dims", "Make the dimensions mean something",
    f"Two runs on the same sprites, whose position, scale, shape and orientation are known: first a plain VAE "
    f"(a β-VAE at β = 1) for {DIMS_SECONDS} s, then a β-TCVAE, which also penalises the dependence between "
    "dimensions (their total correlation). While the first trains, watch its KL spread over several dimensions.",
    "", {**DIMS_BASE, S.TRAIN_OBJECTIVE: "elbo"},
    then={**DIMS_BASE, S.TRAIN_OBJECTIVE: "btcvae", S.TRAIN_TC_WEIGHT: DIMS_TC_WEIGHT},
    then_look_for=f"Now the β-TCVAE, {DIMS_SECONDS} s on the same data: its total correlation (TC) curve is what it "
                  f"pushes down, {DIMS_TC_WEIGHT:g} times as hard as the rest of the KL.",
    ending="Each heat map's cell says how much one dimension tells about one factor (1 = all of it). The β-TCVAE "
           "(left, now the active run) gives x, y and the scale a row each and leaves the rest unused; the VAE "
           "(right) spreads x position and y position over five or six rows, each telling a little. Shape and "
           "orientation stay hard for both.")
SCENARIOS = (*SCENARIOS, DIMENSIONS)
BY_KEY = {s.key: s for s in SCENARIOS}


def set_up(key: str) -> None:
    """Button callback: the quick demo's settings with this scenario's changes, started on the Train page."""
    train_form.set_values({**train_panel.quick_settings(), **BY_KEY[key].settings})
    st.session_state[S.SCENARIO] = key
    st.session_state[S.SCENARIO_AUTOSTART] = True
    st.session_state[S.SCENARIO_DONE] = []
    st.session_state.pop(S.SCENARIO_BY_HAND, None)


def on_manual_start() -> None:
    """A run started by hand: the experiment's banner and verdict go, the run is one's own; except the second run
    of a two-run experiment whose first run was stopped, which the banner asked to start by hand."""
    if st.session_state.pop(S.SCENARIO_BY_HAND, False):
        return
    st.session_state.pop(S.SCENARIO, None)
    st.session_state.pop(S.SCENARIO_DONE, None)


def take_autostart() -> bool:
    """True once after ``set_up``: the Train page then starts the run as if Start had been pressed."""
    return bool(st.session_state.pop(S.SCENARIO_AUTOSTART, False))


@st.cache_data(show_spinner="The Doctor reads the run…", max_entries=32)
def verdict(run_dir: str, mtime: float) -> list[dict]:
    """The Doctor's findings for a finished run (from its history, and its reconstructions of 300 test images).
    The run and its data are read as every page reads them: within the model budget, from the app's data folders."""
    run = load_run(run_dir, budget=settings.budget())
    d = run.config.data
    try:
        key = replace(datasets.DataKey.of(d), max_test=min(d.max_test or 300, 300))
        test = datasets.load(datasets.in_part(key)).test
    except ValueError:                 # DataError included: not available here
        test = None
    return doctor.diagnose(run.metrics, run.config, model=None if test is None else run.model, test=test)


def banner(job) -> None:
    """On the Train page: the scenario being run, what to look for, and once its run ended, the Doctor's word."""
    key = st.session_state.get(S.SCENARIO)
    if key not in BY_KEY:
        return
    sc = BY_KEY[key]
    if sc.then is not None:
        _pair_banner(sc, job)
        return
    st.info(f"**Guided experiment: {sc.title}.** {sc.look_for}", icon=":material/school:")
    if job is None or job.running:
        return
    run_dir = Path(job.run_dir)
    metrics = run_dir / "metrics.json"
    if not metrics.is_file():
        return
    findings = verdict(str(run_dir), metrics.stat().st_mtime)
    codes = [f["code"] for f in findings]
    said = "; ".join(f"**{f['title']}**" for f in findings) or "**no problems found**"
    if sc.expect:
        outcome = "as expected" if sc.expect in codes else f"it did not find “{sc.expect.replace('_', ' ')}” this time"
    else:
        outcome = "as expected" if not any(c == "posterior_collapse" for c in codes) else "not what we hoped"
    st.markdown(f"**The Doctor's verdict:** {said} ({outcome}). The Doctor page has the evidence.")


def _pair_banner(sc: Scenario, job) -> None:
    """A two-run experiment: which run is training, the second started when the first ends, then both heat maps."""
    done = st.session_state.setdefault(S.SCENARIO_DONE, [])
    note = ""
    if job is not None and not job.running and str(job.run_dir) not in done and len(done) < 2:
        snap = job.snapshot()
        if snap["run_path"] is not None and snap["status"] in ("done", "stopped"):
            done.append(str(job.run_dir))
            if len(done) == 1:
                train_form.set_values({**train_panel.quick_settings(), **sc.then})
                if snap["status"] == "done":
                    st.session_state[S.SCENARIO_AUTOSTART] = True
                else:
                    st.session_state[S.SCENARIO_BY_HAND] = True
                    note = " You stopped the first run: the second's settings are in the form, press Start for it."
            else:
                st.session_state[S.DIMS_OTHER] = done[0]
        elif snap["status"] not in ("done", "stopped"):
            note = (f" Run {len(done) + 1} ended without a model ({snap['message'] or snap['status']}); set the "
                    "experiment up again from Home.")
    stage = len(done)
    text = (sc.look_for, sc.then_look_for, sc.ending)[min(stage, 2)]
    step = f"run {stage + 1} of 2" if stage < 2 else "both runs done"
    st.info(f"**Guided experiment: {sc.title}** ({step}). {text}{note}", icon=":material/school:")
    if stage == 2:
        side_by_side(done[::-1])        # as the Dimensions page shows them: the active (last) run, the other beside


def side_by_side(run_dirs: list[str]) -> None:
    """The heat maps of mutual information of these runs, side by side, and the way to their traversals."""
    by_name = {e.name: e for e in catalogue.catalogue()}
    shown = []
    for d in run_dirs:
        entry = by_name.get(Path(d).name)
        try:
            shown.append((entry, catalogue.load(entry)) if entry is not None else None)
        except RunError:
            shown.append(None)
    for i, (item, col) in enumerate(zip(shown, st.columns(len(shown), gap="large"))):
        if item is None:
            col.caption(f"{Path(run_dirs[i]).name} cannot be loaded any more.")
            continue
        entry, run = item
        a = dimensions_view.analysis(run, entry.key)
        col.markdown(f"**{entry.name}** · {dimensions_view.describe(run)}")
        col.caption(dimensions_view.headline(a))
        fig = dimensions_view.heatmap(a, entry.key)
        if fig is not None:
            col.plotly_chart(fig, key=f"{S.SCENARIO}.heat.{i}", width="stretch", config=charts.NO_MODEBAR)
    st.page_link("app_pages/dimensions.py", label="Both runs on the Dimensions page, with every dimension's traversal",
                 icon=":material/view_list:")
