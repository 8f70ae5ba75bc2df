"""Latent map: the test set's latent means, the prior's circles, layers (posterior ellipses, density, the
prior's holes), a manifold grid, interpolation between two points (linear and spherical), class-mean
directions and, for 2-D runs, a latent pad."""
import functools

import numpy as np
import streamlit as st

from ui import catalogue, compute, datasets, downloads, images, links, map_view
from ui import state as S
from ui.live_decoder import latent_panel

st.title("Latent map")
st.caption("Every dot is one test image, placed at its latent mean and coloured by its label. The dashed circles "
           "hold 39% (1σ) and 86% (2σ) of the prior N(0, I) in two dimensions (68% and 95% are the 1-D figures): "
           "a well-trained map fills them.")

active = catalogue.active_run()
if active is None:
    st.stop()
entry, run = active
m = run.config.model
d = m.latent_dim
names = catalogue.class_names(run)
if (layers_note := catalogue.top_layer_note(run)) is not None:
    st.info(layers_note, icon=":material/layers:")
test, dkey = datasets.noted_test_images(run)

c1, c2, c3 = st.columns(3)
method = "pca"
if d > 2:
    method = {"PCA": "pca", "t-SNE": "tsne"}[c1.segmented_control(
        "Projection to 2-D", ["PCA", "t-SNE"], default="PCA", key=S.MAP_METHOD,
        help="PCA is linear (paths and circles can be drawn); t-SNE keeps neighbours together but bends space.")
        or "PCA"]
label = None
if m.conditional:
    label = c2.selectbox("Class to decode", list(range(m.num_classes)), key=S.MAP_LABEL,
                         format_func=lambda i: names[i] if names else str(i),
                         help="A conditional model decodes a latent point differently for each class.")
grid_n = c3.slider("Manifold grid size", 6, 24, 15, key=S.MAP_GRID_N)
shown = []
if method != "tsne":
    shown = st.pills("Layers", map_view.LAYERS, selection_mode="multi", key=S.MAP_LAYERS,
                     help="Posterior ellipses: where each image's code could be (1σ of q(z|x), 300 images). "
                          "Density: where the encoded test images lie. Holes: where the prior N(0, I) would "
                          "sample but no image was encoded; click a cross to decode it. Class direction: the "
                          "path of the \"More like a …\" section below.") or []

mu = y = proj = enc = None
if test is not None:
    enc = compute.encode(run.model, test, entry.key, str(dkey))
    mu = enc["mu"]
    y = None if test.y is None else test.y.numpy()
    proj = map_view.projection(mu, method, entry.key, str(dkey))
layer_data = map_view.layers(proj, mu, enc["logvar"], y, names, entry.key, str(dkey)) \
    if proj is not None and set(shown) - {map_view.DIRECTION} else None
if mu is not None:
    links.restore("points", lambda v: map_view.set_clicks(entry.key, [int(i) for i in v.split(",")], len(mu)),
                  f"one or two test image numbers 0..{len(mu) - 1}, separated by a comma")


@st.fragment
def clickable() -> None:
    """The map and everything a click on it changes (the clicked image, the interpolation ends, the class
    direction's start): a click, and any control in here, reruns this part alone, not the sidebar, the pad or the
    export panel."""
    hole = map_view.clicked_hole(entry.key)
    hole = layer_data["holes"][hole] if (layer_data and map_view.HOLES in shown and hole is not None
                                         and hole < len(layer_data["holes"])) else None
    clicked = map_view.clicks(entry.key)
    links.publish("points", ",".join(map(str, clicked)) or None)
    direction = None
    if mu is not None and y is not None:
        direction = map_view.direction_state(entry.key, str(dkey), mu, y, clicked, names)

    # ---- interpolation ends (computed first: the path is drawn on the map)
    st.session_state.setdefault(S.MAP_ENDS_FROM, map_view.TEST)
    ends = None
    saved = st.session_state.get(S.SHARED_ENDS, {}).get(entry.key, {})
    source = st.session_state.get(S.MAP_ENDS_FROM)
    if source == map_view.CLICKED and mu is not None and len(clicked) == 2:
        ends = (mu[clicked[0]], mu[clicked[1]], f"#{clicked[0]}", f"#{clicked[1]}")
    elif source == map_view.SLIDERS and "A" in saved and "B" in saved:
        ends = (np.asarray(saved["A"]["z"], np.float32), np.asarray(saved["B"]["z"], np.float32), "A", "B")
    elif source == map_view.TEST and mu is not None:
        map_view.default_test_ends(mu, y)
        a = int(min(st.session_state[S.MAP_A], len(mu) - 1))
        b = int(min(st.session_state[S.MAP_B], len(mu) - 1))
        ends = (mu[a], mu[b], f"#{a}", f"#{b}")
    steps = int(st.session_state.get(S.MAP_STEPS, 10))
    lin = sph = None
    if ends is not None:
        za, zb = tuple(map(float, ends[0])), tuple(map(float, ends[1]))
        lin = compute.interpolation(run.model, entry.key, za, zb, steps, "linear", label)
        sph = compute.interpolation(run.model, entry.key, za, zb, steps, "spherical", label)

    left, right = st.columns([5, 3], gap="large")
    with left:
        if proj is None:
            st.warning("No test images fit this run, so there is no map. The manifold and the pad still work.")
        else:
            paths, marked = [], []
            if lin is not None and proj.params["method"] != "tsne":
                paths = [("linear path", proj.place(lin[0]), "solid"), ("spherical path", proj.place(sph[0]), "dot")]
                pa, pb = proj.place(np.stack([ends[0], ends[1]]))
                marked = [(f"A {ends[2]}", *pa), (f"B {ends[3]}", *pb)]
            if direction is not None and map_view.DIRECTION in shown:
                paths.append((direction.name, proj.place(direction.path), "dash"))
            fig = map_view.figure(proj, None if y is None else y[proj.index], names, entry.key, str(dkey),
                                  paths=paths, marked=marked)
            map_view.add_layers(fig, layer_data, shown)
            st.plotly_chart(fig, key=S.MAP_CHART, on_select=functools.partial(map_view.on_select, entry.key, len(mu),
                                                                         len((layer_data or {}).get("holes") or ())),
                            selection_mode="points", width="stretch")
            hint = "Click a point to see its image; click two to interpolate between them."
            if proj.params["method"] == "tsne":
                hint += " Under t-SNE distances are not latent distances, so no circles or paths are drawn."
                if len(proj.index) < len(mu):
                    hint += f" t-SNE shows the first {len(proj.index):,} of {len(mu):,} test images."
            st.caption(hint)
    with right:
        dims = (0, 1) if d <= 2 else tuple(catalogue.order_by_kl(run)[:2])
        if d == 1:
            st.info("A 1-D latent has no 2-D manifold; see the Sliders page.")
        else:
            target = 28 if grid_n > 12 else 40
            pic = images.png(("manifold", entry.key, grid_n, dims, label, target), lambda: images.grid(
                compute.manifold(run.model, entry.key, grid_n, dims, label), grid_n, target=target))
            st.image(pic, width="stretch",
                     caption=f"Manifold: decoded over a {grid_n}×{grid_n} grid of prior quantiles (5% to 95%) in "
                             f"z{dims[0]} (across) and z{dims[1]} (up, larger at the top)"
                             + ("" if d <= 2 else ", other dimensions at 0") + ".", output_format="PNG")
        if hole is not None:
            z_hole, z_near = map_view.hole_latents(proj, hole)
            pics = np.stack([compute.decode_one(run.model, entry.key, tuple(map(float, z)), label)
                             for z in (z_hole, z_near)])
            st.image(images.png(("hole", entry.key, str(dkey), hole.x, hole.y, label),
                                lambda: images.strip(pics, target=84)), width=200, output_format="PNG",
                     caption=f"Left: decoded at the hole ({hole.x:.2f}, {hole.y:.2f}). Right: at the nearest "
                             f"encoded test image, {hole.distance:.2f} away on the map.")
            st.caption(map_view.hole_sentence(hole))
        if clicked and test is not None:
            i = clicked[-1]
            pair = images.png(("pair", entry.key, str(dkey), i, 84), lambda: images.strip(np.stack([
                images.float_from_uint8(test.x[i].numpy()),
                images.float_from_uint8(compute.per_image(run.model, test, entry.key, str(dkey))["recons"][i])]),
                target=84))
            lab = f", label {names[int(y[i])]}" if y is not None and names else ""
            st.image(pair, width=200,
                     caption=f"Clicked #{i}{lab}: input and reconstruction", output_format="PNG")

    # ---- interpolation
    st.subheader("Interpolate between two points", divider="gray")
    c1, c2, c3, c4 = st.columns([4, 1, 1, 2])
    c1.segmented_control("Ends", [map_view.CLICKED, map_view.TEST, map_view.SLIDERS], key=S.MAP_ENDS_FROM,
                         help="Click two points on the map, pick two test images, or use the A and B points "
                              "saved on the Sliders page.")
    if test is not None:
        map_view.default_test_ends(mu, y)
        other = source != map_view.TEST        # the ends come from clicks or the Sliders: these do not apply
        why = "Used when the ends are Test images." if other else None
        c2.number_input("Test image A", 0, len(test) - 1, key=S.MAP_A, disabled=other, help=why)
        c3.number_input("Test image B", 0, len(test) - 1, key=S.MAP_B, disabled=other, help=why)
    c4.slider("Frames", 3, 30, 10, key=S.MAP_STEPS)
    if lin is None:
        if source == map_view.CLICKED:
            st.info(f"Click two points on the map ({len(clicked)} so far).")
        elif source == map_view.SLIDERS:
            st.info("Save an A and a B point on the Sliders page first.")
        else:
            st.info("No test images to interpolate between.")
    else:
        st.caption("Linear: a straight line in latent space, which passes closer to the centre than either end. "
                   "Spherical (slerp): turns along the arc from one point's direction to the other's, its length "
                   "going from one end's to the other's, so it stays out where most of the prior's mass lies in "
                   "high dimensions.")
        for name, (path, frames) in (("Linear", lin), ("Spherical", sph)):
            strip = images.png(("interpolation", entry.key, name, za, zb, steps, label),
                               functools.partial(images.strip, frames, target=56))
            st.image(strip, width="stretch",
                     caption=f"{name}: {len(frames)} frames from {ends[2]} (left) to {ends[3]} (right)",
                     output_format="PNG")
        g1, g2, _ = st.columns([1, 1, 3])
        for col, (name, (_, frames)) in zip((g1, g2), (("linear", lin), ("spherical", sph))):
            col.download_button(f"GIF ({name})", functools.partial(images.gif_bytes, frames),  # made on click
                                file_name=f"{entry.name}-{name}.gif", mime="image/gif", icon=":material/download:",
                                key=f"{S.MAP_GIF}.{name}")

    # ---- class-mean directions
    if direction is not None:
        st.subheader("More like a …", divider="gray")
        map_view.direction_panel(run.model, entry.key, direction, label, names)


clickable()

# ---- the latent pad (2-D runs)
if d == 2:
    st.subheader("Latent pad", divider="gray")
    st.caption("Drag the point over the decoded manifold: the image follows your finger, decoded in the browser, "
               "and the path you draw stays on the pad.")

    @st.fragment
    def pad() -> None:
        """The pad alone: a release reruns this part, not the map above."""
        extent = 3.0
        latent_panel(run.model, key=S.MAP_PAD, mode="pad", order=[0, 1], label=label, class_names=names,
                     pad_background=map_view.pad_background(run.model, entry.key, extent, label),
                     slider_range=extent, image_px=196, run_key=entry.key)

    pad()

downloads.panel(entry, run, test, enc, names)
