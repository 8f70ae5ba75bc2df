"""Use cases: what practitioners use a VAE for, with measured numbers on held-out data.

Sections: few labels (semi-supervised), linear probe, compression, rate-distortion, augmentation,
anomalies. Full-MNIST numbers come from assets/results (rerun with the commands shown); the
anomaly section also scores the active run live.
"""
import numpy as np
import streamlit as st

from ui import catalogue, datasets, images
from ui import state as S
from ui import usecases_view as U

st.title("Use cases")
st.caption("What a VAE is used for beyond pretty samples. Every number is on held-out test images; each section "
           "shows the command that produced it, so you can rerun it.")


def command(cmd: str) -> None:
    st.code(U.command_text(cmd), language="bash", wrap_lines=True)


st.caption(U.DATA_DIR_NOTE)
SEEDS_COMMAND = "python bench/usecase_seeds.py --data-dir DATA_DIR > assets/results/usecase_seeds.json"


def missing(name: str, cmd: str) -> None:
    st.info(f"No result yet ({name}.json). Produce it with:")
    command(cmd)


few, probe, comp, rd, aug, anom = st.tabs(["Few labels", "Linear probe", "Compression", "Rate–distortion",
                                            "Augmentation", "Anomalies"])

with few:
    st.subheader("Semi-supervised classification with few labels")
    st.markdown("**M1+M2** (Kingma et al. 2014): a VAE (M1) fitted on all 60,000 training images without labels, "
                "then a semi-supervised generative model (M2) on its 50-D codes that learns from the k labelled "
                "images *and* from the unlabelled ones. Then M1 and M2 **train together**: M1 keeps its ELBO, the "
                "classifier reads M1's encoder's last hidden layer and the labels reach that encoder, and each "
                "unlabelled digit must keep its class under a random rotation, zoom, shift and smooth warp "
                "wherever the classifier is sure of it (pseudo-labels). Baseline: "
                "logistic regression on the raw pixels of the same k images. Paper anchors with 100 labels: "
                "M2 11.97 %, M1+M2 3.33 % test error.")
    rows = U.semisup_rows()
    if rows:
        st.dataframe([{"labels": r["labels"], "test error %": round(100 * r["test_error"], 2),
                       "pixel baseline error %": round(100 * r["baseline_test_error"], 2)
                       if r.get("baseline_test_error") is not None else None,
                       "minutes": r.get("minutes"),
                       "of which M1": r.get("m1_minutes") or r.get("m1_minutes_reused"),
                       "classifier reads": r.get("classifier", "code"), "joint epochs": r.get("joint_epochs")}
                      for r in rows],
                     hide_index=True, key=f"{S.UC_TABLE}.semisup")
        spread = U.result("semisup_k100_seeds")
        if spread:
            errs = ", ".join(f"{100 * e:.2f} %" for e in spread["test_errors"])
            seed_runs = spread.get("runs") or []
            fresh = bool(seed_runs) and all(r.get("m1_from") is None for r in seed_runs)
            cores = "one core" if all(r.get("threads") == 1 for r in seed_runs) else "all the machine's cores"
            st.markdown(f"**100 labels:** over {len(spread['test_errors'])} labelled subsets ({errs}) the test "
                        f"error is **{100 * spread['mean']:.2f} ± {100 * spread['sd']:.2f} %** (mean ± standard "
                        "deviation)" + (f", each run from nothing to a classifier on {cores}." if fresh else "."))
            command(spread["command"])
    else:
        missing("semisup_k100", "python -m vae semisup --data mnist --labels 100 --out runs/semisup-k100")
    command("python -m vae semisup --data mnist --data-dir DATA_DIR --labels 100 --threads 1 --out runs/semisup-k100\n"
            "python -m vae eval runs/semisup-k100   # JSON includes test_error")

with probe:
    st.subheader("Latent means as features")
    st.markdown("The same logistic regression, trained on k labelled images, on two inputs: the encoder's latent "
                "means and the raw pixels. Test accuracy by label budget.")
    spreads = U.result("usecase_seeds")
    if spreads:
        st.plotly_chart(U.probe_figure(spreads["probe"]), key=f"{S.UC_CHART}.probe")
        st.dataframe([{"labels": r["labels"], "latent accuracy": U.pm(r, "latent_accuracy", 4),
                       "pixel accuracy": U.pm(r, "pixel_accuracy", 4),
                       "latent ahead in": f"{r['latent_ahead_in']} of {r['of']} seeds"}
                      for r in spreads["probe"]["rows"]], hide_index=True, key=f"{S.UC_TABLE}.probe")
        st.caption(f"Mean ± standard deviation over {len(spreads['seeds'])} seeds: each seed trains its own M1 (the "
                   "semi-supervised recipe's 50-D VAE, without labels) and draws its own labelled images.")
        command(spreads["command"])
    else:
        missing("usecase_seeds", SEEDS_COMMAND)
    command("python -m vae probe RUN_DIR --budgets 100,600,1000,10000")

with comp:
    st.subheader("How many bits per pixel?")
    st.markdown("The VAE's −ELBO is a code length (bits-back coding gets within a little of it); the "
                "importance-weighted bound is tighter. Beside them: PNG and gzip on the very same images.")
    if spreads:
        res = spreads["compress"]
        st.dataframe([{"codec": name, "bits per dimension": U.pm(res, key, 4)} for name, key in [
            ("raw (uncompressed)", "raw_bits_per_dim"),
            ("PNG, one file per image", "png_per_image_bits_per_dim"),
            ("PNG, all images tiled in one file", "png_tiled_bits_per_dim"),
            ("gzip -9, all images", "gzip_bits_per_dim"),
            ("VAE −ELBO", "neg_elbo_bits_per_dim"),
            (f"VAE importance-weighted, K={res['iw_samples']}", "iw_bits_per_dim")]],
            hide_index=True, key=f"{S.UC_TABLE}.compress")
        st.caption(f"{res['n_images']:,} test images, {res['images']}: every codec codes the same 0/1 images. Mean "
                   f"± standard deviation over {len(spreads['seeds'])} seeds, each with its own M1.")
        command(spreads["command"])
    else:
        missing("usecase_seeds", SEEDS_COMMAND)
    command("python -m vae compress RUN_DIR --n 1000 --iw-samples 100")

with rd:
    st.subheader("Rate against distortion as β varies")
    st.markdown("Each point is a separately trained run: β > 1 buys a shorter code (rate, the KL) with worse "
                "reconstructions (distortion); β < 1 the other way.")
    if spreads:
        res = spreads["rd"]
        st.plotly_chart(U.rd_figure(res), key=f"{S.UC_CHART}.rd")
        st.dataframe([{"β": p["beta"], **{name: U.pm(p, key) for name, key in U.RD_COLUMNS}}
                      for p in res["points"]], hide_index=True, key=f"{S.UC_TABLE}.rd")
        st.caption(f"Mean ± standard deviation over {len(spreads['seeds'])} seeds (one run per β and seed, "
                   f"{res['epochs']} epoch, 20-D); the bars on the curve span one standard deviation each way.")
        command(spreads["command"])
    else:
        missing("usecase_seeds", SEEDS_COMMAND)
    command("python -m vae rd --data mnist --data-dir DATA_DIR --betas 0.25,0.5,1,2,4,8 --epochs 1 --out runs/rd")

with aug:
    st.subheader("Generated images as extra training data")
    st.markdown("A small classifier trained on k labelled images, with and without class-conditional samples from a "
                "conditional VAE fitted on those same k images (so no extra label leaks in).")
    res = U.result("augment")
    seeds = U.result("augment_seeds")
    headline = U.augment_headline(seeds) if seeds else None
    if headline:     # the figures over seeds, not one draw of the labelled images
        c1, c2, c3 = st.columns(3)
        c1.metric("accuracy without", headline["without"])
        c2.metric("accuracy with generated", headline["with"], delta=headline["gain"])
        c3.metric("labelled images", headline["labels"], help=headline["help"])
    elif res:
        c1, c2, c3 = st.columns(3)
        c1.metric("accuracy without", f"{100 * res['accuracy_without']:.2f} %")
        c2.metric("accuracy with generated", f"{100 * res['accuracy_with']:.2f} %",
                  delta=f"{100 * res['gain']:+.2f} points")
        c3.metric("labelled images", res["labels"])
    if res:
        fig = U.figure("augment_samples.png")
        if fig:
            st.image(fig, caption="Generated samples, one row per class (exported as npz and PNG)")
    else:
        missing("augment", "python -m vae augment --data mnist --labels 100 --export runs/augment")
    command("python -m vae augment --data mnist --data-dir DATA_DIR --labels 100 --per-class 200 --export runs/augment")
    if seeds:
        st.markdown(f"**The few-label regimes over {len(seeds['seeds'])} seeds** (accuracy mean ± standard deviation; "
                    "each seed draws its own labelled images, trains its own conditional VAE and both classifiers). "
                    "Generated images *hurt* wherever a gain is negative: samples of a conditional VAE fitted on the "
                    "same few images add no information about the classes, only their blur.")
        st.dataframe(U.augment_seed_table(seeds), hide_index=True, key=f"{S.UC_TABLE}.augment")
        command(seeds["command"])

with anom:
    st.subheader("Anomaly scores")
    st.markdown("Score = the image's −ELBO: how many nats the model needs for it. A VAE trained **without** one digit "
                "should find that digit surprising; AUROC says how well the score separates it from the rest.")
    res = U.result("anomaly")
    if res:
        c1, c2 = st.columns(2)
        c1.metric(f"AUROC, digit {res['holdout_class']} held out", f"{res['auroc']:.3f}")
        c2.metric("held-out share of the top 16", f"{100 * res['holdout_share_of_top']:.0f} %")
        fig = U.figure("anomaly_per_class.png")
        if fig:
            st.image(fig, caption="Mean −ELBO per test class for the model trained without the held-out digit")
    else:
        missing("anomaly", "python -m vae anomaly --data mnist --holdout-class 7 --out runs/anomaly-7")
    command("python -m vae anomaly --data mnist --data-dir DATA_DIR --holdout-class 7 --epochs 5 --out runs/no7")
    seeds = U.result("anomaly_seeds")
    if seeds:
        st.markdown(f"**Every digit held out in turn, over {len(seeds['seeds'])} seeds** ({seeds['epochs']} epochs "
                    "each; AUROC mean ± standard deviation over the seeds). Likelihood scores (−ELBO, the "
                    "importance-weighted −log p(x)) favour simple images, so a held-out 1 looks *more* typical than "
                    "the digits seen. The latent class score asks instead whether the image's code fits any class "
                    "the model saw: a Gaussian mixture fitted to the training codes, one component per class.")
        st.dataframe(U.anomaly_seed_table(seeds), hide_index=True)
        fig = U.figure("anomaly_auroc_by_digit.png")
        if fig:
            st.image(fig, caption="AUROC per held-out digit, each score; bars are the mean over seeds, whiskers "
                                  "one standard deviation")
        command(seeds.get("command") or "python bench/anomaly_seeds.py --data-dir DATA_DIR --seeds 0,1,2,3,4")

    st.markdown("**The active run's most anomalous test images**")
    active = catalogue.active_run()
    if active is None:
        st.stop()
    entry, run = active
    test, dkey = datasets.noted_test_images(run)
    if test is not None:
        scores = U.anomaly_scores(run, entry.key, test, str(dkey))
        n = st.select_slider("Images shown", [8, 16, 24, 32], value=16, key=S.UC_TOP_N)
        top = np.argsort(-scores, kind="stable")[:n]
        x = images.float_from_uint8(test.x[top].numpy())
        names = catalogue.class_names(run)
        caps = [f"#{i} · {scores[i]:.0f} nats" + (f" · label {catalogue.class_name(names, int(test.y[i]))}"
                                                   if test.y is not None else "") for i in top]
        st.image([images.strip(x[j:j + 1], target=70) for j in range(len(top))], caption=caps, width=90,
                 output_format="PNG")
        st.caption(f"Highest −ELBO first, of {len(scores):,} test images (median {np.median(scores):.0f} nats).")
