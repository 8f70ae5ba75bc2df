"""Home: what a VAE is, what each page does, and the active run at a glance."""
import streamlit as st

from ui import catalogue, compute, images, scenarios, train_panel
from ui import state as S
from ui.pages import PAGES

st.title("VAE Lab")
st.markdown(
    "A **variational autoencoder** (VAE) learns to squeeze each image into a few numbers, a point in a "
    "*latent space*, and to turn any such point back into an image. "
    "Training balances two costs: rebuild the input well (*reconstruction*) and keep the points spread like a "
    "standard normal cloud (*KL*), so that every region of the space decodes to something plausible. "
    "Here you can **train** a VAE, compare inputs with their **reconstructions**, explore the **latent map**, "
    "move **sliders** through the latent space, and **generate** new images from random points."
)

st.subheader("Guided experiments", divider="gray")
st.caption(f"One click sets up a short run ({train_panel.QUICK_SECONDS} s on MNIST digits) that shows a classic "
           "failure or its cure, and starts it on the Train page; the Doctor gives its verdict when it ends.")
quick = [sc for sc in scenarios.SCENARIOS if sc.then is None]
for col, sc in zip(st.columns(len(quick)), quick):
    with col:
        st.markdown(f"**{sc.title}**")
        st.caption(sc.look_for)
        if st.button("Set up and start", key=f"{S.SCENARIO_BUTTON}.{sc.key}", on_click=scenarios.set_up,
                     args=(sc.key,), icon=":material/play_circle:"):
            st.switch_page("app_pages/train.py")
for sc in (sc for sc in scenarios.SCENARIOS if sc.then is not None):    # two runs, one after the other
    c1, c2 = st.columns([4, 1], vertical_alignment="center")
    c1.markdown(f"**{sc.title}** · two runs of {scenarios.DIMS_SECONDS} s, one after the other, ending with their "
                "heat maps side by side")
    c1.caption(sc.look_for)
    if c2.button("Set up and start", key=f"{S.SCENARIO_BUTTON}.{sc.key}", on_click=scenarios.set_up,
                 args=(sc.key,), icon=":material/play_circle:"):
        st.switch_page("app_pages/train.py")

left, right = st.columns([3, 2], gap="large")
with left:
    st.subheader("Pages")
    for page in PAGES[1:]:
        st.page_link(page.path, label=page.title, icon=page.icon)
        st.caption(page.blurb)

with right:
    active = catalogue.active_run()
    if active is not None:
        entry, run = active
        m = run.config.model
        st.subheader("Active run")
        st.markdown(f"**{entry.name}** · {m.latent_dim}-D latent · {catalogue.model_name(run)}")
        label = 0 if m.conditional else None
        if m.latent_dim >= 2:
            dims = (0, 1) if m.latent_dim == 2 else tuple(catalogue.order_by_kl(run)[:2])
            pic = images.png(("home", entry.key, dims, label), lambda: images.grid(
                compute.manifold(run.model, entry.key, 10, dims, label), target=42))
            caption = (f"Decoded over a 10×10 grid of prior quantiles in z{dims[0]} (across) and z{dims[1]} (up)"
                       + (", class " + catalogue.class_names(run)[0] if m.conditional else "") + ".")
        else:
            pic = images.png(("home", entry.key), lambda: images.grid(
                compute.prior_samples(run.model, entry.key, 64, 0, 1.0, None)[1], target=42))
            caption = "Samples from the prior."
        st.image(pic, caption=caption, width="stretch", output_format="PNG")
        final = run.metrics.final
        if final.neg_elbo is not None:
            c1, c2, c3 = st.columns(3)
            c1.metric("−ELBO", f"{final.neg_elbo:.1f}", help="test −ELBO in nats per image; lower is better")
            c2.metric("KL", f"{final.kl:.1f}", help="nats per image spent on the latent code")
            c3.metric("Dims used", f"{final.active_units if final.active_units is not None else '?'}/{m.latent_dim}",
                      help="dimensions whose posterior mean varies across test images")
        st.caption("Choose another run in the sidebar; demo runs ship with the app and need no training.")
