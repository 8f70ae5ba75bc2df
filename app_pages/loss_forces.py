"""Loss forces: train a 2-D VAE one step at a time and see, as arrows on the map, where the reconstruction
term and the KL term push each code; raise β and watch the codes collapse onto the prior."""
import numpy as np
import streamlit as st

from ui import catalogue, stepper_view
from ui import state as S

st.title("Loss forces")
st.caption("Watch each loss term push. Each orange dot is one image of the next training batch, at its code's mean "
           "μ. The red arrow is where the reconstruction term pushes that μ (apart, so each image decodes to itself); "
           "the blue arrow is where β × KL pushes it (towards 0, the prior's centre); the dashed dark arrow is their "
           "sum. One step moves the model along them; raise β and watch the codes collapse.")

active = catalogue.active_run()
if active is None:
    st.stop()
entry, run = active
if catalogue.is_tracked(run):
    st.info(f"This page steps VAE Lab's own trainer; {run.config.tracked.source or 'this model'} was logged from "
            "its own training loop with vae.track, which VAE Lab runs but does not train: pick a run VAE Lab trained.")
    st.stop()
got = stepper_view.data_for(run)
if got is None:
    st.warning("This run's data set is not available here, so there is nothing to step on.")
    st.stop()
train, probe = got
c1, c2, c3, c4 = st.columns([3, 2, 2, 2])
start = c1.segmented_control("Start from", [stepper_view.ACTIVE, stepper_view.SCRATCH], key=S.STEP_START,
                             default=stepper_view.ACTIVE if stepper_view.steppable(run)
                             else stepper_view.SCRATCH) or stepper_view.SCRATCH
beta = c2.number_input("β (next step on)", 0.0, 200.0, 1.0, 0.5, key=S.STEP_BETA,
                       help="Takes effect at the next step: no reset needed.")
lr = c3.select_slider("Learning rate", [1e-4, 3e-4, 1e-3, 3e-3, 1e-2], value=1e-3, key=S.STEP_LR,
                      format_func=lambda v: f"{v:g}")
batch = c4.select_slider("Batch", [16, 32, 64, 128], value=64, key=S.STEP_BATCH)
if start == stepper_view.ACTIVE and run.config.model.latent_dim != 2:
    st.info(f"The active run has a {run.config.model.latent_dim}-D latent; arrows need two, so this starts "
            "from an untrained 2-D model on the same images.")
elif start == stepper_view.ACTIVE and not stepper_view.steppable(run):
    st.info("The active run has a VampPrior, whose KL push has no closed form to draw, so this starts from an "
            "untrained 2-D model with the N(0, I) prior on the same images.")
model_stepper = stepper_view.stepper(run, entry.key, start, float(lr), int(batch), train)

t1, t2, _ = st.columns([1, 2, 3])
playing = t1.toggle("Play", key=S.STEP_PLAY, help="One step every half second, in slow motion.")
st.session_state.setdefault(S.STEP_LOCK, True)
locked = t2.toggle("Lock the axes", key=S.STEP_LOCK,
                   help="Keep the map's axes from step to step (until Reset), so codes moving towards the prior are "
                        "seen shrinking. Off: the view refits every step.")
view_key = stepper_view.stepper_key(entry.key, start, float(lr), int(batch))

@st.fragment(run_every=0.5 if playing else None)
def board() -> None:
    """The step buttons and everything they change: a click reruns only this part of the page."""
    b1, b2, b4, b5 = st.columns([1, 1, 1, 3])
    one = b1.button("One step", key=S.STEP_ONE, icon=":material/skip_next:")
    ten = b2.button("Ten steps", key=S.STEP_TEN, icon=":material/fast_forward:")
    b4.button("Reset", key=S.STEP_RESET, on_click=stepper_view.reset, icon=":material/restart_alt:")
    shown = b5.multiselect("Arrows", ["reconstruction", "KL", "sum"], default=["reconstruction", "KL", "sum"],
                           key=S.STEP_SHOWN, label_visibility="collapsed")
    b = float(st.session_state.get(S.STEP_BETA, 1.0))
    for _ in range(10 if ten else 1 if (one or playing) else 0):
        model_stepper.step(b)
    forces = model_stepper.forces(b)
    codes = model_stepper.codes(probe)
    left, right = st.columns([3, 2], gap="large")
    with left:
        view = stepper_view.locked_view(view_key, np.concatenate([codes["mu"], forces.mu])) if locked else None
        drawn, _ = stepper_view.forces_data(codes["mu"], None if probe.y is None else probe.y.numpy(),
                                                forces, shown, model_stepper.steps, view)
        stepper_view.forces_map(drawn, key=S.STEP_MAP)
        st.caption(f"Step {model_stepper.steps} · β = {b:g}. The arrows show which way each term pushes and how "
                   "hard compared with the others: all are shrunk by one factor so that the longest sum spans 0.6 on "
                   "the axes. Faint dots: the test images' codes now.")
    with right:
        last = model_stepper.history[-1] if model_stepper.history else None
        if last:
            st.markdown(f"**Last step** (β = {last['beta']:g}): reconstruction **{last['recon']:.1f}**, KL "
                        f"**{last['kl']:.2f}** nats per image; loss {last['loss']:.1f}.")
        st.markdown(f"**Active units: {codes['active_units']} of 2** (a dimension whose μ still varies across "
                    "images; β large enough shuts them).")
        st.html(stepper_view.kl_html(codes["kl_per_dim"]))

board()
