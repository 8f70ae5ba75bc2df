"""Inside a VAE: one input through the whole forward pass, with this input's numbers at every stage,
the two loss terms, and a cloud of posterior draws on the latent map."""
import hashlib

import numpy as np
import streamlit as st

from ui import catalogue, charts, compute, datasets, draw_pad, images, inside_view, links, map_view
from ui import state as S
from vae.data import DataError

st.title("Inside a VAE")
st.caption("Follow one input through the model: the encoder gives a mean μ and a log-variance log σ² for every "
           "latent dimension; a noise draw ε turns them into one code z = μ + σ·ε; the decoder turns z back into an "
           "image. The loss for this input is the two numbers under the diagram.")

active = catalogue.active_run()
if active is None:
    st.stop()
entry, run = active
m = run.config.model
names = catalogue.class_names(run)
test, dkey = datasets.noted_test_images(run)
if test is not None:
    links.restore("i", lambda v: inside_view.show_test_image(int(v), len(test)),
                  f"a test image number 0..{len(test) - 1}")

def condition_on(where) -> int:
    """A conditional model's label for a drawing or an upload (a test image brings its own)."""
    return int(where.selectbox("Label to condition on", range(m.num_classes), key=S.INSIDE_LABEL,
                               format_func=lambda i: names[i] if names else str(i)))

c1, c2, c3, c4 = st.columns([3, 2, 1.3, 1], vertical_alignment="bottom")
source = c1.segmented_control("Input", [inside_view.TEST, inside_view.DRAW, inside_view.UPLOAD],
                              default=inside_view.TEST, key=S.INSIDE_SOURCE) or inside_view.TEST
x = label = None
input_key = what = ""
if source == inside_view.TEST:
    if test is None:
        st.warning("No test images fit this run; choose “Your own image”.")
    else:
        index = int(c2.number_input("Test image #", 0, len(test) - 1, 0, key=S.INSIDE_INDEX))
        x, label = inside_view.test_image(test, index)
        links.publish("i", str(index))
        input_key, what = f"test:{index}", f"test image #{index}" + (
            f" (label {names[label]})" if label is not None and names else "")
elif source == inside_view.DRAW:
    if m.conditional:
        label = condition_on(c2)
    if catalogue.is_tracked(run):
        st.info("Drawing encodes your strokes in the browser, and a model logged with vae.track encodes on the "
                "server only: follow a test image or upload a picture.")
    elif not draw_pad.supported(run.model, entry.key):
        st.warning("This run's encoder or decoder uses a layer the browser cannot run; upload a picture instead.")
    else:
        drawn = draw_pad.draw_pad(run.model, key=S.INSIDE_PAD, run_key=entry.key, label=label, class_names=names,
                                  center=(m.channels, m.image_size) == (1, 28),
                                  **inside_view.pad_context(run.model, entry.key, test, dkey,
                                                            catalogue.order_by_kl(run)))
        st.caption("Draw with the mouse, a pen or a finger: every stroke is encoded in your browser and the "
                   "point, its ellipses, the reconstruction and the KL follow. Lift the pen and the whole "
                   "forward pass below follows your drawing.")
        if drawn is not None and drawn.max() > 0:
            x = drawn
            input_key = "draw:" + hashlib.blake2b(drawn.tobytes(), digest_size=6).hexdigest()
            what = "your drawing"
else:
    up = c2.file_uploader("A picture (PNG, JPEG, BMP, GIF or WebP)", type=["png", "jpg", "jpeg", "bmp", "gif",
                          "webp"], key=S.INSIDE_UPLOAD)
    invert = c2.toggle("Dark ink on light paper (invert)", key=S.INSIDE_INVERT,
                       help="The digit data sets are light strokes on black; a photo of ink on paper is the "
                            "opposite.")
    if up is not None:
        try:
            x = inside_view.uploaded_image(up.getvalue(), up.name, m, invert)
            input_key, what = f"upload:{up.file_id}:{invert}", f"your picture {up.name}"
        except DataError as e:
            st.error(str(e))
    if m.conditional:
        label = condition_on(st)
c3.button("Resample ε", on_click=inside_view.resample, icon=":material/casino:", key=S.INSIDE_RESAMPLE,
          help="Draw a new ε: z moves inside the posterior, μ and σ stay.")
c4.toggle("Freeze ε", key=S.INSIDE_FREEZE,
          help="Keep the same ε when you change the input: z then moves only through μ and σ.")

if x is None:
    if source == inside_view.DRAW:
        pass
    elif source == inside_view.UPLOAD:
        st.info(f"Upload a picture; it is cut to a centred square and resized to {m.image_size}×{m.image_size}.")
else:
    if m.conditional and label is None:
        label = 0
    seed = inside_view.eps_seed(input_key)
    p = inside_view.forward(run.model, entry.key, x, seed, None, label)
    order = [int(j) for j in np.argsort(-p.kl_per_dim, kind="stable")]
    if source == inside_view.DRAW:
        st.button("Send this point to the Sliders", icon=":material/tune:", key=S.INSIDE_SEND,
                  on_click=inside_view.send_to_sliders, args=(entry.key, p.mu.tolist(), label))
    st.html(inside_view.diagram(p, m, order, inside_view.parts(run)))
    st.caption(f"Following {what} with ε draw #{seed}. Dimensions are listed by their KL for this input, "
               f"most first ({min(len(order), inside_view.SHOWN_DIMS)} of {m.latent_dim} shown)."
               + ("" if p.lower is None else " This model has two stochastic layers (Tomczak & Welling 2018): the "
                  "top layer z is drawn from q(z | x) and measured against the prior; the lower layer z₁ is drawn "
                  "from q(z₁ | x, z) and measured against p(z₁ | z), a prior that itself depends on z. The "
                  "Latent map and the Sliders show the top layer."))

    # ---- the formulas with this input's numbers
    st.subheader("The same numbers in the formulas", divider="gray")
    for line in inside_view.formulas(p, m, order[0], float(run.model.sigma().mean())):
        st.latex(line)
    st.caption("The reconstruction term is a one-sample estimate at this z (as in training): resample ε and it "
               "changes; the KL is exact, from μ and σ alone."
               + (inside_view.tracked_terms(run.config.tracked.output, m) if catalogue.is_tracked(run) else ""))

    # ---- how unsure is the encoder
    enc = None if test is None else compute.encode(run.model, test, entry.key, str(dkey))
    scores = None if test is None else compute.per_image(run.model, test, entry.key, str(dkey))
    note = inside_view.unusual_note(p, order, None if enc is None else enc["logvar"],
                                    None if scores is None else scores["neg_elbo"])
    if note:
        st.markdown(note)

    left, right = st.columns([3, 2], gap="large")
    with right:
        st.plotly_chart(charts.kl_bars(p.kl_per_dim.tolist(), order), key=S.INSIDE_KL_CHART, width="stretch")
        st.caption("KL of each dimension for this input: how far its posterior moved from the prior N(0, 1)."
                   if run.config.model.prior == "normal" else "KL of each dimension for this input, against the "
                   "VampPrior's marginal on that dimension (a mixture's KL does not split by dimension, so these "
                   "do not add up to the total).")
        if p.lower is not None:
            st.plotly_chart(charts.kl_bars(p.lower.kl_per_dim.tolist(),
                                           [int(j) for j in np.argsort(-p.lower.kl_per_dim, kind="stable")],
                                           prefix="z₁,"),
                            key=S.INSIDE_KL_LOWER_CHART, width="stretch")
            st.caption(f"KL of each dimension of the lower layer z₁ for this input, against its conditional prior "
                       f"p(z₁ | z): {p.lower.kl:.2f} nats in all, beside the top layer's {p.kl_top:.2f}.")
    with left:
        n_cloud = st.select_slider("Posterior draws", [10, 25, 50, 100, 200], value=50, key=S.INSIDE_CLOUD_N)
        z_cloud, pics = inside_view.cloud(run.model, entry.key, x, int(n_cloud), seed, label)
        if test is not None and m.latent_dim >= 2:
            proj = map_view.projection(enc["mu"], "pca", entry.key, str(dkey))
            y = None if test.y is None else test.y.numpy()
            base = map_view.figure(proj, None if y is None else y[proj.index], names, entry.key, str(dkey),
                                   height=460)
            fig = inside_view.cloud_figure(base, p.mu, p.sigma, z_cloud, proj.place,
                                           inside_view.components_of(proj.params, m.latent_dim))
            st.plotly_chart(fig, key=S.INSIDE_MAP, width="stretch")
            st.caption("The test set's map (every dot is a test image) with this input's posterior: μ (×), "
                       "its 1σ and 2σ ellipses (39% and 86% of the draws fall inside), and "
                       f"{len(z_cloud)} draws z ~ q(z | x) in orange."
                       + ("" if m.latent_dim == 2 else " Beyond 2-D the map is the first two principal "
                          "components and the ellipses are the posterior seen along them."))
    st.image(images.png(("inside-cloud", entry.key, input_key, seed, int(n_cloud)),
                        lambda: images.grid(pics[:50], min(25, len(pics[:50])), target=42)),
             caption=f"Decodes of the first {min(50, len(pics))} draws: what the model thinks this input could "
                     "be. Parts that change from draw to draw are what the code leaves open.",
             output_format="PNG")
