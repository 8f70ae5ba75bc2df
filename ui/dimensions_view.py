"""The Dimensions page's logic: what each latent dimension of a run carries, one row per dimension ordered by KL.

On data with known factors (``shapes``, ``shapes32``, ``colour-shapes``: ``vae.data.factors``) a dimension is named
by the factor it carries most (``vae.disentangle.dimension_report``: "x position, MI 0.81", the mutual information
as a share of the factor's entropy); elsewhere by its mutual information with the class labels
(``vae.disentangle.label_report``); a dimension whose code barely varies is called inactive. The codes are the
posterior means of at most ``MAX_POINTS`` of the run's own test images, computed once per run for every session
(``st.cache_data`` keyed by the run's key), so the page is ready in well under a second on a 10-D run.

The traversal strips are drawn by ``ui.strips`` (decoded in the browser from the Sliders' decoder spec, or on the
server where the browser cannot), each dimension from -``SPAN`` to +``SPAN`` in ``STEPS`` steps with the others at
0: the defaults of ``vae.latent.traverse``, which the browser test compares the strips with.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from vae import disentangle, latent
from vae.data import DataError, load_dataset
from vae.data.factors import FACTOR_SETS
from vae.evaluate import UNUSED_KL_NATS
from vae.losses import kl_per_dim as gaussian_kl_per_dim
from vae.runs import Run

from . import catalogue, charts, datasets
from . import state as S

MAX_POINTS = 2000        # test images encoded per run: bounds the page's first computation (and the MI's bias)
SPAN, STEPS = 3.0, 9     # vae.latent.traverse's defaults: z_d from -3 to 3, the other dimensions at 0
MAX_ROWS = 32            # strips drawn per run (the most informative first); the heat map has every dimension
MIXED = 0.5              # a second factor with at least this share of the first's MI: the dimension mixes them
NOTHING = 0.05           # top MI (share of the factor's entropy) below which a dimension carries no factor


@dataclass(frozen=True)
class Analysis:
    """What the page shows of one run; plain data, so ``st.cache_data`` can keep it for every session."""

    kind: str                          # "factors" | "labels" | "kl" (neither factors nor labels)
    columns: list[str]                 # the heat map's columns: factor names, or ["class"]
    order: list[int]                   # dimensions, largest KL first
    kl: list[float]                    # [D] nats
    active: list[bool]                 # [D] the code varies across images (variance > 0.01)
    meaning: list[str]                 # [D] "x position, MI 0.81", "inactive ...", ...
    mi: list[list[float]] = field(default_factory=list)        # [D][F] nats
    mi_share: list[list[float]] = field(default_factory=list)  # [D][F] MI / H(factor)
    mig: float | None = None
    n: int = 0                         # test images encoded
    data: str = ""
    note: str = ""                     # one line when the data could not be read


def is_factor_data(run: Run) -> bool:
    return run.config.data.name in FACTOR_SETS


def _factor_codes(run: Run, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Posterior means and log-variances of the first ``n`` of the run's own test images, and their factors:
    only those images are rendered (``max_train=1``), never the whole generated set."""
    d = run.config.data
    cap = min(n, d.max_test or n)
    split = load_dataset(d.name, image_size=d.image_size, color=d.color, test_fraction=d.test_fraction,
                         seed=d.split_seed, max_train=1, max_test=cap)
    enc = latent.encode(run.model, split.test)
    return enc["mu"], enc["logvar"], split.test.factors.numpy(), list(split.factor_names)


def _kl(run: Run, mu: np.ndarray, logvar: np.ndarray) -> list[float]:
    """The run's recorded test KL per dimension, else the KL of these codes."""
    kl = catalogue.kl_per_dim(run)
    if kl is not None:
        return [float(v) for v in kl]
    if len(mu) == 0:
        return [0.0] * run.config.model.latent_dim
    import torch
    return gaussian_kl_per_dim(torch.from_numpy(mu), torch.from_numpy(logvar)).mean(0).tolist()


INACTIVE = "inactive"      # every sentence for an unused dimension starts so


def inactive(kl: float) -> str:
    """Why a dimension is not in use, in words."""
    return f"{INACTIVE}: KL under {UNUSED_KL_NATS:g} nats" if kl < UNUSED_KL_NATS else \
        f"{INACTIVE}: its code hardly varies across images"


def in_use(report_rows: list[dict], kl: list[float]) -> list[bool]:
    """A dimension is in use when the core calls it active (its code varies across images: variance > 0.01) and it
    carries at least ``UNUSED_KL_NATS`` of KL, the line the Sliders and the KL bars draw too."""
    return [bool(r["active"]) and kl[j] >= UNUSED_KL_NATS for j, r in enumerate(report_rows)]


def factor_meaning(mi_share: dict[str, float], active: bool, kl: float) -> str:
    """What one dimension carries, in words: "x position, MI 0.81", "mixes x position (MI 0.41) and y position
    (0.38)", "no factor (MI 0.03 at most)" or "inactive: ..."."""
    if not active:
        return inactive(kl)
    ranked = sorted(mi_share.items(), key=lambda kv: -kv[1])
    (a, va), (b, vb) = ranked[0], ranked[1] if len(ranked) > 1 else ("", 0.0)
    if va < NOTHING:
        return f"no factor (MI {va:.2f} at most)"
    if vb >= MIXED * va and vb >= NOTHING:
        return f"mixes {a} (MI {va:.2f}) and {b} ({vb:.2f})"
    return f"{a}, MI {va:.2f}"


def _from_factors(run: Run, n: int) -> Analysis:
    mu, logvar, factors, names = _factor_codes(run, n)
    kl = _kl(run, mu, logvar)
    rows = disentangle.dimension_report(mu, factors, names, kl_per_dim=kl)
    share = [[r["mi_normalized"][f] for f in names] for r in rows]
    active = in_use(rows, kl)
    return Analysis(kind="factors", columns=names, order=_order(kl), kl=kl, active=active,
                    meaning=[factor_meaning(r["mi_normalized"], a, k) for r, a, k in zip(rows, active, kl)],
                    mi=[[r["mi"][f] for f in names] for r in rows], mi_share=share,
                    mig=disentangle.mig(mu, factors)["mig"], n=len(mu), data=run.config.data.name)


def _from_labels(run: Run, n: int, run_key: str) -> Analysis:
    d = run.config.model.latent_dim
    test, dkey, note = datasets.for_run(run)
    if test is None:
        kl = catalogue.kl_per_dim(run) or [0.0] * d
        return Analysis(kind="kl", columns=[], order=_order(kl), kl=kl, active=[v >= UNUSED_KL_NATS for v in kl],
                        meaning=["" for _ in kl], note=note or "", data=run.config.data.name)
    from . import compute
    enc = compute.encode(run.model, test, run_key, str(dkey))
    mu, logvar = enc["mu"][:n], enc["logvar"][:n]
    y = None if test.y is None else test.y[:n].numpy()
    if y is not None and len(np.unique(y)) < 2:
        y = None
    kl = _kl(run, mu, logvar)
    rep = disentangle.label_report(mu, y, kl_per_dim=kl)
    active = in_use(rep["dims"], kl)
    if y is None:
        return Analysis(kind="kl", columns=[], order=_order(kl), kl=kl, active=active,
                        meaning=["" if a else inactive(k) for a, k in zip(active, kl)],
                        n=len(mu), data=dkey.name, note=note or "")
    share = [[r["mi_labels_normalized"]] for r in rep["dims"]]
    meaning = [f"class, MI {s[0]:.2f}" if a else inactive(k) for s, a, k in zip(share, active, kl)]
    return Analysis(kind="labels", columns=["class"], order=_order(kl), kl=kl, active=active, meaning=meaning,
                    mi=[[r["mi_labels"]] for r in rep["dims"]], mi_share=share, n=len(mu), data=dkey.name,
                    note=note or "")


def _order(kl: list[float]) -> list[int]:
    return sorted(range(len(kl)), key=lambda i: -kl[i])


@st.cache_data(show_spinner="Measuring what each dimension carries…", max_entries=32)
def analysis(_run: Run, run_key: str, n: int = MAX_POINTS) -> Analysis:
    """The run's dimensions: KL, activity, mutual information with the factors (or the labels), once per run."""
    if is_factor_data(_run):
        try:
            return _from_factors(_run, n)
        except (DataError, ValueError) as e:
            kl = catalogue.kl_per_dim(_run) or [0.0] * _run.config.model.latent_dim
            return Analysis(kind="kl", columns=[], order=_order(kl), kl=kl, active=[v >= UNUSED_KL_NATS for v in kl],
                            meaning=["" for _ in kl], note=f"This run's data cannot be generated here ({e}).")
    return _from_labels(_run, n, run_key)


# ---------------------------------------------------------------------------------------------
# What the page draws
# ---------------------------------------------------------------------------------------------


def rows(a: Analysis) -> list[dict]:
    """One row per dimension for the strips, largest KL first: {dim, title, detail, muted}."""
    out = []
    for j in a.order[:MAX_ROWS]:
        detail = f"KL {a.kl[j]:.2f} nats" + (f" · {a.meaning[j]}" if a.meaning[j] else "")
        out.append({"dim": j, "title": f"z{j}", "detail": detail, "muted": not a.active[j]})
    return out


def headline(a: Analysis) -> str:
    """One line over a run's rows: how many dimensions are in use, and what the heat map measures."""
    used = sum(a.active)
    bits = [f"{used} of {len(a.kl)} dimensions in use"]
    if a.kind == "factors":
        bits.append(f"MIG {a.mig:.2f}")
    if a.n:
        bits.append(f"on {a.n:,} test images of {a.data}")
    return " · ".join(bits)


def heatmap(a: Analysis, run_key: str) -> go.Figure | None:
    """Dimensions (rows, largest KL first) × factors (or the class) of mutual information, cached per run."""
    if not a.columns:
        return None
    return charts.cached(("dims-heat", run_key, a.n), lambda: charts.mi_heatmap(
        [a.mi_share[j] for j in a.order], [a.mi[j] for j in a.order], [f"z{j}" for j in a.order], a.columns,
        [a.active[j] for j in a.order]))


def others(active_path: str) -> list[catalogue.RunEntry]:
    """Runs that can be shown beside the active one (every other run of the catalogue)."""
    return [e for e in catalogue.catalogue() if e.path != active_path]


def pick_other(active_path: str, entries: list[catalogue.RunEntry]) -> catalogue.RunEntry | None:
    """The run chosen to sit beside the active one, or None."""
    chosen = st.session_state.get(S.DIMS_OTHER) or ""
    return next((e for e in entries if e.path == chosen and chosen != active_path), None)


def label_of(run: Run) -> int | None:
    """A conditional run's class for the strips (the page's selectbox), else None."""
    if not run.config.model.conditional:
        return None
    k = run.config.model.num_classes
    v = st.session_state.get(S.DIMS_LABEL, 0)
    return v if isinstance(v, int) and 0 <= v < k else 0


def describe(run: Run) -> str:
    """The run's objective in words: "VAE (β = 1)", "β-VAE (β = 4)", "β-TCVAE (TC weight 6)", ..."""
    t = run.config.train
    if run.config.kind == "tracked":
        return "a model logged from its own training loop"
    if t.objective == "btcvae":
        return f"β-TCVAE (TC weight {t.tc_weight:g}" + (f", β {t.beta:g})" if t.beta != 1 else ")")
    if t.objective == "factorvae":
        return f"FactorVAE (TC weight γ = {t.tc_weight:g}" + (f", β {t.beta:g})" if t.beta != 1 else ")")
    if t.objective == "iwae":
        return f"IWAE (k = {t.iw_k})"
    return f"VAE (β = {t.beta:g})" if t.beta == 1 else f"β-VAE (β = {t.beta:g})"


def origin(run: Run) -> list[float]:
    """Where every strip starts: the prior's centre."""
    return [0.0] * run.config.model.latent_dim


def traversal() -> list[float]:
    """The values each strip's dimension takes: ``STEPS`` from -``SPAN`` to ``SPAN`` (``vae.latent.traverse``)."""
    return np.linspace(-SPAN, SPAN, STEPS, dtype=np.float32).astype(float).tolist()


def cell_px(run: Run, columns: int) -> int:
    """Each strip image's side on screen: 9 of them fit half the page when two runs sit side by side."""
    return 56 if columns == 1 else 48


@dataclass(frozen=True)
class LowerLayer:
    """A two-layer run's lower layer as its final evaluation measured it."""

    kl_per_dim: list[float]
    caption: str


def lower_layer(run) -> LowerLayer | None:
    """The lower layer's KL per dimension and one line on each layer's share (None for one layer, or a run saved
    before its final evaluation)."""
    final = run.metrics.final
    if run.config.model.latent_layers == 1 or not final.kl_per_dim_lower or not final.kl_per_layer:
        return None
    top, low = final.kl_per_layer
    d = len(final.kl_per_dim_lower)
    active = "?" if final.active_units_lower is None else final.active_units_lower
    return LowerLayer(list(final.kl_per_dim_lower),
                      f"KL per layer: top z {top:.1f} nats, lower z₁ {low:.1f} nats; {active} of {d} lower dimensions "
                      "active (their mean given the top layer's varies across images). The strips above move the top "
                      "layer, with z₁ at the mean of p(z₁ | z).")
