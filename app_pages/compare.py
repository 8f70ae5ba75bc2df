"""Compare runs: two to four runs side by side (curves on shared axes, final figures, the same test images
reconstructed by each, their maps), and one run's training replayed epoch by epoch."""
import numpy as np
import streamlit as st

from ui import catalogue, charts, compare_view, compute, datasets, images, map_view
from ui import state as S

st.title("Compare runs")
st.caption("Put two to four runs side by side: what changed between them shows in their curves, their final "
           "numbers, how each reconstructs the same digits and how each lays out the test set. Below, replay one "
           "run's training from the snapshots it kept after every epoch.")

entries = catalogue.catalogue()
by_path = {e.path: e for e in entries}
if S.CMP_RUNS not in st.session_state:
    active = catalogue.active_entry()
    first = [active.path] if active else []
    data = catalogue.summary(active).data if active else None       # beside it: a run on the same data, if any
    rest = sorted((e for e in entries if e.path not in first), key=lambda e: catalogue.summary(e).data != data)
    st.session_state[S.CMP_RUNS] = (first + [e.path for e in rest])[:2]
chosen = st.multiselect("Runs", list(by_path), key=S.CMP_RUNS, max_selections=compare_view.MAX_RUNS,
                        format_func=lambda p: catalogue.label(by_path[p]) if p in by_path else p)
chosen = [p for p in chosen if p in by_path]
named = [(by_path[p].name, by_path[p], catalogue.load(by_path[p])) for p in chosen]

if len(named) < 2:
    st.info("Pick at least two runs to compare (the demo runs, runs trained on the Train page, uploaded runs).")
else:
    st.plotly_chart(compare_view.curves([(n, r) for n, _, r in named]), key=S.CMP_CURVES, width="stretch")
    st.dataframe(compare_view.side_by_side(compare_view.table(named)), width="stretch", height="content")
    st.caption("Held-out figures at the end of each run, in nats per image: lower −ELBO is a better model of the "
               "test images; a run with more KL spends more information on its code.")

    st.subheader("The same test images, reconstructed by each", divider="gray")
    first_run = named[0][2]
    if not compare_view.same_shape([r for _, _, r in named]):
        st.info("These runs take images of different shapes, so they cannot reconstruct the same ones.")
    else:
        test, dkey = datasets.noted_test_images(first_run)
        if test is not None:
            count = min(10, len(test))
            rows = [images.float_from_uint8(test.x[:count].numpy())]
            for _, entry, run in named:
                rows.append(images.float_from_uint8(
                    compute.per_image(run.model, test, entry.key, str(dkey))["recons"][:count]))
            grid = images.png(("compare-recons", tuple(e.key for _, e, _ in named), str(dkey), count),
                              lambda: images.grid(np.concatenate(rows), count, target=44))
            st.image(grid, caption="Top row: the test inputs. Then one row per run, in the order chosen: "
                     + ", ".join(n for n, _, _ in named) + ".", output_format="PNG")

    st.subheader("Their maps", divider="gray")
    cols = st.columns(len(named))
    for i, (col, (name, entry, run)) in enumerate(zip(cols, named)):
        with col:
            test, dkey = datasets.for_run(run)[:2]
            if test is None:
                st.caption(f"{name}: no test images fit this run.")
                continue
            enc = compute.encode(run.model, test, entry.key, str(dkey))
            proj = map_view.projection(enc["mu"], "pca", entry.key, str(dkey))
            y = None if test.y is None else test.y.numpy()
            fig = map_view.figure(proj, None if y is None else y[proj.index], catalogue.class_names(run), entry.key,
                                  str(dkey), height=360)
            fig.update_layout(showlegend=False, title=dict(text=name, font=dict(size=13)))
            st.plotly_chart(fig, key=f"{S.CMP_MAP}.{i}", width="stretch")

st.subheader("Replay a run's training", divider="gray")


@st.fragment
def replay() -> None:
    """The replay: choosing a run or an epoch reruns this part alone, not the comparison above (two maps of the
    whole test set)."""
    replayable = [e for e in entries if compare_view.snapshot_epochs(e.path)]
    if not replayable:
        st.info("No run here has kept per-epoch snapshots yet (the demo runs were saved without them). Train one on "
                "the Train page, then replay it here: every run the app or `python -m vae train` trains keeps them.")
        return
    paths = [e.path for e in replayable]
    pick = st.selectbox("Run to replay", paths, key=S.CMP_REPLAY_RUN,
                        format_func=lambda p: catalogue.label(by_path[p]) if p in by_path else p)
    unlisted = [e.name for e in entries if e not in replayable]
    if unlisted:
        st.caption(f"Not listed, because they kept no per-epoch snapshots: {', '.join(unlisted)} (the demo runs ship "
                   "without them; every run the app or `python -m vae train` trains keeps them).")
    entry = by_path[pick]
    epochs = compare_view.snapshot_epochs(pick)
    epoch = st.select_slider("Epoch", epochs, value=epochs[-1], key=S.CMP_REPLAY_EPOCH) if len(epochs) > 1 \
        else epochs[0]
    snap = compare_view.snapshot(pick, int(epoch), entry.mtime)
    if snap is None:
        st.warning(f"The snapshot of epoch {epoch} cannot be read.")
    else:
        run = catalogue.load(entry)
        left, right = st.columns([3, 2], gap="large")
        with left:
            fig = compare_view.snapshot_map(snap, catalogue.class_names(run))
            if fig is not None:
                st.plotly_chart(fig, key=S.CMP_REPLAY_MAP, width="stretch")
                st.caption(f"The test images' latent means after epoch {epoch} of {len(compare_view.epochs_of(run))}.")
        with right:
            kl = snap.kl_per_dim
            if kl is not None:
                st.plotly_chart(charts.kl_bars(kl.tolist()), key=S.CMP_REPLAY_KL, width="stretch")
                st.caption(f"KL per dimension after epoch {epoch}.")
            if snap.pair() is not None:
                st.image(images.png(("replay", entry.key, int(epoch)),
                                    lambda: images.recon_pair(*snap.pair(), target=36)),
                         caption="Inputs (top) and their reconstructions after this epoch.", output_format="PNG")


replay()
