"""Reconstructions: test inputs beside their reconstructions, per-image loss, worst first,
and posterior samples of one input."""
import numpy as np
import streamlit as st

from ui import catalogue, compute, datasets, images
from ui import state as S

st.title("Reconstructions")
st.caption("Each test image goes through the encoder to its latent mean and back through the decoder. "
           "The number under each pair is its −ELBO in nats: how surprised the model is by that image.")

active = catalogue.active_run()
if active is None:
    st.stop()
entry, run = active
test, dkey = datasets.noted_test_images(run)
if test is None:
    st.warning("No test images fit this run, so there is nothing to reconstruct. Sliders and Generate still work.")
else:
    scores = compute.per_image(run.model, test, entry.key, str(dkey))
    n_test = len(test)
    loss = scores["neg_elbo"]
    worst = int(np.argmax(loss))

    @st.fragment
    def pairs() -> None:
        """The pairs and their order: changing either reruns this part alone."""
        c1, c2, c3 = st.columns([3, 2, 3])
        order_name = c1.segmented_control("Order", ["Worst first", "Best first", "Test order"], key=S.RECON_SORT,
                                          default="Worst first") or "Worst first"
        count = c2.select_slider("Pairs shown", [8, 12, 16, 24, 32, 48], value=16, key=S.RECON_COUNT)
        c3.markdown(f"Mean −ELBO over {n_test:,} test images: **{loss.mean():.1f} nats** "
                    f"(reconstruction {scores['recon'].mean():.1f} + KL {scores['kl'].mean():.1f})")
        if order_name == "Worst first":
            order = np.argsort(-loss, kind="stable")
        elif order_name == "Best first":
            order = np.argsort(loss, kind="stable")
        else:
            order = np.arange(n_test)
        shown = order[:count]
        pics = [images.png(("pair", entry.key, str(dkey), int(j), 70), lambda j=j: images.strip(np.stack([
            images.float_from_uint8(test.x[j].numpy()), images.float_from_uint8(scores["recons"][j])]), target=70))
            for j in shown]
        caps = [f"#{j} · {loss[j]:.1f} nats" for j in shown]
        st.image(pics, caption=caps, width=150, output_format="PNG")
        st.caption("Left of each pair: the test input. Right: its reconstruction (decoded posterior mean).")

    @st.fragment
    def posterior() -> None:
        """One image's posterior draws: each control here reruns this part alone."""
        c1, c2, c3 = st.columns([2, 2, 1])
        index = c1.number_input("Test image #", 0, n_test - 1, worst, key=S.RECON_INDEX,
                                help="Defaults to the worst reconstructed image.")
        samples = c2.slider("Posterior samples", 4, 16, 8, key=S.RECON_SAMPLES)
        seed = c3.number_input("Seed", 0, 10_000, 0, key=S.RECON_SEED)
        draws = compute.posterior_samples(run.model, test, entry.key, str(dkey), int(index), int(samples), int(seed))
        left, right = st.columns([1, 4])
        with left:
            i = int(index)
            st.image(images.png(("pair", entry.key, str(dkey), i, 70), lambda: images.strip(np.stack([
                images.float_from_uint8(test.x[i].numpy()), images.float_from_uint8(scores["recons"][i])]),
                target=70)), caption=f"#{int(index)}: input and mean reconstruction", width=150, output_format="PNG")
        with right:
            st.image(images.png(("draws", entry.key, str(dkey), int(index), int(samples), int(seed)),
                                lambda: images.grid(draws, min(8, len(draws)), target=70)),
                     caption=f"{len(draws)} decodes of z ~ q(z | x#{int(index)})", output_format="PNG")
        enc = compute.encode(run.model, test, entry.key, str(dkey))
        sd = np.exp(0.5 * enc["logvar"][int(index)])
        dims = catalogue.order_by_kl(run)[:16]
        st.caption("Posterior standard deviation per latent dimension (most informative first; 1 = as unsure as "
                   "the prior): " + ", ".join(f"z{d} {sd[d]:.2f}" for d in dims))

    pairs()
    st.subheader("What is the encoder unsure of?", divider="gray")
    st.caption("The encoder gives a whole distribution q(z|x), not one point. Decoding several draws from it "
               "shows which parts of the image the code pins down and which it leaves open.")
    posterior()
