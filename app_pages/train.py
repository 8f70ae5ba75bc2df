"""Train: choose data and a model, Start and Stop, watch it learn."""
from pathlib import Path

import streamlit as st

from ui import datasets, identity, job_lists, queue, quotas, scenarios, train_form, train_panel, uploads
from ui import state as S
from vae.config import ConfigError, DataConfig
from vae.data import DATASETS, DataError

st.title("Train")
st.caption("Training runs in its own process: you can visit other pages, or close the tab for a minute, "
           "meanwhile. When it ends, or when you press Stop, the run is saved and becomes the active run.")

train_form.init_state()
job = queue.current_job()
scenarios.banner(job)
if job is not None and job.running:
    train_panel.live()
elif job is not None:
    train_panel.finished(job)
job_lists.lists(job)

settings_box = st.container() if job is None else st.expander("Settings for a new run", expanded=not job.running,
                                                                icon=":material/settings:")
with settings_box:
    available = {d["name"]: d["available"] for d in datasets.builtins()}
    names = [n for n in DATASETS if n not in train_form.NOT_IN_APP] + [S.UPLOAD_CHOICE]

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
                        quotas.before_upload(identity.person(), up.size)
                        path, split = uploads.save_dataset_upload(up.name, up.getvalue(), image_size=image_size)
                        quotas.keep_upload(Path(path).parent, identity.person())
                        checked[tag] = {"ok": True, "path": path,
                                        "message": f"{up.name}: {train_panel.data_summary(split)}"}
                    except (uploads.UploadError, quotas.QuotaError) as e:
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
    st.html(train_form.HIDE_ENTER_HINT)
    c1, c2, c3, c4 = st.columns(4)
    arch = c1.segmented_control("Architecture", [a.upper() if a == "mlp" else a.capitalize() for a in train_form.ARCHS],
                                key=S.TRAIN_ARCH, default="MLP",
                                help="MLP: fast on a CPU. Conv: sharper images, slower.") or "MLP"
    train_form.number(c2, S.TRAIN_LATENT)
    likelihood = c3.selectbox("Likelihood", train_form.LIKELIHOODS, key=S.TRAIN_LIKELIHOOD,
                              help="Bernoulli suits pixels near 0 or 1 (digits); Gaussian suits photos.")
    conditional = c4.checkbox("Conditional (CVAE)", key=S.TRAIN_CONDITIONAL,
                              help="Encoder and decoder also see the label, so Generate can draw each class.")
    if likelihood == "gaussian":
        train_form.number(st.columns(4)[0], S.TRAIN_SIGMA)
    c1, c2, c3, _ = st.columns(4)
    layers = c3.segmented_control("Stochastic layers", [1, 2], default=1, key=S.TRAIN_LAYERS,
                                  help="2 adds a lower stochastic layer z₁ under z (Tomczak & Welling 2018's "
                                       "hierarchical VAE): a better likelihood; the map and the sliders show z, "
                                       "Inside a VAE both. MLP, unconditional, ELBO or IWAE only.") or 1
    objective = c1.selectbox("Objective", train_form.OBJECTIVES, key=S.TRAIN_OBJECTIVE,
                             format_func=train_form.OBJECTIVE_NAMES.get,
                             help=train_form.SETTINGS["train"]["objective"].help)
    if objective in train_form.TC_OBJECTIVES:
        train_form.number(c2, S.TRAIN_TC_WEIGHT)
    c1, c2, c3, c4 = st.columns(4)
    for col, key in zip((c1, c2, c3), (S.TRAIN_BETA, S.TRAIN_WARMUP, S.TRAIN_FREE_BITS)):
        train_form.number(col, key)
    with c4.popover("Layers", icon=":material/layers:"):
        hidden = st.text_input("Hidden sizes", key=S.TRAIN_HIDDEN,
                               placeholder=f"{','.join(map(str, train_panel.MLP_HIDDEN))} (MLP) · "
                                           f"{','.join(map(str, train_panel.CONV_HIDDEN))} (Conv)",
                               help="MLP: widths of the encoder's hidden layers. Conv: channels per stride-2 layer.")
        decoder_hidden = st.text_input("Decoder sizes (MLP)", key=S.TRAIN_DECODER,
                                       placeholder=f"{','.join(map(str, train_panel.MLP_DECODER))} · mirror",
                                       help="Widths from the latent outward. Empty: the default decoder with the "
                                            "default hidden sizes, else the mirror of the hidden sizes.")
        activation = st.selectbox("Activation", train_form.ACTIVATIONS, key=S.TRAIN_ACTIVATION)

    st.subheader("3 · Training", divider="gray")
    c1, c2, c3, c4 = st.columns(4)
    train_form.number(c1, S.TRAIN_EPOCHS)
    batch_size = c2.selectbox("Batch size", train_form.BATCH_SIZES, key=S.TRAIN_BATCH)
    c2.caption(f"{train_panel.DEFAULT_TRAIN.batch_size} is the measured default")
    train_form.number(c3, S.TRAIN_LR)
    c3.caption(f"Adam's peak rate: it ramps up over the first {train_panel.DEFAULT_TRAIN.lr_warmup:.0%} of the run, "
               f"then decays (cosine) to {train_panel.DEFAULT_TRAIN.lr_min_factor:.0%} of the peak.")
    train_form.number(c4, S.TRAIN_SEED)
    with st.expander("Advanced", icon=":material/tune:"):
        c1, c2, c3, c4 = st.columns(4)
        for col, key in zip((c1, c2, c3), (S.TRAIN_BUDGET, S.TRAIN_MAX_TRAIN, S.TRAIN_MAX_TEST)):
            train_form.number(col, key)
        binarize = c4.checkbox("Binarise pixels each batch", key=S.TRAIN_BINARIZE,
                               help="Dynamic binarisation: the classic MNIST recipe; bernoulli likelihood only.")

    shown = [f.key for f in train_form.FIELDS if (f.key != S.TRAIN_SIGMA or likelihood == "gaussian")
             and (f.key != S.TRAIN_TC_WEIGHT or objective in train_form.TC_OBJECTIVES)]
    numbers, wrong = train_form.values(shown)
    wrong = (wrong or train_form.objective_errors(objective, numbers)
             or train_form.layer_errors(layers, arch.lower(), conditional, objective))
    running = job is not None and job.running
    b1, b2, _ = st.columns([1, 2, 3])
    start = b1.button("Start", type="primary", key=S.TRAIN_START, disabled=running or not data_name or bool(wrong),
                      icon=":material/play_arrow:", width="stretch")
    b2.button(f"Quick demo settings ({train_panel.QUICK_SECONDS} s)", key=S.TRAIN_QUICK,
              on_click=train_panel.apply_quick_settings,
              help=f"MNIST digits, a 2-D latent, the default model, {train_panel.QUICK_SECONDS} seconds of training.",
              disabled=running)
    if wrong:
        st.error("Cannot start until every field is right: " + " · ".join(wrong), icon=":material/error:")
    elif running:
        st.caption("A run is in progress; Start is available again when it ends.")
    elif not data_name:
        st.caption("Upload a data set that passes the checks to start.")

    auto = scenarios.take_autostart() and not running
    by_hand, start = start and not auto, auto or start
    if start and wrong:   # pressed in the same moment a field changed: nothing starts, the line above says why
        st.session_state.pop(S.TRAIN_ERROR, None)
    elif start and data_name:
        dcfg = DataConfig(name=data_name, image_size=image_size, max_train=numbers["max_train"] or None,
                          max_test=numbers["max_test"] or None)
        try:
            with st.spinner("Loading the data set…"):
                split = datasets.load(datasets.DataKey.of(dcfg), download=data_name in DATASETS)
            values = dict(numbers, arch=arch.lower(), hidden=hidden, decoder_hidden=decoder_hidden,
                          activation=activation, likelihood=likelihood, conditional=conditional,
                          batch_size=batch_size, binarize=binarize, objective=objective, latent_layers=layers)
            config = train_panel.build_config(values, split, dcfg)
            queue.start(config, split)
        except (DataError, ConfigError, ValueError, RuntimeError) as e:
            st.session_state[S.TRAIN_ERROR] = " ".join(str(e).split())
        except OSError as e:      # a full disk: the message, never the server's path
            st.session_state[S.TRAIN_ERROR] = train_panel.not_written(e)
        else:
            st.session_state.pop(S.TRAIN_ERROR, None)
            if by_hand:            # one's own run: a guided experiment's banner goes (unless it asked for this Start)
                scenarios.on_manual_start()
        st.rerun()
    if st.session_state.get(S.TRAIN_ERROR):
        st.error(f"Cannot start: {st.session_state[S.TRAIN_ERROR]}", icon=":material/error:")

if job is None:
    train_panel.preview()
