"""Doctor: reads the active run's training history and flags what went wrong, with the evidence
plotted, the change to try and a button that starts that run."""
import streamlit as st

from ui import catalogue, datasets
from ui import state as S
from ui import usecases_view as U

st.title("Doctor")
st.caption("Reads the active run's history and reconstructions and looks for posterior collapse, a KL blow-up, "
           "non-finite losses, blurry reconstructions and a learning rate that is too high.")

msg = st.session_state.pop(S.DOC_MESSAGE, None)
if msg:
    (st.success if msg[0] == "success" else st.error)(msg[1])

active = catalogue.active_run()
if active is None:
    st.stop()
entry, run = active
history_only = st.toggle("History only (skip the reconstruction check)", key=S.DOC_HISTORY_ONLY)
test, dkey = (None, None) if history_only else datasets.noted_test_images(run)
hist = run.metrics.history
st.caption(f"{entry.name}: {len(hist.epochs)} epochs and {len(hist.steps)} step records; status "
           f"{run.metrics.status}.")
found = U.findings(run, entry.key, test, str(dkey))
if not found:
    st.success("No problems found: KL per dimension, loss, gradients and reconstructions look healthy.")
    st.stop()
commands = {f["code"]: U.command_text(f["command"]) for f in found if f.get("command")}
tracked = catalogue.is_tracked(run)
if tracked:
    st.caption(U.TRACKED_NO_START.format(name=run.config.tracked.source or "This model"))
else:
    st.caption(f"Each finding's command trains the suggested run from the command line; **{U.RUNS_DIR}** stands "
               "for the app's runs folder (the server's `VAE_LAB_RUNS_DIR`, or `runs/` in its checkout), where the app "
               "lists it. Start this run does the same here."
               + (f" {U.DATA_DIR_MEANS}." if any(U.DATA_DIR in c for c in commands.values()) else ""))
for f in found:
    icon = ":material/error:" if f["severity"] == "error" else ":material/warning:"
    with st.expander(f"{f['title']}", expanded=True, icon=icon):
        st.markdown(f"**{U.SEVERITY_WORDS.get(f['severity'], 'Note')}.** {f['advice']}")
        st.plotly_chart(U.evidence_figure(f), key=f"{S.DOC_CHART}.{f['code']}", width="stretch")
        if tracked:
            if f["in_your_loop"]:
                st.markdown("**In your own loop, try:** " + "; ".join(f["in_your_loop"]) + ".")
            continue
        st.markdown("**Change to try:** " + ", ".join(f"`{sec}.{k} = {v}`" for sec, ch in
                                                      f["suggested_changes"].items() for k, v in ch.items()))
        if f["code"] in commands:
            st.code(commands[f["code"]], language="bash", wrap_lines=True)
        if st.button("Start this run", key=S.DOC_START_PREFIX + f["code"], icon=":material/play_arrow:"):
            st.session_state[S.DOC_MESSAGE] = U.start_fix(run, f)
            st.rerun()
