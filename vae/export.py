"""Describe a decoder as plain JSON so a small forward pass outside torch can run it.

The in-browser latent panel (``ui/live_decoder.js``) decodes on every slider move
without a server round trip. It understands exactly the layer types our decoders use
(see ``vae.models``), and this module is the contract between the two:

``decoder_spec(model)`` walks ``model.decoder.net`` module by module and writes::

    {"version": 1, "id": "<hash of the content>", "latent_dim": D, "channels": C,
     "image_size": S, "conditional": bool, "num_classes": K,
     "layers": [{"type": "linear", "in": I, "out": O, "weight": b64 [O, I], "bias": b64 [O]},
                {"type": "relu" | "silu" | "sigmoid"},
                {"type": "elu", "alpha": a}, {"type": "leaky_relu", "slope": s},
                {"type": "unflatten", "shape": [c, h, w]},
                {"type": "convtranspose2d", "in": I, "out": O, "k": 4, "stride": 2, "pad": 1,
                 "weight": b64 [I, O, k, k] (torch's layout), "bias": b64 [O]},
                {"type": "crop", "size": S}, ...]}

Weights are little-endian float32, base64-encoded. The decoder input is ``z`` followed,
for a conditional model, by the one-hot label (``K`` entries). The last layers are
always ``unflatten`` (MLP) or ``crop`` (conv), then ``sigmoid``: the output is pixels in
[0, 1], shape [C, S, S].

Anything else (another module type, a ConvTranspose2d with other hyper-parameters, a
decoder class whose ``forward`` may differ) raises ``UnsupportedForBrowser`` with one
line saying why, so the caller can fall back to decoding on the server.

``numpy_decode(spec, z, y)`` is a reference forward pass over the spec alone, written
the way the JS computes (float64 accumulation, float32 storage between layers); tests
compare it with torch and the browser with both.

``encoder_spec(model)`` does the same for the encoder (``"kind": "encoder"``): the input is the
image in torch's layout (CHW, flat, 0..1); layers ``conv2d`` (k 4, stride 2, pad 1, weight
[O, I, 4, 4]), ``flatten``, ``concat_label`` (a conditional model's one-hot label), ``linear`` and
the activations; the output is [2 * D]: mu, then log sigma^2. ``numpy_encode`` is its reference.
"""
from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import numpy as np
import torch
from torch import nn

from .models import VAE, Decoder, Encoder

SPEC_VERSION = 1


class UnsupportedForBrowser(ValueError):
    """The decoder uses something the browser forward pass does not implement."""


def b64_floats(t: torch.Tensor | np.ndarray) -> str:
    """A tensor or array as base64 little-endian float32 (the spec's weights)."""
    a = (t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)).astype("<f4", copy=False)
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode("ascii")


def _unb64(s: str, shape: tuple[int, ...]) -> np.ndarray:
    a = np.frombuffer(base64.b64decode(s), dtype="<f4")
    if a.size != int(np.prod(shape)):
        raise ValueError(f"weight has {a.size} floats, expected {int(np.prod(shape))} for shape {list(shape)}")
    return a.reshape(shape).astype(np.float32)


def _bias(m: nn.Module, out: int) -> str:
    b = m.bias if m.bias is not None else torch.zeros(out)
    return b64_floats(b)


_ACTIVATIONS = {nn.ReLU: lambda m: {"type": "relu"}, nn.SiLU: lambda m: {"type": "silu"},
                nn.ELU: lambda m: {"type": "elu", "alpha": float(m.alpha)},
                nn.LeakyReLU: lambda m: {"type": "leaky_relu", "slope": float(m.negative_slope)},
                nn.Sigmoid: lambda m: {"type": "sigmoid"}}


def layer_spec(m: nn.Module, shape: tuple[int, ...], where: str) -> tuple[dict[str, Any], tuple[int, ...]]:
    """One module as a spec layer, and the activation's shape after it (batch dim dropped). Raises
    ``UnsupportedForBrowser`` for a module, or a shape, the browser's forward pass does not run."""
    if type(m) in _ACTIVATIONS:
        return _ACTIVATIONS[type(m)](m), shape
    if type(m) is nn.Linear:
        if shape != (m.in_features,):
            raise UnsupportedForBrowser(f"{where} expects {m.in_features} inputs, gets shape {list(shape)}")
        return ({"type": "linear", "in": m.in_features, "out": m.out_features, "weight": b64_floats(m.weight),
                 "bias": _bias(m, m.out_features)}, (m.out_features,))
    if type(m) is nn.Unflatten:
        if m.dim not in (1, -len(shape)) or len(shape) != 1 or len(m.unflattened_size) != 3:
            raise UnsupportedForBrowser(f"{where}: only [B, N] -> [B, C, H, W] is supported")
        c, h, w = (int(v) for v in m.unflattened_size)
        if c * h * w != shape[0] or h != w:
            raise UnsupportedForBrowser(f"{where}: {shape[0]} values do not make a square [{c}, {h}, {w}]")
        return {"type": "unflatten", "shape": [c, h, w]}, (c, h, w)
    if type(m) is nn.ConvTranspose2d:
        ok = (m.kernel_size == (4, 4) and m.stride == (2, 2) and m.padding == (1, 1) and m.output_padding == (0, 0)
              and m.dilation == (1, 1) and m.groups == 1 and m.padding_mode == "zeros")
        if not ok:
            raise UnsupportedForBrowser(
                f"{where}: only kernel 4, stride 2, padding 1 (no output padding, dilation or groups) is supported")
        if len(shape) != 3 or shape[0] != m.in_channels:
            raise UnsupportedForBrowser(f"{where} expects {m.in_channels} channels, gets shape {list(shape)}")
        return ({"type": "convtranspose2d", "in": m.in_channels, "out": m.out_channels, "k": 4, "stride": 2,
                 "pad": 1, "weight": b64_floats(m.weight), "bias": _bias(m, m.out_channels)},
                (m.out_channels, 2 * shape[1], 2 * shape[2]))
    raise UnsupportedForBrowser(f"{where} is not supported in the browser")


def _to_image(shape: tuple[int, ...], cfg, arch: str) -> dict[str, Any]:
    """The layer that turns the last activation into the [C, S, S] image as ``Decoder.forward`` does: an MLP's
    output is viewed as [C, S, S], a conv output cropped top-left."""
    c, s = cfg.channels, cfg.image_size
    if arch == "mlp":
        if shape != (c * s * s,):
            raise UnsupportedForBrowser(f"MLP decoder ends with shape {list(shape)}, expected [{c * s * s}]")
        return {"type": "unflatten", "shape": [c, s, s]}
    if len(shape) != 3 or shape[0] != c or shape[1] < s:
        raise UnsupportedForBrowser(f"conv decoder ends with shape {list(shape)}, cannot crop to [{c}, {s}, {s}]")
    return {"type": "crop", "size": s}


def decoder_spec(model: VAE) -> dict[str, Any]:
    """A JSON-serialisable description of ``model``'s decoder (format in the module doc).

    Raises ``UnsupportedForBrowser(reason)`` for anything the browser cannot run.
    """
    cfg = getattr(model, "cfg", None)
    dec = getattr(model, "decoder", None)
    if cfg is None or dec is None:
        raise UnsupportedForBrowser(f"{type(model).__name__} has no cfg/decoder: not a vae.models.VAE")
    if type(dec) is not Decoder:
        # a subclass may change forward(); only the stock one is mirrored in JS
        raise UnsupportedForBrowser(f"decoder class {type(dec).__name__} is not vae.models.Decoder")
    net = getattr(dec, "net", None)
    if not isinstance(net, nn.Sequential):
        raise UnsupportedForBrowser("decoder.net is not an nn.Sequential")
    extra = cfg.num_classes if cfg.conditional else 0
    shape: tuple[int, ...] = (cfg.latent_dim + extra,)
    layers: list[dict[str, Any]] = []
    modules = list(net)
    if getattr(model, "lower", None) is not None:
        layers, shape = _lower_fused(model)
        modules = modules[1:]
    for i, m in enumerate(modules, start=len(net) - len(modules)):
        layer, shape = layer_spec(m, shape, f"decoder.net[{i}] {type(m).__name__}")
        layers.append(layer)
    layers += [_to_image(shape, cfg, cfg.arch), {"type": "sigmoid"}]
    spec: dict[str, Any] = {"version": SPEC_VERSION, "latent_dim": cfg.latent_dim, "channels": cfg.channels,
                            "image_size": cfg.image_size, "conditional": bool(cfg.conditional),
                            "num_classes": int(cfg.num_classes) if cfg.conditional else 0, "layers": layers}
    spec["id"] = spec_id(spec)
    return spec


def _lower_fused(model: VAE) -> tuple[list[dict[str, Any]], tuple[int, ...]]:
    """A two-layer model's ``decode(z)`` = decoder([m(z), z]), with m(z) = the mean of p(z1 | z), as plain layers:
    one linear layer gives [A1 z + a1, z, -z], the activation (ReLU or leaky ReLU with slope s) runs on all of it,
    and the decoder's first linear layer, folded with p(z1 | z)'s mean rows, reads the hidden units and z again as
    (act(z) - act(-z)) / (1 + s), which is exact for those two activations only."""
    prior, first = model.lower.prior, model.decoder.net[0]
    act = prior[1]
    if type(act) not in (nn.ReLU, nn.LeakyReLU) or type(first) is not nn.Linear:
        raise UnsupportedForBrowser(f"a two-layer decoder runs in the browser with relu or leaky_relu only, not "
                                    f"{type(act).__name__}")
    slope = float(act.negative_slope) if type(act) is nn.LeakyReLU else 0.0
    d = model.cfg.latent_dim
    a1, a2 = prior[0], prior[2]
    eye = torch.eye(d, dtype=torch.float64)
    w_in = torch.cat([a1.weight.double(), eye, -eye])
    b_in = torch.cat([a1.bias.double(), torch.zeros(2 * d, dtype=torch.float64)])
    w_low, w_top = first.weight.double()[:, :d], first.weight.double()[:, d:]
    w_out = torch.cat([w_low @ a2.weight.double()[:d], w_top / (1 + slope), -w_top / (1 + slope)], dim=1)
    b_out = first.bias.double() + w_low @ a2.bias.double()[:d]
    hidden = a1.out_features + 2 * d
    layers = [{"type": "linear", "in": d, "out": hidden, "weight": b64_floats(w_in), "bias": b64_floats(b_in)},
              _ACTIVATIONS[type(act)](act),
              {"type": "linear", "in": hidden, "out": first.out_features, "weight": b64_floats(w_out),
               "bias": b64_floats(b_out)}]
    return layers, (first.out_features,)


def spec_id(spec: dict[str, Any]) -> str:
    """A short content hash of the spec (ignoring any ``id`` already in it)."""
    body = {k: v for k, v in spec.items() if k != "id"}
    return hashlib.blake2b(json.dumps(body, sort_keys=True, separators=(",", ":")).encode(),
                           digest_size=8).hexdigest()


def spec_bytes(spec: dict[str, Any]) -> bytes:
    """The spec as compact UTF-8 JSON: what travels to the browser (``len()`` is its size)."""
    return json.dumps(spec, separators=(",", ":")).encode()


def _act(x: np.ndarray, layer: dict[str, Any]) -> np.ndarray:
    t = layer["type"]
    if t == "relu":
        return np.maximum(x, 0.0)
    if t == "leaky_relu":
        return np.where(x > 0, x, x * layer.get("slope", 0.01))
    if t == "elu":
        return np.where(x > 0, x, layer.get("alpha", 1.0) * np.expm1(x))
    if t == "silu":
        return x / (1.0 + np.exp(-x))
    if t == "sigmoid":
        return 1.0 / (1.0 + np.exp(-x))
    raise ValueError(f"unknown activation {t!r}")


def numpy_decode(spec: dict[str, Any], z, y=None) -> np.ndarray:
    """Reference forward pass of a spec: z: [D] or [B, D], y: int / [B] ints -> pixels [C, S, S] or [B, C, S, S].

    Mirrors ``ui/live_decoder.js``: float64 arithmetic, float32 between layers.
    """
    z = np.asarray(z, dtype=np.float64)
    single = z.ndim == 1
    z = np.atleast_2d(z)
    b, d = z.shape
    if d != spec["latent_dim"]:
        raise ValueError(f"z has {d} dims, the decoder expects {spec['latent_dim']}")
    if spec["conditional"]:
        if y is None:
            raise ValueError("a conditional decoder needs a label y")
        y = np.atleast_1d(np.asarray(y, dtype=np.int64))
        if y.shape != (b,) or (y < 0).any() or (y >= spec["num_classes"]).any():
            raise ValueError(f"y must be {b} labels in 0..{spec['num_classes'] - 1}, got {y.tolist()}")
        onehot = np.zeros((b, spec["num_classes"]))
        onehot[np.arange(b), y] = 1.0
        z = np.concatenate([z, onehot], axis=1)

    x = z.astype(np.float32)
    for layer in spec["layers"]:
        t = layer["type"]
        if t == "linear":
            w = _unb64(layer["weight"], (layer["out"], layer["in"])).astype(np.float64)
            bias = _unb64(layer["bias"], (layer["out"],)).astype(np.float64)
            x = x.astype(np.float64) @ w.T + bias
        elif t == "unflatten":
            x = x.reshape(b, *layer["shape"])
        elif t == "convtranspose2d":
            ci, co, k = layer["in"], layer["out"], layer["k"]
            w = _unb64(layer["weight"], (ci, co, k, k)).astype(np.float64)
            bias = _unb64(layer["bias"], (co,)).astype(np.float64)
            _, _, h, wd = x.shape
            full = np.zeros((b, co, 2 * h + 2, 2 * wd + 2))  # output before removing the padding of 1
            xin = x.astype(np.float64)
            for ky in range(k):
                for kx in range(k):
                    full[:, :, ky:ky + 2 * h:2, kx:kx + 2 * wd:2] += np.einsum("bihw,io->bohw", xin, w[:, :, ky, kx])
            x = full[:, :, 1:2 * h + 1, 1:2 * wd + 1] + bias[None, :, None, None]
        elif t == "crop":
            s = layer["size"]
            x = x[:, :, :s, :s]
        else:
            x = _act(x.astype(np.float64), layer)
        x = x.astype(np.float32)
    return x[0] if single else x


def encoder_spec(model: VAE) -> dict[str, Any]:
    """A JSON-serialisable description of ``model``'s encoder (format in the module doc)."""
    cfg = getattr(model, "cfg", None)
    enc = getattr(model, "encoder", None)
    if cfg is None or type(enc) is not Encoder:
        raise UnsupportedForBrowser("the encoder is not vae.models.Encoder")
    modules = list(enc.features) if isinstance(enc.features, nn.Sequential) else [enc.features]
    modules += ["label", *enc.head, enc.out]
    shape: tuple[int, ...] = (cfg.channels, cfg.image_size, cfg.image_size)
    layers: list[dict[str, Any]] = []
    for i, m in enumerate(modules):
        where = f"encoder layer {i} {type(m).__name__}"
        if m == "label":
            if cfg.conditional:
                layers.append({"type": "concat_label"})
                shape = (shape[0] + cfg.num_classes,)
        elif type(m) is nn.Conv2d:
            ok = (m.kernel_size == (4, 4) and m.stride == (2, 2) and m.padding == (1, 1) and m.dilation == (1, 1)
                  and m.groups == 1 and m.padding_mode == "zeros")
            if not ok or len(shape) != 3 or shape[0] != m.in_channels:
                raise UnsupportedForBrowser(f"{where}: only kernel 4, stride 2, padding 1 on {list(shape)} runs here")
            layers.append({"type": "conv2d", "in": m.in_channels, "out": m.out_channels, "k": 4, "stride": 2,
                           "pad": 1, "weight": b64_floats(m.weight), "bias": _bias(m, m.out_channels)})
            shape = (m.out_channels, (shape[1] - 2) // 2 + 1, (shape[2] - 2) // 2 + 1)
        elif type(m) is nn.Flatten:
            layers.append({"type": "flatten"})
            shape = (int(np.prod(shape)),)
        elif type(m) is nn.Linear:
            if shape != (m.in_features,):
                raise UnsupportedForBrowser(f"{where} expects {m.in_features} inputs, gets shape {list(shape)}")
            layers.append({"type": "linear", "in": m.in_features, "out": m.out_features,
                           "weight": b64_floats(m.weight), "bias": _bias(m, m.out_features)})
            shape = (m.out_features,)
        elif type(m) in _ACT_TYPES:
            layers.append(_ACT_TYPES[type(m)](m))
        else:
            raise UnsupportedForBrowser(f"{where} is not supported in the browser")
    if shape != (2 * cfg.latent_dim,):
        raise UnsupportedForBrowser(f"the encoder ends with shape {list(shape)}, expected [{2 * cfg.latent_dim}]")
    spec: dict[str, Any] = {"version": SPEC_VERSION, "kind": "encoder", "latent_dim": cfg.latent_dim,
                            "channels": cfg.channels, "image_size": cfg.image_size,
                            "conditional": bool(cfg.conditional),
                            "num_classes": int(cfg.num_classes) if cfg.conditional else 0, "layers": layers}
    spec["id"] = spec_id(spec)
    return spec


_ACT_TYPES = {nn.ReLU: lambda m: {"type": "relu"}, nn.SiLU: lambda m: {"type": "silu"},
              nn.ELU: lambda m: {"type": "elu", "alpha": float(m.alpha)},
              nn.LeakyReLU: lambda m: {"type": "leaky_relu", "slope": float(m.negative_slope)},
              nn.Sigmoid: lambda m: {"type": "sigmoid"}}


def numpy_encode(spec: dict[str, Any], x, y=None) -> tuple[np.ndarray, np.ndarray]:
    """Reference forward pass of an encoder spec: x [C, S, S] in 0..1 (and a label) -> (mu [D], logvar [D])."""
    h = np.asarray(x, np.float64).reshape(spec["channels"], spec["image_size"], spec["image_size"])
    for layer in spec["layers"]:
        t = layer["type"]
        if t == "conv2d":
            ci, co = layer["in"], layer["out"]
            w = _unb64(layer["weight"], (co, ci, 4, 4)).astype(np.float64)
            bias = _unb64(layer["bias"], (co,)).astype(np.float64)
            padded = np.pad(h, ((0, 0), (1, 1), (1, 1)))
            ho, wo = (h.shape[1] - 2) // 2 + 1, (h.shape[2] - 2) // 2 + 1
            out = np.zeros((co, ho, wo))
            for ky in range(4):
                for kx in range(4):
                    out += np.einsum("ihw,oi->ohw", padded[:, ky:ky + 2 * ho:2, kx:kx + 2 * wo:2], w[:, :, ky, kx])
            h = out + bias[:, None, None]
        elif t == "flatten":
            h = h.reshape(-1)
        elif t == "concat_label":
            if y is None or not 0 <= int(y) < spec["num_classes"]:
                raise ValueError(f"a conditional encoder needs a label 0..{spec['num_classes'] - 1}")
            onehot = np.zeros(spec["num_classes"])
            onehot[int(y)] = 1.0
            h = np.concatenate([h, onehot])
        elif t == "linear":
            w = _unb64(layer["weight"], (layer["out"], layer["in"])).astype(np.float64)
            h = h @ w.T + _unb64(layer["bias"], (layer["out"],)).astype(np.float64)
        else:
            h = _act(h, layer)
        h = h.astype(np.float32)
    d = spec["latent_dim"]
    return h[:d], h[d:]
