"""Dimensions: for the active run and another beside it, a heat map of mutual information (dimensions × factors), then
what each latent dimension carries, largest KL first, with its traversal."""
import streamlit as st

from ui import catalogue, charts, links
from ui import dimensions_view as dv
from ui import state as S
from ui.strips import strips
from vae.runs import RunError

st.title("Dimensions")
st.caption(f"One row per latent dimension, the most informative (largest KL) first: its images as that dimension "
           f"goes from −{dv.SPAN:g} to +{dv.SPAN:g} with the others at 0 (decoded in your browser), its KL and what it "
           "carries. On data whose generating factors are known (shapes32, colour-shapes) each dimension is named by "
           "the factor it tells most about; elsewhere by what it tells about the class. Put a second run beside it to "
           "see one model tangle what the other separates.")

active = catalogue.active_run()
if active is None:
    st.stop()
entry, run = active
choices = dv.others(entry.path)
by_path = {e.path: e for e in choices}
links.restore("vs", lambda name: st.session_state.__setitem__(S.DIMS_OTHER, {e.name: e.path for e in choices}[name]),
              "the folder name of another run in the Active run list")
if st.session_state.get(S.DIMS_OTHER) not in by_path:
    st.session_state[S.DIMS_OTHER] = ""
c1, c2 = st.columns([3, 2])
c1.selectbox("Beside it", ["", *by_path], key=S.DIMS_OTHER,
             format_func=lambda p: "nothing: the active run alone" if not p else catalogue.label(by_path[p]),
             help="Another run shown side by side, e.g. a plain VAE beside a β-TCVAE on the same data.")
if run.config.model.conditional:
    names = catalogue.class_names(run) or []
    c2.selectbox("Class for the strips", list(range(run.config.model.num_classes)), key=S.DIMS_LABEL,
                 format_func=lambda i: names[i] if i < len(names) else str(i))
other = dv.pick_other(entry.path, choices)
links.publish("vs", other.name if other else None)
shown = [(entry, run)]
if other is not None:
    try:
        shown.append((other, catalogue.load(other)))
    except RunError as e:
        st.error(f"The run {other.name} cannot be loaded: {e}")

if (layers_note := catalogue.top_layer_note(run)) is not None:
    st.info(layers_note, icon=":material/layers:")
found = [dv.analysis(r, e.key) for e, r in shown]
st.caption("Each run's heat map first: how much a dimension's code tells about a factor (or the class), as a share of "
           "that factor's entropy; 1 = the dimension alone gives the factor away. A model that separates the factors "
           "has one dark cell per column, each on its own row; a tangled one spreads each factor over several rows. "
           "Below it, the dimensions' traversals in the same order.")
cols = st.columns(len(shown), gap="large")
for i, ((e, r), a, col) in enumerate(zip(shown, found, cols)):
    with col:
        st.markdown(f"**{e.name}** · {dv.describe(r)}")
        st.caption(dv.headline(a))
        if a.note:
            st.caption(a.note)
        fig = dv.heatmap(a, e.key)
        if fig is None:
            st.caption("This data has neither known factors nor labels, so there is nothing to measure the dimensions "
                       "against; the KL below still says which are in use.")
        else:
            st.plotly_chart(fig, key=f"{S.DIMS_HEAT}.{i}", width="stretch", config=charts.NO_MODEBAR)
        strips(r.model, key=f"{S.DIMS_STRIPS}.{i}", run_key=e.key, rows=dv.rows(a), z0=dv.origin(r),
               values=dv.traversal(), label=dv.label_of(r), cell_px=dv.cell_px(r, len(shown)))
        if len(a.order) > dv.MAX_ROWS:
            st.caption(f"The {dv.MAX_ROWS} most informative of {len(a.order)} dimensions; the heat map has them all.")
        if (lower := dv.lower_layer(r)) is not None:
            st.markdown("**The lower layer z₁**: KL of each dimension against p(z₁ | z) on the test images")
            st.plotly_chart(charts.kl_bars(lower.kl_per_dim, prefix="z₁,"), key=f"{S.DIMS_LOWER}.{i}",
                            width="stretch", config=charts.NO_MODEBAR)
            st.caption(lower.caption)
