"""Sliders: one slider per latent dimension, the image decoded in the browser as you drag."""
import math

import streamlit as st

from ui import catalogue, compute, datasets, images, links, sliders_view
from ui import state as S
from ui.live_decoder import latent_panel
from vae.evaluate import UNUSED_KL_NATS

st.title("Sliders")
st.caption("Each slider moves one coordinate of the latent point; the decoder turns the point into the image on "
           "the right as you drag. Dimensions are ordered by how much information they carry (KL), most first.")

active = catalogue.active_run()
if active is None:
    st.stop()
entry, run = active
m = run.config.model
d = m.latent_dim
names = catalogue.class_names(run)
if (layers_note := catalogue.top_layer_note(run)) is not None:
    st.info(layers_note, icon=":material/layers:")
order = catalogue.order_by_kl(run)
kl = catalogue.kl_per_dim(run)

c1, c2, c3 = st.columns([3, 2, 2])
start = c1.segmented_control("Start from", sliders_view.STARTS, default=sliders_view.ZERO, key=S.SLIDERS_START,
                             on_change=sliders_view.forget_custom_start, args=(entry.key,)) or sliders_view.ZERO
test, dkey, note = (None, None, None)
if start == sliders_view.TEST:
    test, dkey, note = datasets.for_run(run)
if start == sliders_view.PRIOR:
    c2.number_input("Sample seed", 0, 1_000_000, 0, key=S.SLIDERS_SEED)
    c2.button("New random sample", key=S.SLIDERS_NEW_SAMPLE, on_click=sliders_view.next_seed,
              icon=":material/casino:")
elif start == sliders_view.TEST and test is not None:
    c2.number_input("Test image #", 0, len(test) - 1, 0, key=S.SLIDERS_INDEX)
elif start == sliders_view.TEST:
    c2.caption(note or "No test images fit this run.")
if d > sliders_view.MAX_SLIDERS:
    c3.toggle(f"Show all {d} dimensions", key=S.SLIDERS_SHOW_ALL,
              help=f"Otherwise only the {sliders_view.MAX_SLIDERS} most informative are shown; the rest stay "
                   "at their starting values.")
shown = order if (d <= sliders_view.MAX_SLIDERS or st.session_state.get(S.SLIDERS_SHOW_ALL)) \
    else order[:sliders_view.MAX_SLIDERS]

links.restore("z", lambda v: sliders_view.send_precise(entry.key, links.floats(v, d), None),
              f"{d} comma-separated numbers, one per latent dimension")


@st.fragment
def panel() -> None:
    """The sliders and what reads their point (the saved points, the precise values): a release, and each control
    in here, reruns this part alone. (A decoder on the server path reruns the whole page on a release.)"""
    z0, label0, start_text = sliders_view.start_point(run, entry.key, start, test, dkey)
    span = float(min(6.0, max(3.0, math.ceil(max(abs(v) for v in z0)))))
    st.caption(start_text)
    value = latent_panel(run.model, key=S.SLIDERS_PANEL, mode="sliders", order=shown, z0=z0, label=label0,
                         class_names=names, slider_range=span, image_px=224, run_key=entry.key)
    z, label = (value["z"], value["label"]) if isinstance(value, dict) else (value, None)
    links.publish("z", ",".join(f"{v:.3f}" for v in z))
    if kl is not None and d > 2:
        unused = [i for i in range(d) if kl[i] < UNUSED_KL_NATS]
        if unused:
            st.caption(f"{len(unused)} of {d} dimensions carry almost no information (KL < {UNUSED_KL_NATS:g} nats): "
                       "moving them barely changes the image, because the decoder learned to ignore them. A model "
                       "that needs fewer dimensions than it has leaves the rest unused (a β-TCVAE does so on "
                       "purpose); when all or nearly all go unused, that is posterior collapse (the Doctor says "
                       "which).")

    # ---- keep this point
    b1, b2, b3, _ = st.columns([1, 1, 1, 1])
    b1.button("Save this point", key=S.SLIDERS_SAVE, icon=":material/bookmark_add:", width="stretch",
              on_click=sliders_view.save_point, args=(entry.key, z, label))
    b2.button("Interpolate from here", key=S.SLIDERS_TO_A, icon=":material/line_start:", width="stretch",
              on_click=sliders_view.set_end, args=(entry.key, "A", z, label),
              help="Makes this point the start (A) of the interpolation on the Latent map page.")
    b3.button("Interpolate to here", key=S.SLIDERS_TO_B, icon=":material/line_end:", width="stretch",
              on_click=sliders_view.set_end, args=(entry.key, "B", z, label),
              help="Makes this point the end (B) of the interpolation on the Latent map page.")
    saved = sliders_view.saved_points(entry.key)
    ends = st.session_state.get(S.SHARED_ENDS, {}).get(entry.key, {})
    if saved or ends:
        pics, caps = [], []
        for tag in ("A", "B"):
            if tag in ends:
                pics.append(images.one(compute.decode_one(run.model, entry.key, tuple(ends[tag]["z"]),
                                                          ends[tag]["label"]), target=84))
                caps.append(f"interpolation {tag}")
        for p in saved:
            pics.append(images.one(compute.decode_one(run.model, entry.key, tuple(p["z"]), p["label"]), target=84))
            caps.append(p["name"])
        st.image(pics, caption=caps, width=96, output_format="PNG")
        if saved:
            st.button("Clear saved points", key=S.SLIDERS_CLEAR, on_click=sliders_view.clear_saved, args=(entry.key,))

    # ---- exact values, decoded on the server
    with st.expander("Precise values", icon=":material/pin:"):
        st.caption("Type exact coordinates; the image below is decoded on the server. "
                   "“Send to the sliders” restarts the sliders from these values.")
        keys = sliders_view.init_precise(entry.key, z)
        cols = st.columns(4)
        for n, dim in enumerate(shown):
            cols[n % 4].number_input(f"z{dim}", -10.0, 10.0, step=0.1, format="%.3f", key=keys[dim])
        plabel = None
        if m.conditional:
            plabel = st.selectbox("Class", list(range(m.num_classes)), key=S.SLIDERS_PRECISE_LABEL,
                                  format_func=lambda i: names[i] if names else str(i))
        zp = [float(st.session_state[keys[i]]) for i in range(d)]
        st.image(images.one(compute.decode_one(run.model, entry.key, tuple(zp), plabel), target=168),
                 caption="z = [" + ", ".join(f"{v:.2f}" for v in zp[:8]) + (", …]" if d > 8 else "]"), width=180,
                 output_format="PNG")
        st.button("Send to the sliders", key=S.SLIDERS_SEND, on_click=sliders_view.send_precise,
                  args=(entry.key, zp, plabel), icon=":material/north:")


panel()
