"""Guided experiments: one click on the Home page sets up the Train page for a known failure (or its cure) and
starts it; the Train page says what to look for, and when the run ends, what the Doctor makes of it.

Each scenario is the quick demo (MNIST digits, MLP, a time budget) with a few settings changed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import streamlit as st

from vae.runs import load_run
from vae.usecases import doctor

from . import state as S
from . import train_form, train_panel


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    look_for: str           # two sentences: what to watch while it trains
    expect: str             # what the Doctor should find ("" = a healthy run)
    settings: dict = field(default_factory=dict)


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
BY_KEY = {s.key: s for s in SCENARIOS}


def set_up(key: str) -> None:
    """Button callback: the quick demo's settings with this scenario's changes, started on the Train page."""
    train_form.set_values({**train_panel.quick_settings(), **BY_KEY[key].settings})
    st.session_state[S.SCENARIO] = key
    st.session_state[S.SCENARIO_AUTOSTART] = True


def take_autostart() -> bool:
    """True once after ``set_up``: the Train page then starts the run as if Start had been pressed."""
    return bool(st.session_state.pop(S.SCENARIO_AUTOSTART, False))


@st.cache_data(show_spinner="The Doctor reads the run…", max_entries=32)
def verdict(run_dir: str, mtime: float) -> list[dict]:
    """The Doctor's findings for a finished run (from its history, and its reconstructions of 300 test images)."""
    from vae.data import load_dataset
    run = load_run(run_dir)
    d = run.config.data
    try:
        test = load_dataset(d.name, image_size=d.image_size, color=d.color, max_test=300).test
    except ValueError:
        test = None
    return doctor.diagnose(run.metrics, run.config, model=None if test is None else run.model, test=test)


def banner(job) -> None:
    """On the Train page: the scenario being run, what to look for, and once its run ended, the Doctor's word."""
    key = st.session_state.get(S.SCENARIO)
    if key not in BY_KEY:
        return
    sc = BY_KEY[key]
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
