"""The Train page's glue: settings -> RunConfig, and the training dashboard drawn from a
job snapshot (progress with ETA, live curves, KL per dimension, reconstructions, and for a
2-D latent the test set's latent map, redrawn every epoch)."""
from __future__ import annotations

import math
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from vae.config import DataConfig, ModelConfig, RunConfig, TrainConfig, default_hidden, parse_widths
from vae.data import DataSplit
from vae.record import EpochRecord
from vae.util import os_reason

from . import charts, images, owners, queue, quotas, settings, state, train_form

MLP_HIDDEN, CONV_HIDDEN = default_hidden("mlp"), default_hidden("conv")
MLP_DECODER = ModelConfig().decoder_hidden
DEFAULT_TRAIN = TrainConfig()
QUICK_SECONDS = 20      # the quick demo's and every guided experiment's time budget (Home says it too)


def quick_settings() -> dict:
    """The quick demo: every field at the core's default, then MNIST digits, the default MLP, a 2-D latent and
    30 epochs within ``QUICK_SECONDS`` (the guided experiments change a few of these)."""
    out = {f.key: train_form.default(f) for f in train_form.FIELDS}
    out.update({state.TRAIN_DATA: "mnist5k", state.TRAIN_ARCH: "MLP", state.TRAIN_LATENT: 2, state.TRAIN_EPOCHS: 30,
                state.TRAIN_OBJECTIVE: DEFAULT_TRAIN.objective,
                state.TRAIN_BUDGET: QUICK_SECONDS, state.TRAIN_HIDDEN: "", state.TRAIN_DECODER: "",
                state.TRAIN_BATCH: DEFAULT_TRAIN.batch_size, state.TRAIN_CONDITIONAL: False,
                state.TRAIN_LIKELIHOOD: ModelConfig().likelihood, state.TRAIN_ACTIVATION: ModelConfig().activation,
                state.TRAIN_BINARIZE: False})
    return out


def apply_quick_settings() -> None:
    """Button callback: the quick demo's settings into the form."""
    train_form.set_values(quick_settings())


def parse_hidden(text: str) -> tuple[int, ...] | None:
    """The hidden sizes typed in the Layers popover; empty = the core's default for the architecture."""
    return parse_widths(text) if (text or "").strip() else None


def parse_decoder(text: str) -> tuple[int, ...] | None:
    """The MLP decoder's widths: empty = the core's rule (the recipe's decoder with the default
    hidden sizes, else the mirror), ``mirror`` = the reverse of the hidden sizes."""
    return parse_widths(text, mirror=True) if (text or "").strip() else None


def build_config(v: dict[str, Any], data: DataSplit, data_cfg: DataConfig) -> RunConfig:
    """The form's values (named as the dataclasses' fields; a number the page did not show keeps the core's
    default) -> a validated RunConfig (raises ConfigError / ValueError with one line)."""
    arch = v["arch"]
    conditional = bool(v["conditional"])
    if data_cfg.name in train_form.NOT_IN_APP:
        raise ValueError(train_form.NOT_IN_APP[data_cfg.name])
    if conditional and not data.has_labels:
        raise ValueError("a conditional model needs labelled data; this data set has no labels")
    dm = ModelConfig()
    model = ModelConfig(arch=arch, channels=data.channels, image_size=data.image_size,
                        latent_dim=int(v.get("latent_dim", dm.latent_dim)), hidden=parse_hidden(v["hidden"]),
                        decoder_hidden=parse_decoder(v.get("decoder_hidden", "")) if arch == "mlp" else None,
                        activation=v["activation"], likelihood=v["likelihood"],
                        gaussian_sigma=float(v.get("gaussian_sigma", dm.gaussian_sigma)), conditional=conditional,
                        num_classes=data.num_classes if conditional else 0,
                        latent_layers=int(v.get("latent_layers", dm.latent_layers)))
    t = DEFAULT_TRAIN
    batch = int(v.get("batch_size", t.batch_size))
    steps_per_epoch = math.ceil(len(data.train) / max(1, batch))
    train = TrainConfig(epochs=int(v.get("epochs", t.epochs)), batch_size=batch, lr=float(v.get("lr", t.lr)),
                        beta=float(v.get("beta", t.beta)), warmup_epochs=float(v.get("warmup_epochs", t.warmup_epochs)),
                        free_bits=float(v.get("free_bits", t.free_bits)), seed=int(v.get("seed", t.seed)),
                        binarize=bool(v.get("binarize", t.binarize)), threads=settings.torch_threads(),
                        time_budget=float(v.get("time_budget", t.time_budget)),
                        objective=v.get("objective", t.objective), tc_weight=float(v.get("tc_weight", t.tc_weight)),
                        device="cpu", recon_every=max(5, min(50, steps_per_epoch // 3 or 1)))
    return RunConfig(model=model, train=train, data=data_cfg)


def data_summary(split: DataSplit) -> str:
    c, s = split.channels, split.image_size
    bits = [f"{len(split.train):,} training and {len(split.test):,} test images", f"{c}×{s}×{s} "
            f"({'grey' if c == 1 else 'colour'})"]
    bits.append(f"{split.num_classes} classes" if split.has_labels else "no labels")
    return " · ".join(bits)


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"{seconds} s"


def progress_text(snap: dict) -> tuple[float, str]:
    total = snap["total_steps"]
    if snap["status"] == "queued":
        place = snap.get("queue_position")
        return 0.0, (f"Waiting in the queue: place {place}. At most {settings.max_jobs()} run(s) train at once on "
                     "this server; yours starts when one ends." if place else "Queued…")
    if snap["status"] == "starting" or not total:
        return 0.0, "Starting the training process…"
    if snap["status"] == "done":    # ended as planned: by its epochs, or by its time budget before them
        budget = snap["config"].train.time_budget
        how = (f"the {budget:g} s time budget ended it after epoch {snap['epoch']} of {snap['epochs']}"
               if "budget" in (snap["message"] or "") else f"all {snap['epochs']} epochs")
        return 1.0, f"Done: {how} · {snap['step']:,} steps · took {_duration(snap['elapsed'])}"
    frac = min(1.0, snap["step"] / total)
    eta = snap["eta"]
    budget = snap["config"].train.time_budget
    if budget > 0:  # the run ends on the clock or after its epochs, whichever comes first
        frac = max(frac, min(1.0, snap["elapsed"] / budget))
        eta = min(eta, max(0.0, budget - snap["elapsed"])) if math.isfinite(eta) else max(0.0, budget - snap["elapsed"])
    if snap["status"] == "saving":
        return frac, "Saving the run…"
    clock = f" of at most {snap['epochs']} · {snap['elapsed']:.0f} of {budget:g} s" if budget > 0 else \
        f" of {snap['epochs']} · step {snap['step']:,}/{total:,}"     # a budget: the clock ends it, not the epochs
    text = f"Epoch {max(1, snap['epoch'])}{clock} · {snap['samples_per_sec']:,.0f} images/s"
    if snap.get("world_size", 1) > 1:
        parts = (snap.get("launcher") or "torchrun").split()
        text += f" · {snap['world_size']} processes ({' '.join([Path(parts[0]).name, *parts[1:]])})"
    if snap["status"] == "training":
        text += f" · about {_duration(eta)} left"
    else:
        text += f" · took {_duration(snap['elapsed'])}"
    return frac, text


def dashboard(snap: dict) -> None:
    """Everything a training run shows while it runs (and after)."""
    frac, text = progress_text(snap)
    st.progress(frac, text=text)
    cfg: RunConfig = snap["config"]
    d = cfg.model.latent_dim
    epochs = snap["epoch_records"]
    spe = snap["total_steps"] / max(1, snap["epochs"]) if snap["total_steps"] else None
    # drawn from the start (empty until the first batch), so the chart library loads meanwhile
    key = str(snap.get("run_dir"))
    last = snap["steps"][-1]["step"] if snap["steps"] else 0
    st.plotly_chart(charts.cached(("curves", key, last, len(snap["steps"]), len(epochs)),
                                 lambda: charts.curves(snap["steps"], epochs, spe)),
                    width="stretch", config=charts.NO_MODEBAR)
    terms = charts.objective_terms(snap["steps"], epochs)
    if terms:       # beta-TCVAE's KL split into MI, TC and dimension-wise KL; FactorVAE's TC and discriminator
        name = train_form.OBJECTIVE_NAMES.get(cfg.train.objective, cfg.train.objective)
        st.markdown(f"**The {name} objective's own terms**, each step and each epoch's mean"
                    if cfg.model.latent_layers == 1 else "**The KL of each stochastic layer**, each step and each "
                    "epoch's mean: a layer whose KL falls to 0 has collapsed")
        st.plotly_chart(charts.cached(("terms", key, last, len(snap["steps"]), len(epochs), tuple(terms)),
                                      lambda: charts.terms(snap["steps"], epochs, spe, terms)),
                        width="stretch", config=charts.NO_MODEBAR)
    latest = epochs[-1] if epochs else None
    two_d = d == 2 and snap["latent"] is not None
    left, right = st.columns(2, gap="large")
    with left:
        if two_d:
            lat = snap["latent"]
            mu = np.asarray(lat["mu"])
            y = None if lat["y"] is None else np.asarray(lat["y"])
            st.markdown(f"**Test images in the latent space** after epoch {latest.epoch}")
            st.plotly_chart(charts.cached(("train-map", key, latest.epoch),
                                         lambda: charts.latent_scatter(mu, y, snap["class_names"], height=430)),
                            width="stretch", config=charts.NO_MODEBAR)
        elif latest is not None:
            _kl(latest, key)
        else:
            st.caption("KL per latent dimension appears after the first epoch.")
    with right:
        if two_d and latest is not None:
            _kl(latest, key)
        if snap["recon"] is not None:
            inputs, recons = snap["recon"]
            pair = images.png(("train-recon", key, zlib.crc32(recons.tobytes()), zlib.crc32(inputs.tobytes())),
                              lambda: images.recon_pair(inputs, recons, target=56))
            st.image(pair,
                     caption="Top: test inputs. Bottom: their reconstructions, right now.", width="stretch",
                     output_format="PNG")
        if latest is not None and latest.test:
            t = latest.test
            c1, c2, c3 = st.columns(3)
            nll, bpd = t.get("neg_elbo"), t.get("bits_per_dim")       # a non-finite figure is not in the record
            c1.metric("Test −ELBO", "—" if nll is None else f"{nll:.1f}", help="nats per image after the last epoch")
            c2.metric("Bits per pixel", "—" if bpd is None else f"{bpd:.3f}")
            c3.metric("Active dims", f"{'?' if latest.active_units is None else latest.active_units}/{d}")


def preview() -> None:
    """Before the first run: where the live curves will appear (this also loads the chart library
    in the browser before Start is pressed, so the first update after Start is quick)."""
    st.markdown("**Live curves** fill in here from the first batch after you press Start.")
    st.plotly_chart(charts.curves([], [], None), width="stretch", config=charts.NO_MODEBAR)


def _kl(record: EpochRecord, key: str = "") -> None:
    kl = record.kl_per_dim or []
    st.markdown(f"**KL per latent dimension** after epoch {record.epoch} (grey: unused)")
    st.plotly_chart(charts.cached(("kl", key, record.epoch, tuple(kl)), lambda: charts.kl_bars(kl)), width="stretch",
                    config=charts.NO_MODEBAR)


def stop_job() -> None:
    job = queue.current_job()
    if job is not None:
        try:
            job.stop()
        except OSError as e:          # not theirs (owners.NotYours), or the folder went away
            st.session_state[state.TRAIN_ERROR] = str(e)


def live() -> None:
    """This person's running job: the Stop button, then the dashboard that polls the job.

    Stop is drawn by the page, not by the polling fragment, so it is not redrawn on every poll: inside the
    fragment, on a loaded machine, it once stayed unclickable for a minute in the browser test."""
    job = queue.current_job()
    if job is None:
        return
    stopping = job.stopping
    st.button("Stopping…" if stopping else "Stop", key=state.TRAIN_STOP, on_click=stop_job, disabled=stopping,
              icon=":material/stop_circle:", help="Stops after the current batch and saves what was learned "
                                                  "(a queued run just leaves the queue).")
    _live_board()


@st.fragment(run_every=settings.poll_seconds())
def _live_board() -> None:
    """Polls this session's job: draws its state, sends the heartbeat, and when the job ends
    reruns the whole app (the sidebar then makes the saved run active)."""
    job = queue.current_job()
    if job is None:
        return
    job.heartbeat()
    if not job.running:
        st.rerun(scope="app")
    snap = job.snapshot()
    if snap["config"] is not None:
        dashboard(snap)


def finished(job) -> None:
    snap = job.snapshot()
    name = snap["run_path"].name if snap["run_path"] is not None else None
    if snap["status"] == "done":
        why = f" ({snap['message']})" if "budget" in (snap["message"] or "") else ""
        st.success(f"Training finished{why}. Saved as **{name}**, now the active run.", icon=":material/check_circle:")
    elif snap["status"] == "stopped":
        msg = snap["message"] or "stopped"
        st.warning(f"{msg[0].upper()}{msg[1:]}." + (f" What was learned is saved as **{name}**, now the active run."
                                                    if name else ""), icon=":material/stop_circle:")
    elif snap["status"] == "interrupted":
        st.warning(_sentence(snap["message"] or "the training process stopped before the run ended"),
                   icon=":material/pause_circle:")
        st.button("Resume", key=state.TRAIN_RESUME, icon=":material/play_arrow:", on_click=resume_job,
                  args=(str(snap["run_dir"]),), help="Continues from the last completed epoch.")
    else:
        st.error(snap["message"] or "training failed", icon=":material/error:")
    if snap["steps"] and snap["config"] is not None:
        dashboard(snap)


def _sentence(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def not_written(e: OSError) -> str:
    """A failed write (a full disk, a read-only folder) in one line, without the server's path."""
    return f"the server could not write the run ({os_reason(e)}); nothing was started"


def resume_job(run_dir: str) -> None:
    """Resume's callback; a refusal (another tab resumed it first, a quota) is one line above the lists."""
    try:
        queue.resume(run_dir)
    except (RuntimeError, quotas.QuotaError, owners.NotYours) as e:
        st.session_state[state.TRAIN_NOTICE] = ("error", f"Cannot resume {Path(run_dir).name}: {e}")
    except OSError as e:      # a failed write: one line without the server's path
        st.session_state[state.TRAIN_NOTICE] = ("error", f"Cannot resume {Path(run_dir).name}: {not_written(e)}")

