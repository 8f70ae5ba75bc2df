"""A stored ONNX decoder (a tracked run's ``decode.onnx``) translated into the in-browser decoder's layer list
(``vae.export``'s spec), so the Sliders and the latent pad decode a foreign model in the browser as they do VAE Lab's.

The walk accepts a chain: every node's data input is the previous activation, other inputs are weights or
constants. Mapped: Gemm (alpha = beta = 1, transA = 0) and MatMul [+ Add] -> linear; Relu, Sigmoid, LeakyRelu, Elu
-> activations; x * Sigmoid(x) -> silu; Reshape / Flatten -> unflatten (or nothing, between flat shapes; target
shapes from ONNX shape inference); ConvTranspose k4 s2 p1 -> convtranspose2d; a top-left Slice -> crop; Identity /
Dropout -> nothing. Nodes computing only from constants (an unoptimised export's reshape targets) are evaluated
first with onnx.reference. Anything else raises ``UnsupportedForBrowser`` naming the operators (a decoder with
convolutions, normalisation or upsampling decodes on the server instead). As ``vae.export`` does, the output must be
an image [C, S, S]; for output "logits" a sigmoid is appended, for "probs"/"mean" the graph must end in one.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .export import SPEC_VERSION, UnsupportedForBrowser, b64_floats, spec_id

MAPPED = {"Gemm", "MatMul", "Add", "Relu", "Sigmoid", "Mul", "LeakyRelu", "Elu", "Identity", "Dropout", "Reshape",
          "Flatten", "Slice", "ConvTranspose", "Constant"}


def _attr(node, key: str, default: Any = None) -> Any:
    from onnx import helper
    for a in node.attribute:
        if a.name == key:
            return helper.get_attribute_value(a)
    return default


def _linear(w_oi: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    return {"type": "linear", "in": int(w_oi.shape[1]), "out": int(w_oi.shape[0]),
            "weight": b64_floats(np.asarray(w_oi, np.float32)), "bias": b64_floats(np.asarray(b, np.float32))}


class _Walk:
    """The chain of layers from the decoder's input to its output; ``self.shape`` is the activation's shape."""

    def __init__(self, model_bytes: bytes):
        import onnx
        from onnx import numpy_helper, shape_inference
        g = shape_inference.infer_shapes(onnx.load_model_from_string(model_bytes)).graph
        self.out_name = g.output[0].name
        self.weights = {t.name: numpy_helper.to_array(t).copy() for t in g.initializer}
        self.shapes = {vi.name: [d.dim_value if d.HasField("dim_value") else None
                                 for d in vi.type.tensor_type.shape.dim]
                       for vi in [*g.value_info, *g.output, *g.input]}
        if len(g.input) != 1:
            raise UnsupportedForBrowser(f"the decoder has {len(g.input)} inputs, the browser feeds one (z)")
        self.cur = g.input[0].name
        self.latent = self.shapes[self.cur][1]
        self.shape: tuple[int, ...] = (self.latent,)
        self.layers: list[dict[str, Any]] = []
        self.nodes = fold_constants(list(g.node), self.weights, self.shapes)
        unmapped = sorted({n.op_type for n in self.nodes} - MAPPED)
        if unmapped:
            raise UnsupportedForBrowser(f"no browser layer for {', '.join(unmapped)}")
        self.consumers: dict[str, list[int]] = {}
        for i, n in enumerate(self.nodes):
            for name in n.input:
                self.consumers.setdefault(name, []).append(i)
        self.skip: set[int] = set()
        self.pending_bias = False

    def run(self) -> None:
        ops = {"Gemm": self._gemm, "MatMul": self._matmul, "Relu": self._act, "Sigmoid": self._act,
               "LeakyRelu": self._act, "Elu": self._act, "Identity": self._noop, "Dropout": self._noop,
               "Reshape": self._reshape, "Flatten": self._reshape, "Slice": self._slice,
               "ConvTranspose": self._conv_t}
        for i, n in enumerate(self.nodes):
            if i in self.skip:
                continue
            where = f"node {n.name or i} ({n.op_type})"
            if n.op_type == "Add" and self.pending_bias:
                self._bias(n, where)
                continue
            self.pending_bias = False
            if [x for x in n.input if x and x not in self.weights] != [self.cur]:
                raise UnsupportedForBrowser(f"{where} does not continue the chain (inputs {list(n.input)})")
            if n.op_type not in ops:
                raise UnsupportedForBrowser(f"{where} has no browser layer")
            ops[n.op_type](i, n, where)
            self.cur = self.cur if i in self.skip else n.output[0]
        if self.cur != self.out_name:
            raise UnsupportedForBrowser("the chain does not end at the graph's output")

    def _noop(self, i, n, where) -> None:
        pass

    def _add_linear(self, w_oi: np.ndarray, b: np.ndarray) -> None:
        if self.shape != (w_oi.shape[1],):
            raise UnsupportedForBrowser(f"a linear layer expects {w_oi.shape[1]} inputs, gets shape {list(self.shape)}")
        self.layers.append(_linear(w_oi, b))
        self.shape = (int(w_oi.shape[0]),)

    def _gemm(self, i, n, where) -> None:
        if _attr(n, "transA", 0) or _attr(n, "alpha", 1.0) != 1.0 or _attr(n, "beta", 1.0) != 1.0:
            raise UnsupportedForBrowser(f"{where}: only alpha = beta = 1 and transA = 0 map to linear")
        w = self.weights[n.input[1]]
        w = w if _attr(n, "transB", 0) else w.T
        b = self.weights[n.input[2]] if len(n.input) > 2 and n.input[2] else np.zeros(w.shape[0], np.float32)
        self._add_linear(w, np.broadcast_to(b, (w.shape[0],)))

    def _matmul(self, i, n, where) -> None:
        w = self.weights.get(n.input[1])
        if w is None or w.ndim != 2:
            raise UnsupportedForBrowser(f"{where}: only a matrix product with a constant weight maps to linear")
        self._add_linear(w.T, np.zeros(w.shape[1], np.float32))
        self.pending_bias = True

    def _bias(self, n, where) -> None:
        other = [x for x in n.input if x != self.cur]
        if len(other) != 1 or other[0] not in self.weights:
            raise UnsupportedForBrowser(f"{where}: an Add after MatMul must add a constant bias")
        self.layers[-1]["bias"] = b64_floats(self.weights[other[0]].reshape(-1).astype(np.float32))
        self.pending_bias = False
        self.cur = n.output[0]

    def _act(self, i, n, where) -> None:
        op = n.op_type
        nxt = self.consumers.get(n.output[0], [])
        if op == "Sigmoid" and len(nxt) == 1 and self.nodes[nxt[0]].op_type == "Mul" \
                and set(self.nodes[nxt[0]].input) == {self.cur, n.output[0]}:       # x * sigmoid(x): SiLU
            self.layers.append({"type": "silu"})
            self.skip.add(nxt[0])
            self.cur = self.nodes[nxt[0]].output[0]
            self.skip.add(i)
            return
        if op == "LeakyRelu":
            self.layers.append({"type": "leaky_relu", "slope": float(_attr(n, "alpha", 0.01))})
        elif op == "Elu":
            self.layers.append({"type": "elu", "alpha": float(_attr(n, "alpha", 1.0))})
        else:
            self.layers.append({"type": op.lower()})

    def _reshape(self, i, n, where) -> None:
        target = self.shapes.get(n.output[0])
        if not target or any(d is None for d in target[1:]):
            raise UnsupportedForBrowser(f"{where}: the target shape is not known without the batch")
        tgt = tuple(int(d) for d in target[1:])
        if int(np.prod(tgt)) != int(np.prod(self.shape)):
            raise UnsupportedForBrowser(f"{where}: {list(self.shape)} cannot become {list(tgt)}")
        if len(tgt) == 3 and len(self.shape) == 1:
            self.layers.append({"type": "unflatten", "shape": list(tgt)})
        elif not (len(tgt) == 1 and len(self.shape) == 1):
            raise UnsupportedForBrowser(f"{where}: only [N] -> [C, H, W] reshapes run in the browser")
        self.shape = tgt

    def _slice(self, i, n, where) -> None:
        w = self.weights
        starts, ends = w.get(n.input[1]), w.get(n.input[2])
        axes = w.get(n.input[3]) if len(n.input) > 3 and n.input[3] else (None if starts is None
                                                                           else np.arange(len(starts)))
        steps = w.get(n.input[4]) if len(n.input) > 4 and n.input[4] else (None if starts is None
                                                                            else np.ones(len(starts), np.int64))
        if starts is None or ends is None or axes is None or steps is None or len(self.shape) != 3:
            raise UnsupportedForBrowser(f"{where}: only a constant top-left crop of an image maps to the browser")
        lim = {int(a) % 4: (int(b), int(e), int(st)) for a, b, e, st in zip(axes, starts, ends, steps)}
        if any(b != 0 or st != 1 for b, _, st in lim.values()) or set(lim) - {2, 3}:
            raise UnsupportedForBrowser(f"{where}: only a top-left crop of H and W maps to the browser")
        h, wd = (min(lim.get(ax, (0, self.shape[ax - 1], 1))[1], self.shape[ax - 1]) for ax in (2, 3))
        if (h, wd) != self.shape[1:]:
            if not (self.layers and self.layers[-1]["type"] == "_crop"):   # exporters slice H and W in two nodes
                self.layers.append({"type": "_crop"})
            self.layers[-1].update(h=h, w=wd)
            self.shape = (self.shape[0], h, wd)

    def _conv_t(self, i, n, where) -> None:
        ok = (list(_attr(n, "kernel_shape", [4, 4])) == [4, 4] and list(_attr(n, "strides", [1, 1])) == [2, 2]
              and list(_attr(n, "pads", [0, 0, 0, 0])) == [1, 1, 1, 1] and _attr(n, "group", 1) == 1
              and list(_attr(n, "dilations", [1, 1])) == [1, 1] and not any(_attr(n, "output_padding", []) or [])
              and _attr(n, "auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET"))
        if not ok or len(self.shape) != 3:
            raise UnsupportedForBrowser(f"{where}: only kernel 4, stride 2, padding 1 maps to the browser")
        w = self.weights[n.input[1]]
        b = self.weights[n.input[2]] if len(n.input) > 2 else np.zeros(w.shape[1], np.float32)
        self.layers.append({"type": "convtranspose2d", "in": int(w.shape[0]), "out": int(w.shape[1]), "k": 4,
                            "stride": 2, "pad": 1, "weight": b64_floats(w), "bias": b64_floats(b)})
        self.shape = (int(w.shape[1]), 2 * self.shape[1], 2 * self.shape[2])


def onnx_decoder_spec(model_bytes: bytes, channels: int, size: int, output: str) -> dict[str, Any]:
    """The in-browser spec of the ONNX decoder ``model_bytes`` (weights in it) for images [channels, size, size];
    ``UnsupportedForBrowser`` (one line) when it is not a chain of layers the browser runs."""
    walk = _Walk(model_bytes)
    walk.run()
    layers, shape = walk.layers, walk.shape
    for i, layer in enumerate(layers):
        if layer["type"] == "_crop":
            if layer["h"] != layer["w"]:
                raise UnsupportedForBrowser(f"a crop to {layer['h']} x {layer['w']}: the browser crops to a square")
            layers[i] = {"type": "crop", "size": int(layer["h"])}
    if shape == (channels * size * size,):
        layers.append({"type": "unflatten", "shape": [channels, size, size]})
        shape = (channels, size, size)
    if shape != (channels, size, size):
        raise UnsupportedForBrowser(f"the decoder ends with shape {list(shape)}, not the images' [{channels}, {size}, "
                                    f"{size}]")
    if output == "logits":
        layers.append({"type": "sigmoid"})
    elif not any(layer["type"] == "sigmoid" for layer in layers[-2:]):
        raise UnsupportedForBrowser(f"output {output!r} but the decoder does not end in a sigmoid")
    if len(layers) >= 2 and layers[-1]["type"] == "unflatten" and layers[-2]["type"] == "sigmoid":
        layers[-2], layers[-1] = layers[-1], layers[-2]          # vae.export's order: unflatten, then sigmoid
    spec = {"version": SPEC_VERSION, "latent_dim": int(walk.latent), "channels": channels, "image_size": size,
            "conditional": False, "num_classes": 0, "layers": layers}
    spec["id"] = spec_id(spec)
    return spec


def fold_constants(nodes: list, consts: dict, shapes: dict) -> list:
    """Evaluate (with onnx.reference, numpy only) every node whose inputs are all constants, as an unoptimised export
    computes reshape targets and slice bounds; returns the nodes left, ``consts`` gains their outputs. Shape(x) of an
    activation whose non-batch dims shape inference knows is folded with batch 1 (the browser decodes one latent at
    a time, and the walk takes reshape targets from shape inference, not from these constants)."""
    from onnx import helper, numpy_helper
    from onnx.reference import ReferenceEvaluator
    left = []
    for n in nodes:
        ins = [x for x in n.input if x]
        dims = shapes.get(ins[0]) if n.op_type == "Shape" and ins else None
        if dims and all(d is not None for d in dims[1:]):
            a = {x.name: helper.get_attribute_value(x) for x in n.attribute}
            full = np.asarray([1, *dims[1:]], np.int64)
            consts[n.output[0]] = full[a.get("start", 0):a.get("end", len(full))]
            continue
        if (n.op_type == "Constant" or ins and all(x in consts for x in ins)) and n.domain in ("", "ai.onnx"):
            g = helper.make_graph([n], "fold", [], [helper.make_tensor_value_info(o, 0, None) for o in n.output],
                                  initializer=[numpy_helper.from_array(np.asarray(consts[x]), x) for x in ins])
            outs = ReferenceEvaluator(helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])).run(None, {})
            consts.update(zip(n.output, outs))
        else:
            left.append(n)
    return left


def foreign_decoder_spec(model) -> dict[str, Any]:
    """The browser spec of a tracked run's model (``vae.foreign.ForeignVAE``): its stored decoder with its weights."""
    from .foreign import DECODE, read_program
    program = read_program(model.folder / DECODE, {k: v.numpy() for k, v in model.state_dict().items()})
    return onnx_decoder_spec(program, model.cfg.channels, model.cfg.image_size, model.output)
