"""Glue for the Inside page: the input being followed, the eps seed, the forward-pass diagram and the cloud.

The diagram is plain HTML (``st.html``) so it needs no component: boxes for each stage with this
input's numbers in them, and ``data-testid`` hooks (``vae-inside-*``) the browser test reads.
"""
from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from vae import inside
from vae.config import ModelConfig

from . import images
from . import state as S

TEST, DRAW, UPLOAD = "A test image", "Draw one", "Your own image"
SHOWN_DIMS = 8          # the diagram lists the most informative dimensions; the table below has all


@st.cache_data(show_spinner=False, max_entries=64)
def forward(_model, run_key: str, x: np.ndarray, seed: int, eps: tuple[float, ...] | None,
            label: int | None) -> inside.ForwardPass:
    """One forward pass, cached per run, input, eps and label (every session clicking the same digit shares it)."""
    return inside.forward_pass(_model, x, seed=seed, eps=None if eps is None else np.asarray(eps, np.float32),
                               label=label)


@st.cache_data(show_spinner=False, max_entries=64)
def cloud(_model, run_key: str, x: np.ndarray, n: int, seed: int, label: int | None
          ) -> tuple[np.ndarray, np.ndarray]:
    return inside.posterior_cloud(_model, x, n, seed=seed, label=label)


def eps_seed(input_key: str) -> int:
    """The eps seed for this input: a new draw when the input changes (unless frozen) or Resample is pressed."""
    ss = st.session_state
    ss.setdefault(S.INSIDE_SEED, 0)
    if ss.get(S.INSIDE_LAST_INPUT) != input_key:
        if ss.get(S.INSIDE_LAST_INPUT) is not None and not ss.get(S.INSIDE_FREEZE, False):
            ss[S.INSIDE_SEED] += 1
        ss[S.INSIDE_LAST_INPUT] = input_key
    return int(ss[S.INSIDE_SEED])


def send_to_sliders(run_key: str, z: list[float], label: int | None) -> None:
    """Make this point the Sliders page's start for the run (as its precise values do)."""
    from .sliders_view import send_precise
    send_precise(run_key, z, label)
    st.session_state[S.APP_TOAST] = "Sent to the Sliders page: it now starts from your drawing's latent mean."


def show_test_image(index: int, n: int) -> None:
    """Follow test image ``index`` (from a shared link)."""
    if not 0 <= index < n:
        raise ValueError(f"test image must be 0..{n - 1}")
    st.session_state[S.INSIDE_SOURCE] = TEST
    st.session_state[S.INSIDE_INDEX] = index


def resample() -> None:
    st.session_state[S.INSIDE_SEED] = int(st.session_state.get(S.INSIDE_SEED, 0)) + 1


#: Operators that only move or reshape values: left out when a stored program's layers are named.
PLUMBING = frozenset({"Reshape", "Flatten", "Shape", "Gather", "Constant", "ConstantOfShape", "Cast", "CastLike",
                      "Unsqueeze", "Squeeze", "Concat", "Identity", "Split", "SplitToSequence", "SequenceAt", "Slice",
                      "Range", "Expand", "Transpose", "Dropout"})
#: What a tracked run's x-hat is, by what its decoder returns (``tracked.output``).
XHAT = {"logits": "sigmoid of decode(z)", "probs": "decode(z): probabilities", "mean": "decode(z): the Gaussian mean"}


@st.cache_data(show_spinner=False, max_entries=32)
def _program_layers(path: str, mtime: float) -> str:
    """The computing operators of a stored ONNX program, most used first ("Gemm ×3, Relu ×2")."""
    from collections import Counter

    import onnx
    with open(path, "rb") as f:
        graph = onnx.load_model_from_string(f.read()).graph           # protobuf only: nothing is run
    ops = Counter(n.op_type for n in graph.node if n.op_type not in PLUMBING)
    return ", ".join(f"{op} ×{k}" if k > 1 else op for op, k in ops.most_common(4)) or "no layers"


def parts(run) -> tuple[str, str, str]:
    """(encoder line, decoder line, what x-hat is) for the diagram. A model logged with ``vae.track`` is named by
    its class and the layers its stored programs compute, not by sizes VAE Lab does not know."""
    m = run.config.model
    if run.config.kind != "tracked":
        return (*architecture(m), "decoded at z")
    from pathlib import Path

    from vae.foreign import DECODE, ENCODE
    name, folder = run.config.tracked.source or "your model", Path(run.model.folder)
    layers = []
    for part in (ENCODE, DECODE):
        try:
            layers.append(_program_layers(str(folder / part), (folder / part).stat().st_mtime))
        except (OSError, ValueError):
            layers.append("a stored program")
    return (f"{name}'s encode, stored as ONNX: {layers[0]}", f"{name}'s decode, stored as ONNX: {layers[1]}",
            XHAT[run.config.tracked.output])


def tracked_terms(output: str, m: ModelConfig) -> str:
    """One sentence on how a tracked run's two loss terms follow from what its decoder returns."""
    if output == "mean":
        return (f" This model's decode returns a Gaussian mean, so x̂ is that mean and the reconstruction term is the "
                f"Gaussian −log p(x | z) with the σ = {m.gaussian_sigma:g} it was logged with (vae.track's sigma=).")
    what = "probabilities" if output == "probs" else "Bernoulli logits (x̂ is their sigmoid)"
    return f" This model's decode returns {what}, so the reconstruction term is the Bernoulli −log p(x | z)."


def architecture(m: ModelConfig) -> tuple[str, str]:
    """One line each for the encoder and the decoder, e.g. 'MLP 784 → 512 → 2×2'."""
    pixels = m.channels * m.image_size ** 2
    d = m.latent_dim
    if m.arch == "conv":
        chans = " → ".join(str(c) for c in m.hidden)
        return (f"conv {m.channels} → {chans} ch, dense {m.fc_dim} → 2×{d}",
                f"dense {d} → {m.fc_dim}, transposed conv → {m.channels}×{m.image_size}²")
    enc = " → ".join([str(pixels), *(str(h) for h in m.hidden), f"2×{d}"])
    dec = " → ".join([str(d) if m.latent_layers == 1 else f"[z₁, z] {2 * d}", *(str(h) for h in m.decoder_hidden),
                      str(pixels)])
    return f"MLP {enc}", f"MLP {dec}"


def lower_row(p: inside.ForwardPass, m: ModelConfig) -> str:
    """A two-layer model's second row: the lower layer's posterior q(z1 | x, z) (from the encoder's last hidden
    layer and the top z above), its draw z1, and the conditional prior p(z1 | z) it is measured against; the
    decoder of the first row reads [z1, z]. Dimensions by their KL for this input, most first."""
    low = p.lower
    dims = [int(j) for j in np.argsort(-low.kl_per_dim, kind="stable")][:SHOWN_DIMS]
    w = m.decoder_widths[0]
    arrow = "<div class='arrow'>→</div>"
    stages = [
        f"<div class='box net'><b>q(z₁ | x, z)</b><div class='sub'>MLP [h, z] {m.hidden[-1] + m.latent_dim} → {w} "
        f"→ 2×{m.latent_dim}</div></div>",
        _vector("μ₁", low.mu, dims, "vae-inside-lower-mu", symbol="z₁,"),
        _vector("σ₁", low.sigma, dims, "vae-inside-lower-sigma", symbol="z₁,"),
        _vector("ε₁ ~ N(0, I)", low.eps, dims, "vae-inside-lower-eps", symbol="z₁,"),
        _vector("z₁ = μ₁ + σ₁·ε₁", low.z, dims, "vae-inside-lower-z", symbol="z₁,"),
        f"<div class='box net'><b>p(z₁ | z)</b><div class='sub'>MLP z {m.latent_dim} → {w} → 2×{m.latent_dim}"
        f"</div></div>",
        _vector("prior mean", low.prior_mu, dims, "vae-inside-lower-prior-mu", symbol="z₁,"),
        _vector("prior σ", low.prior_sigma, dims, "vae-inside-lower-prior-sigma", symbol="z₁,"),
        _vector("KL per dim", low.kl_per_dim, dims, "vae-inside-lower-kl-dims", symbol="z₁,"),
    ]
    return (f"<div class='layer'>lower layer z₁: drawn given this input and the z above, measured against "
            f"p(z₁ | z); the decoder reads [z₁, z]</div><div class='row'>{arrow.join(stages)}</div>")


def _vector(name: str, values: np.ndarray, dims: list[int], testid: str, title_html: str | None = None,
            symbol: str = "z") -> str:
    rows = "".join(f"<tr><td>{symbol}{j}</td><td>{values[j]:+.3f}</td></tr>" for j in dims)
    more = f"<div class='more'>+{len(values) - len(dims)} more</div>" if len(values) > len(dims) else ""
    return f"<div class='box vec' data-testid='{testid}'><b>{title_html or name}</b><table>{rows}</table>{more}</div>"


def prior_name(m: ModelConfig) -> str:
    """The prior as the page writes it."""
    return "N(0, I)" if m.prior == "normal" else f"VampPrior, {m.prior_components} components"


def diagram(p: inside.ForwardPass, m: ModelConfig, order: list[int],
            described: tuple[str, str, str] | None = None) -> str:
    """The forward pass as one row of boxes with this input's numbers, and the two loss terms under it. The row is
    sized to fit the page's main column at 1,400 px with the sidebar open; narrower, it scrolls sideways rather than
    wrapping its second half under the first. ``described``: ``parts(run)`` (default: from ``m``)."""
    dims = order[:SHOWN_DIMS]
    enc, dec, xhat = described or (*architecture(m), "decoded at z")
    x_img = images.png_b64(images.one(p.x, target=112))
    xh_img = images.png_b64(images.one(p.x_hat, target=112))
    arrow = "<div class='arrow'>→</div>"
    stages = [
        f"<div class='box img' data-testid='vae-inside-x'><b>x</b><img src='data:image/png;base64,{x_img}'/>"
        f"<div class='sub'>the input</div></div>",
        f"<div class='box net'><b>encoder</b><div class='sub'>{html.escape(enc)}</div></div>",
        _vector("μ", p.mu, dims, "vae-inside-mu"),
        _vector("log σ²", p.logvar, dims, "vae-inside-logvar"),
        _vector("σ = exp(½ log σ²)", p.sigma, dims, "vae-inside-sigma", title_html="σ =<br>exp(½ log σ²)"),
        _vector("ε ~ N(0, I)", p.eps, dims, "vae-inside-eps"),
        _vector("z = μ + σ·ε", p.z, dims, "vae-inside-z"),
        f"<div class='box net'><b>decoder</b><div class='sub'>{html.escape(dec)}</div></div>",
        f"<div class='box img' data-testid='vae-inside-xhat'><b>x̂</b><img src='data:image/png;base64,{xh_img}'/>"
        f"<div class='sub'>{html.escape(xhat)}</div></div>",
    ]
    given = "z" if p.lower is None else "z₁, z"
    kl_line = (f"<div class='loss' data-testid='vae-inside-kl'><b>KL</b>(q(z|x) ‖ {prior_name(m)}) "
               f"{'=' if m.prior == 'normal' else '≈'} <span class='num'>{p.kl:.2f}</span> nats</div>")
    if p.lower is not None:
        kl_line = (f"<div class='loss' data-testid='vae-inside-kl'><b>KL</b> = top KL(q(z|x) ‖ {prior_name(m)}) "
                   f"<span data-testid='vae-inside-kl-top'>{p.kl_top:.2f}</span> + lower KL(q(z₁|x,z) ‖ p(z₁|z)) "
                   f"<span data-testid='vae-inside-kl-lower'>{p.lower.kl:.2f}</span> = "
                   f"<span class='num'>{p.kl:.2f}</span> nats</div>")
    losses = (
        f"<div class='loss' data-testid='vae-inside-recon'><b>reconstruction</b> −log p(x | {given}) = "
        f"<span class='num'>{p.recon:.2f}</span> nats</div>" + kl_line +
        f"<div class='loss' data-testid='vae-inside-elbo'><b>−ELBO</b> = {p.recon:.2f} + {p.kl:.2f} = "
        f"<span class='num'>{p.neg_elbo:.2f}</span> nats</div>")
    style = """<style>
    .vae-inside{font-family:var(--font, sans-serif);color:inherit}
    .vae-inside .row{display:flex;align-items:center;gap:2px;flex-wrap:nowrap;overflow-x:auto;padding-bottom:2px}
    .vae-inside .box{border:1px solid rgba(128,128,128,.45);border-radius:8px;padding:4px 5px;text-align:center;
      font-size:12px;background:rgba(128,128,128,.06);flex:0 0 auto}
    .vae-inside .net{background:rgba(78,121,167,.15);max-width:104px}
    .vae-inside .img img{display:block;margin:3px auto;width:72px;height:72px;image-rendering:pixelated}
    .vae-inside .vec table{border-collapse:collapse;margin:2px auto;font-family:monospace;font-size:11.5px}
    .vae-inside .vec td{padding:0 2px}
    .vae-inside .sub,.vae-inside .more{font-size:10.5px;opacity:.75}
    .vae-inside .arrow{font-size:15px;opacity:.6;flex:0 0 auto}
    .vae-inside .losses{display:flex;gap:10px;flex-wrap:wrap;margin-top:10px}
    .vae-inside .loss{border-left:4px solid #e15759;padding:4px 10px;font-size:14px}
    .vae-inside .loss .num{font-weight:700;font-family:monospace}
    .vae-inside .layer{font-size:12px;opacity:.8;margin:8px 0 2px}
    </style>"""
    second = "" if p.lower is None else lower_row(p, m)
    return (f"{style}<div class='vae-inside' data-testid='vae-inside'><div class='row'>{arrow.join(stages)}</div>"
            f"{second}<div class='losses'>{losses}</div></div>")


def cloud_figure(base: go.Figure, center: np.ndarray, sigma: np.ndarray, z_cloud: np.ndarray,
                 place, components: np.ndarray | None) -> go.Figure:
    """The map ``base`` zoomed onto this input's posterior: its 1σ and 2σ ellipses around mu, the cloud of draws
    and mu itself, with the test points around it for context (hover names their label).
    ``place`` maps latents [N, D] to the map; ``components`` is the map's linear part (None: z0, z1 directly)."""
    for trace in base.data:           # the class legend would crowd out the plot at this size
        trace.showlegend = False
    mu2 = place(center[None])[0]
    outer = None
    for k, dash in ((1, "solid"), (2, "dash")):
        outer = inside.ellipse(mu2, sigma, k, components)
        base.add_trace(go.Scatter(x=outer[:, 0], y=outer[:, 1], mode="lines", name=f"posterior {k}σ "
                                  f"({inside.chi2_2d_mass(k):.0%})", line=dict(color="#222222", width=2, dash=dash),
                                  hoverinfo="skip"))
    zc = place(z_cloud)
    base.add_trace(go.Scatter(x=zc[:, 0], y=zc[:, 1], mode="markers", name=f"{len(zc)} draws z ~ q(z|x)",
                              marker=dict(size=7, color="#f28e2b", line=dict(width=1, color="#222222")),
                              hovertemplate="draw %{pointNumber}<extra></extra>"))
    base.add_trace(go.Scatter(x=[mu2[0]], y=[mu2[1]], mode="markers", name="μ",
                              marker=dict(size=16, symbol="x", color="#222222"), hoverinfo="skip"))
    pts = np.concatenate([outer, zc])
    half = max(0.75, 1.4 * float(np.abs(pts - mu2).max()))
    base.update_xaxes(range=[mu2[0] - half, mu2[0] + half])
    base.update_yaxes(range=[mu2[1] - half, mu2[1] + half])
    base.update_layout(legend=dict(title=dict(text=""), orientation="h", y=1.02, yanchor="bottom", x=0))
    return base


def components_of(params: dict, d: int) -> np.ndarray | None:
    """The map's linear part for ``inside.ellipse``: PCA's components, or None for a 2-D latent shown as is."""
    if params.get("method") == "pca" and params.get("components") is not None:
        return np.asarray(params["components"])
    return None if d <= 2 else np.eye(2, d)


def uploaded_image(blob: bytes, name: str, m: ModelConfig, invert: bool) -> np.ndarray:
    """An uploaded picture as this run's input: uint8 [C, S, S]; ``invert`` for dark ink on light paper."""
    from vae.data import image_from_bytes
    x = image_from_bytes(blob, name, m.image_size, m.channels)
    return 255 - x if invert else x


def test_image(test, index: int) -> tuple[np.ndarray, int | None]:
    x = test.x[index].numpy()
    return x, None if test.y is None else int(test.y[index])



def formulas(p: inside.ForwardPass, m: ModelConfig, j: int, gaussian_sigma: float) -> list[str]:
    """LaTeX lines: the reparameterisation and KL of dimension ``j``, the total KL, the reconstruction term and the
    −ELBO, each with this input's numbers."""
    lines = [
        rf"z_{{{j}}} = \mu_{{{j}}} + \sigma_{{{j}}}\,\varepsilon_{{{j}}} = {p.mu[j]:.3f} + {p.sigma[j]:.3f}"
        rf"\times ({p.eps[j]:.3f}) = {p.z[j]:.3f}"]
    if m.prior == "normal":
        lines += [
            rf"\mathrm{{KL}}_{{{j}}} = \tfrac12\left(\mu_{{{j}}}^2 + \sigma_{{{j}}}^2 - 1 - \log\sigma_{{{j}}}^2\right)"
            rf" = \tfrac12\left({p.mu[j] ** 2:.3f} + {p.sigma[j] ** 2:.3f} - 1 - ({p.logvar[j]:.3f})\right)"
            rf" = {p.kl_per_dim[j]:.3f}\ \text{{nats}}",
            rf"\mathrm{{KL}}{_top(p)} = \textstyle\sum_j \mathrm{{KL}}_j = {p.kl_top:.2f}\ "
            rf"\text{{nats over {m.latent_dim} dimensions}}"]
    else:   # a mixture prior: no closed form, and the KL does not split by dimension
        lines += [
            rf"p(z) = \tfrac1K \textstyle\sum_k q(z\mid u_k),\ K = {m.prior_components}\ "
            rf"\text{{learned pseudo-inputs}}",
            rf"\mathrm{{KL}}{_top(p)} \approx \tfrac1S \textstyle\sum_s \left[\log q(z_s\mid x) - \log p(z_s)\right]"
            rf" = {p.kl_top:.2f}\ \text{{nats}},\ S = 1000",
            rf"\mathrm{{KL}}_{{{j}}}\ \text{{(against the prior's marginal on }} z_{{{j}}}\text{{)}}"
            rf" = {p.kl_per_dim[j]:.3f}\ \text{{nats}}"]
    if p.lower is not None:
        low = p.lower
        i = int(np.argmax(low.kl_per_dim))
        lines += [
            rf"z_{{1,{i}}} = \mu_{{1,{i}}} + \sigma_{{1,{i}}}\,\varepsilon_{{1,{i}}} = {low.mu[i]:.3f} + "
            rf"{low.sigma[i]:.3f}\times ({low.eps[i]:.3f}) = {low.z[i]:.3f}",
            rf"\mathrm{{KL}}_{{1,{i}}} = \log\tfrac{{s_{{{i}}}}}{{\sigma_{{1,{i}}}}} + \tfrac{{\sigma_{{1,{i}}}^2 + "
            rf"(\mu_{{1,{i}}} - m_{{{i}}})^2}}{{2 s_{{{i}}}^2}} - \tfrac12,\ p(z_{{1,{i}}}\mid z) = "
            rf"\mathcal N({low.prior_mu[i]:.3f}, {low.prior_sigma[i]:.3f}^2):\ {low.kl_per_dim[i]:.3f}\ \text{{nats}}",
            rf"\mathrm{{KL}} = \mathrm{{KL}}_{{\text{{top}}}} + \textstyle\sum_i \mathrm{{KL}}_{{1,i}} = "
            rf"{p.kl_top:.2f} + {low.kl:.2f} = {p.kl:.2f}\ \text{{nats}}"]
    given = "z" if p.lower is None else "z_1, z"
    if m.likelihood == "bernoulli":
        lines.append(rf"-\log p(x\mid {given}) = -\textstyle\sum_i \left[x_i \log \hat x_i + (1 - x_i)"
                     rf"\log(1 - \hat x_i)\right] = {p.recon:.2f}\ \text{{nats over {p.x.size} pixels}}")
    else:
        lines.append(rf"-\log p(x\mid {given}) = \textstyle\sum_i \left[\frac{{(x_i - \hat x_i)^2}}{{2\sigma^2}} + \log"
                     rf"\sigma + \tfrac12\log 2\pi\right] = {p.recon:.2f}\ \text{{nats}},\ "
                     rf"\sigma = {gaussian_sigma:.3g}")
    lines.append(rf"-\mathrm{{ELBO}} = -\log p(x\mid {given}) + \mathrm{{KL}} = {p.recon:.2f} + {p.kl:.2f} = "
                 rf"{p.neg_elbo:.2f}\ \text{{nats}}")
    return lines


def _top(p: inside.ForwardPass) -> str:
    """The subscript naming the top layer's KL when there are two layers."""
    return "" if p.lower is None else r"_{\text{top}}"


#: How many of the most informative dimensions the posterior width is averaged over.
WIDTH_DIMS = 4


def unusual_note(p: inside.ForwardPass, order: list[int], test_logvar: np.ndarray | None,
                 test_neg_elbo: np.ndarray | None) -> str | None:
    """One line on how unusual this input is for the model: its −ELBO against the test images' (the reliable
    alarm), and its posterior width (mean σ over its most informative dimensions) against theirs. Measured on the
    demo runs: a blank image gets a wider posterior, but random noise or dense scribbles get a NARROWER one (the
    encoder extrapolates with confidence), so the line says which way it went instead of assuming."""
    if test_logvar is None or test_neg_elbo is None or not len(test_neg_elbo):
        return None
    share = float((np.asarray(test_neg_elbo) < p.neg_elbo).mean())
    median = float(np.median(test_neg_elbo))
    if share >= 0.99:
        surprise = "it looks like nothing the model learned"
    elif share >= 0.9:
        surprise = "unusual for this model"
    elif share <= 0.1:
        surprise = ("easier for this model than most test images; a low −ELBO only says the model finds it simple "
                    "to encode (a plain or nearly blank image scores low too), not that it is a typical input")
    else:
        surprise = "a typical input for this model"
    dims = order[:max(1, min(len(order), WIDTH_DIMS))]
    width = float(np.mean(p.sigma[dims]))
    typical = float(np.median(np.exp(0.5 * test_logvar[:, dims]).mean(1)))
    ratio = width / max(typical, 1e-12)
    if ratio >= 1.5:
        spread = "wider than usual: the encoder is unsure where to put it"
    elif ratio <= 0.67:
        spread = ("narrower than usual: an encoder is often over-confident far from its data, so a narrow "
                  "posterior is no sign that this is a digit")
    else:
        spread = "about as wide as usual"
    return (f"**How unusual is this input?** −ELBO **{p.neg_elbo:.1f} nats**, above {share:.0%} of the test images "
            f"(median {median:.1f}): {surprise}. Posterior width (mean σ of its {len(dims)} most informative "
            f"dimensions) **{width:.3f}**, {ratio:.1f}× the test median: {spread}.")


def pad_context(model, run_key: str, test, dkey, kl_order: list[int]) -> dict:
    """What the drawing pad draws behind the posterior (the test set's map, PCA beyond 2-D) and the test images'
    median posterior width over the run's most informative dimensions, to compare a drawing with."""
    from . import compute, map_view
    dims = kl_order[:max(1, min(len(kl_order), WIDTH_DIMS))]
    if test is None:
        return {"map_points": None, "map_labels": None, "map_params": None, "typical_sigma": 1.0, "width_dims": dims}
    enc = compute.encode(model, test, run_key, str(dkey))
    proj = map_view.projection(enc["mu"], "pca", run_key, str(dkey))
    typical = float(np.median(np.exp(0.5 * enc["logvar"][:, dims]).mean(1)))
    return {"map_points": proj.points, "map_labels": None if test.y is None else test.y.numpy()[proj.index],
            "map_params": proj.params, "typical_sigma": typical, "width_dims": dims}
