"""Train: choose data and a model, Start and Stop, watch it learn."""
import streamlit as st

from ui import data as uidata
from ui import scenarios, train_panel, training, uploads
from ui import state as S
from vae.config import ConfigError, DataConfig
from vae.data import DATASETS, DataError

st.title("Train")
st.caption("Training runs in its own process: you can visit other pages, or close the tab for a minute, "
           "meanwhile. When it ends, or when you press Stop, the run is saved and becomes the active run.")

job = training.current_job()
scenarios.banner(job)
if job is not None and job.running:
    train_panel.live()
elif job is not None:
    train_panel.finished(job)
train_panel.others_panel(exclude=None if job is None else str(job.run_dir))
train_panel.interrupted_panel(exclude=None if job is None else str(job.run_dir))

settings_box = st.container() if job is None else st.expander("Settings for a new run", expanded=not job.running,
                                                                icon=":material/settings:")
with settings_box:
    available = {d["name"]: d["available"] for d in uidata.builtins()}
    names = list(DATASETS) + [S.UPLOAD_CHOICE]

    def data_label(name: str) -> str:
        if name == S.UPLOAD_CHOICE:
            return "Upload my own (.npz or .zip of images)"
        return name + ("" if available.get(name) else " (needs a download)")

    st.subheader("1 · Data", divider="gray")
    c1, c2 = st.columns([2, 3])
    choice = c1.selectbox("Data set", names, format_func=data_label, key=S.TRAIN_DATA,
                          help="mnist5k (5,000 real MNIST digits) works offline.")
    data_name, image_size = None, None
    if choice == S.UPLOAD_CHOICE:
        with c2:
            size_opt = st.selectbox("Resize images to", ["as they are", 16, 28, 32, 48, 64], key=S.TRAIN_IMAGE_SIZE,
                                    help="Images must be square, 8 to 64 pixels, unless resized here.")
            image_size = None if size_opt == "as they are" else int(size_opt)
            up = st.file_uploader("An .npz with an array x [N,H,W] or [N,H,W,C] (optional labels y), or a .zip of "
                                  "PNG/JPEG images (one folder per class, or flat)",
                                  key=S.TRAIN_UPLOAD)
            checked = st.session_state.setdefault(S.TRAIN_UPLOADED, {})
            if up is not None:
                tag = f"{up.file_id}:{image_size}"
                if tag not in checked:
                    try:
                        path, split = uploads.save_dataset_upload(up.name, up.getvalue(), image_size=image_size)
                        checked[tag] = {"ok": True, "path": path,
                                        "message": f"{up.name}: {train_panel.data_summary(split)}"}
                    except uploads.UploadError as e:
                        checked[tag] = {"ok": False, "path": None, "message": f"Upload refused: {e}"}
                res = checked[tag]
                if res["ok"]:
                    st.session_state[S.TRAIN_UPLOAD_PATH] = res["path"]
                    st.success(res["message"], icon=":material/check:")
                else:
                    st.session_state.pop(S.TRAIN_UPLOAD_PATH, None)
                    st.error(res["message"], icon=":material/error:")
            data_name = st.session_state.get(S.TRAIN_UPLOAD_PATH)
    else:
        data_name = choice
        c2.caption(DATASETS[choice])

    st.subheader("2 · Model", divider="gray")
    c1, c2, c3, c4 = st.columns(4)
    arch = c1.segmented_control("Architecture", ["MLP", "Conv"], key=S.TRAIN_ARCH, default="MLP",
                                help="MLP: fast on a CPU. Conv: sharper images, slower.") or "MLP"
    latent_dim = c2.number_input("Latent dimensions", 1, 128, 2, key=S.TRAIN_LATENT,
                                 help="2 gives a latent map you can see directly; 16 reconstructs better.")
    likelihood = c3.selectbox("Likelihood", ["bernoulli", "gaussian"], key=S.TRAIN_LIKELIHOOD,
                              help="Bernoulli suits pixels near 0 or 1 (digits); Gaussian suits photos.")
    conditional = c4.checkbox("Conditional (CVAE)", key=S.TRAIN_CONDITIONAL,
                              help="Encoder and decoder also see the label, so Generate can draw each class.")
    sigma = 0.1
    if likelihood == "gaussian":
        sigma = st.number_input("Gaussian σ (pixel scale 0..1)", 0.001, 10.0, 0.1, 0.05, format="%.3f",
                                key=S.TRAIN_SIGMA, help="The likelihood's fixed standard deviation per pixel: "
                                                        "large σ makes reconstruction cheap, and images blurry.")
    c1, c2, c3, c4 = st.columns(4)
    beta = c1.number_input("β (KL weight)", 0.0, 100.0, 1.0, 0.1, key=S.TRAIN_BETA,
                           help="1 is the ELBO; above 1 trades sharpness for a smoother latent space.")
    warmup = c2.number_input("KL warm-up, epochs", 0.0, 1000.0, 0.0, 1.0, key=S.TRAIN_WARMUP,
                             help="β ramps up from 0 over this many epochs.")
    free_bits = c3.number_input("Free bits, nats per dim", 0.0, 10.0, 0.0, 0.1, key=S.TRAIN_FREE_BITS,
                                help="KL below this per dimension is not penalised, against unused dimensions.")
    with c4.popover("Layers", icon=":material/layers:"):
        hidden = st.text_input("Hidden sizes", key=S.TRAIN_HIDDEN,
                               placeholder=f"{','.join(map(str, train_panel.MLP_HIDDEN))} (MLP) · "
                                           f"{','.join(map(str, train_panel.CONV_HIDDEN))} (Conv)",
                               help="MLP: widths of the encoder's hidden layers. Conv: channels per stride-2 layer.")
        decoder_hidden = st.text_input("Decoder sizes (MLP)", key=S.TRAIN_DECODER,
                                       placeholder=f"{','.join(map(str, train_panel.MLP_DECODER))} · mirror",
                                       help="Widths from the latent outward. Empty: the default decoder with the "
                                            "default hidden sizes, else the mirror of the hidden sizes.")
        activation = st.selectbox("Activation", ["relu", "elu", "silu", "leaky_relu"], key=S.TRAIN_ACTIVATION)

    st.subheader("3 · Training", divider="gray")
    c1, c2, c3, c4 = st.columns(4)
    epochs = c1.number_input("Epochs", 1, 1000, 10, key=S.TRAIN_EPOCHS)
    batch_sizes = [32, 64, 128, 256, 512]
    batch_size = c2.selectbox("Batch size", batch_sizes, index=batch_sizes.index(train_panel.DEFAULT_TRAIN.batch_size),
                              key=S.TRAIN_BATCH)
    lr = c3.number_input("Learning rate", 1e-5, 1.0, train_panel.DEFAULT_TRAIN.lr, 1e-4, format="%.4f",
                         key=S.TRAIN_LR,
                         help=f"Adam's peak rate: it ramps up over the first "
                              f"{train_panel.DEFAULT_TRAIN.lr_warmup:.0%} of the run, then decays (cosine) to "
                              f"{train_panel.DEFAULT_TRAIN.lr_min_factor:.0%} of the peak.")
    seed = c4.number_input("Seed", 0, 2**31 - 1, 0, key=S.TRAIN_SEED)
    with st.expander("Advanced", icon=":material/tune:"):
        c1, c2, c3, c4 = st.columns(4)
        budget = c1.number_input("Time budget, s (0 = off)", 0, 7 * 86400, 0, 5, key=S.TRAIN_BUDGET,
                                 help="Stop on the clock even if epochs remain; the learning-rate schedule follows "
                                      "the clock. Handy in front of a class.")
        max_train = c2.number_input("Max training images (0 = all)", 0, 10_000_000, 0, 500, key=S.TRAIN_MAX_TRAIN)
        max_test = c3.number_input("Max test images (0 = all)", 0, 10_000_000, 0, 100, key=S.TRAIN_MAX_TEST)
        binarize = c4.checkbox("Binarise pixels each batch", key=S.TRAIN_BINARIZE,
                               help="Dynamic binarisation: the classic MNIST recipe; bernoulli likelihood only.")

    running = job is not None and job.running
    b1, b2, _ = st.columns([1, 2, 3])
    start = b1.button("Start", type="primary", key=S.TRAIN_START, disabled=running or not data_name,
                      icon=":material/play_arrow:", width="stretch")
    b2.button(f"Quick demo settings ({train_panel.QUICK_SECONDS} s)", key=S.TRAIN_QUICK,
              on_click=train_panel.apply_quick_settings,
              help=f"MNIST digits, a 2-D latent, the default model, {train_panel.QUICK_SECONDS} seconds of training.",
              disabled=running)
    if running:
        st.caption("A run is in progress; Start is available again when it ends.")
    elif not data_name:
        st.caption("Upload a data set that passes the checks to start.")

    start = (scenarios.take_autostart() and not running) or start
    if start and data_name:
        dcfg = DataConfig(name=data_name, image_size=image_size, max_train=int(max_train) or None,
                          max_test=int(max_test) or None)
        try:
            with st.spinner("Loading the data set…"):
                split = uidata.load(uidata.DataKey.of(dcfg), download=data_name in DATASETS)
            values = dict(arch=arch.lower(), latent_dim=latent_dim, hidden=hidden, decoder_hidden=decoder_hidden,
                          activation=activation,
                          likelihood=likelihood, sigma=sigma, conditional=conditional, beta=beta, warmup=warmup,
                          free_bits=free_bits, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                          binarize=binarize, time_budget=budget)
            config = train_panel.build_config(values, split, dcfg)
            training.start(config, split)
        except (DataError, ConfigError, ValueError, RuntimeError) as e:
            st.session_state[S.TRAIN_ERROR] = " ".join(str(e).split())
        else:
            st.session_state.pop(S.TRAIN_ERROR, None)
        st.rerun()
    if st.session_state.get(S.TRAIN_ERROR):
        st.error(f"Cannot start: {st.session_state[S.TRAIN_ERROR]}", icon=":material/error:")

if job is None:
    train_panel.preview()
