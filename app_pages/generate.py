"""Generate: new images decoded from random points of the prior."""
import numpy as np
import streamlit as st

from ui import catalogue, compute, images
from ui import state as S

ALL = -1

st.title("Generate")
st.caption("Each image is the decoder's output for a random point z drawn from the prior N(0, I): none of them is "
           "in the training set. Lower the temperature to draw closer to the centre (safer, blander images).")

active = catalogue.active_run()
if active is None:
    st.stop()
entry, run = active
m = run.config.model
if (layers_note := catalogue.top_layer_note(run)) is not None:
    st.info(layers_note, icon=":material/layers:")
if catalogue.is_tracked(run):
    st.caption(f"{run.config.tracked.source or 'This model'} was logged with vae.track: its code holds no prior of "
               "its own for VAE Lab to read, so z is drawn from N(0, I), the prior a VAE's KL term compares with.")
names = catalogue.class_names(run)


@st.fragment
def samples() -> None:
    """The controls and the samples they draw: "New samples" and each control rerun this part alone."""
    c1, c2, c3, c4 = st.columns([2, 2, 2, 2])
    cls = None
    if m.conditional:
        cls = c4.selectbox("Class", [ALL] + list(range(m.num_classes)), key=S.GEN_CLASS,
                           format_func=lambda i: "every class, one row each" if i == ALL else
                           (names[i] if names else str(i)))
    per_class = m.conditional and cls == ALL
    n = c1.slider("Samples per class" if per_class else "Samples", 1, 100, 10 if per_class else 48, key=S.GEN_N)
    seed = c2.number_input("Seed", 0, 1_000_000, 0, key=S.GEN_SEED)
    temp = c3.slider("Temperature", 0.1, 2.0, 1.0, 0.1, key=S.GEN_TEMP, help="z ~ N(0, T² I)")
    st.button("New samples", key=S.GEN_REDRAW, icon=":material/casino:",
              on_click=lambda: st.session_state.update({S.GEN_SEED: int(st.session_state.get(S.GEN_SEED, 0)) + 1}))

    if per_class:
        labels = np.repeat(np.arange(m.num_classes), n)
        nrow = n
    elif m.conditional:
        labels = np.full(n, cls)
        nrow = min(n, 12)
    else:
        labels, nrow = None, min(n, 12)
    count = int(len(labels) if labels is not None else n)
    label_key = None if labels is None else tuple(map(int, labels))
    z, pics = compute.prior_samples(run.model, entry.key, count, int(seed), float(temp), label_key)
    grid = images.png(("samples", entry.key, count, int(seed), float(temp), label_key, nrow),
                      lambda: images.grid(pics, nrow, target=56))
    what = f"{len(pics)} samples" + (f", {n} per class, one row per class ({', '.join(names or [])})" if per_class
                                     else (f" of class {names[cls] if names else cls}" if m.conditional else ""))
    st.image(grid, caption=f"{what} · seed {int(seed)} · temperature {temp:.1f}", width="content",
             output_format="PNG")

    stem = f"{entry.name}-samples-seed{int(seed)}"
    d1, d2, _ = st.columns([1, 1, 3])
    d1.download_button("PNG", grid, file_name=f"{stem}.png", mime="image/png",
                       icon=":material/download:", key=S.GEN_PNG)
    d2.download_button("npz", lambda: images.npz_bytes(images=(pics * 255).round().astype(np.uint8), z=z,
                                                       y=None if labels is None else labels),  # made on click
                       file_name=f"{stem}.npz", mime="application/octet-stream", icon=":material/download:",
                       key=S.GEN_NPZ, help="images: uint8 [N, C, H, W]; z: float32 [N, D]; y: labels")


samples()
