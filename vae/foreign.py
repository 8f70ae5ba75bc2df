"""A VAE written in its user's own code, stored so that VAE Lab runs it without importing that code.

A tracked run (``vae.track``) holds two ONNX programs, ``encode.onnx`` (images -> mu, log-variance) and
``decode.onnx`` (latents -> what the user's decoder returns, as images), exported once without their weights, and
the weights in ``model.safetensors`` under their state-dict names, rewritten at every ``log``. The format was chosen
by measurement (README, "Debug your own VAE"): it is the only candidate whose loader runs nothing from the file
(torch.export and TorchScript loaders ran code from crafted files), and onnxruntime decodes faster than the user's
own eager module.

Loading (:func:`read_program`) parses the protobuf, refuses anything outside an allowlist of standard operators,
any control flow and any reference to external data (a session made from bytes would read such a file from the
process's folder), puts the weights back in memory and hands bytes to onnxruntime: nothing is unpickled and no
path named by the file is opened. Running a stored program is still running a stranger's program in a C++ runtime,
so a server for a class refuses such runs from an upload unless its operator allows them (``ui.settings``).

:class:`ForeignVAE` implements the model contract (``vae.models.LatentModel``) on the two programs, so every page
and tool takes it like one of VAE Lab's own models.
"""
from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from .config import ModelConfig, RunConfig

ENCODE, DECODE = "encode.onnx", "decode.onnx"
MAX_PROGRAM_BYTES = 32 << 20      # a program holds no weights: a VAE's graph is a few KB to a few hundred
OUTPUTS = ("logits", "probs", "mean")
#: What exporters write for a VAE; no control flow, no operator outside the standard domain.
ALLOWED_OPS = frozenset({
    "Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Neg", "Pow", "Sqrt", "Relu", "LeakyRelu", "Elu", "Selu", "Gelu",
    "Sigmoid", "HardSigmoid", "Tanh", "Softplus", "Exp", "Log", "Erf", "Abs", "Clip", "Min", "Max", "Conv",
    "ConvTranspose", "InstanceNormalization", "BatchNormalization", "LayerNormalization", "GroupNormalization",
    "ReduceMean", "ReduceSum", "Resize", "Upsample", "MaxPool", "AveragePool", "GlobalAveragePool", "Pad", "Reshape",
    "Flatten", "Transpose", "Concat", "Split", "Slice", "Squeeze", "Unsqueeze", "Shape", "Gather", "Cast", "CastLike",
    "Identity", "Dropout", "Constant", "ConstantOfShape", "Range", "Expand", "Tile", "Where", "Equal", "Less",
    "Greater", "Not", "SplitToSequence", "SequenceAt", "Softmax", "LogSoftmax"})
_EPS = 1e-6


class ProgramError(ValueError):
    """A stored program was refused; the message is one line."""


class Part(nn.Module):
    """One half of a user's VAE as a module to export: ``fn`` (their ``encode`` or ``decode``) on their model, with
    the input and outputs put into VAE Lab's layouts (images [B, C, H, W] in, mu/log-variance [B, D] out; latents
    [B, D] in, images [B, C, H, W] out). Holding the model makes its parameters the graph's weights."""

    def __init__(self, model: nn.Module, fn: Callable, kind: str, image_shape: tuple[int, int, int],
                 flatten_input: bool = False):
        super().__init__()
        self.model, self.fn, self.kind, self.image_shape, self.flatten_input = model, fn, kind, image_shape, \
            flatten_input

    def forward(self, a: torch.Tensor):
        if self.kind == "encode":
            mu, logvar = self.fn(a.flatten(1) if self.flatten_input else a)
            return mu.flatten(1), logvar.flatten(1)
        out = self.fn(a)
        return out.reshape(out.shape[0], *self.image_shape)


def export(part: Part, example: torch.Tensor, path: Path) -> dict[str, torch.Tensor]:
    """Export ``part`` as an ONNX program at ``path`` (without its weights, which the caller writes), and return
    the weights the program needs, by state-dict name. ``example`` must have a batch of 2 or more (a batch of 1
    fixes the batch in the graph). Exported as torch.onnx does by default (torch.export, non-strict), and again with
    a strict export when that left the batch a constant (a model that writes ``len(z)`` into a shape); if it is
    still one, the program keeps it and ``ForeignVAE`` feeds it batches of that size. ``optimize=False`` keeps every
    weight an initializer under its state-dict name, so later ``log`` calls write only new weights.
    One-line ``ProgramError`` with the exporter's reason when it cannot export."""
    import onnx  # noqa: F401  (the exporter needs it)
    part.training = False                                    # the wrapper only: the model's modes are the caller's
    try:
        proto = _to_onnx(part, example, strict=False)
        if fixed_batch(proto) is not None:
            try:
                proto = _to_onnx(part, example, strict=True)
            except Exception:                                 # keep the fixed-batch program
                pass
    except Exception as e:                                   # the exporter's own error types vary by version
        raise ProgramError(f"the model's {part.kind} cannot be exported to ONNX ({_export_reason(e)})") from None
    state = {k: v.detach() for k, v in part.state_dict().items()}
    weights = {t.name: state[t.name] for t in proto.graph.initializer if t.name in state}
    keep = [t for t in proto.graph.initializer if t.name not in state]
    del proto.graph.initializer[:]
    proto.graph.initializer.extend(keep)
    from .util import atomic_write_bytes
    atomic_write_bytes(path, proto.SerializeToString())
    return weights


def _to_onnx(part: Part, example: torch.Tensor, *, strict: bool):
    names = (["x"], ["mu", "logvar"]) if part.kind == "encode" else (["z"], ["out"])
    batch = torch.export.Dim("batch", min=1, max=65536)
    with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        model = torch.export.export(part, (example,), dynamic_shapes=({0: batch},), strict=True) if strict else part
        prog = torch.onnx.export(model, (example,), None, dynamo=True, input_names=names[0], output_names=names[1],
                                 dynamic_shapes=None if strict else ({0: batch},), external_data=False,
                                 optimize=False)
    return prog.model_proto


def fixed_batch(proto) -> int | None:
    """The batch size a program's first input is fixed to, or None when it takes any batch."""
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    return int(dims[0].dim_value) if dims and dims[0].HasField("dim_value") else None


def _export_reason(e: BaseException) -> str:
    """The one line of an exporter's error that says why (its summary's exception, else its first line)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    for i, ln in enumerate(lines):
        if ln.startswith("## Exception summary") and i + 1 < len(lines):
            return lines[i + 1][:300]
    return f"{type(e).__name__}: {lines[0][:200] if lines else ''}"


def _all_tensors(graph) -> list:
    """Every tensor stored in a graph: initializers and attribute tensors, subgraphs included."""
    out, stack = list(graph.initializer), list(graph.node)
    while stack:
        n = stack.pop()
        for a in n.attribute:
            if a.HasField("t"):
                out.append(a.t)
            out.extend(a.tensors)
            for g in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                out.extend(g.initializer)
                stack.extend(g.node)
    return out


def read_program(path: Path, weights: dict[str, np.ndarray]) -> bytes:
    """The program at ``path`` with ``weights`` put back, as bytes for onnxruntime, after the checks in the module
    docstring. Raises ``ProgramError`` with one line."""
    import onnx
    from onnx import numpy_helper
    try:
        size = path.stat().st_size
    except OSError:
        raise ProgramError(f"{path.parent.name}: missing {path.name}") from None
    if size > MAX_PROGRAM_BYTES:
        raise ProgramError(f"{path.name}: {size:,} bytes, over the {MAX_PROGRAM_BYTES:,}-byte limit for a program")
    try:
        model = onnx.load_model_from_string(path.read_bytes())      # protobuf only; never onnx.load(path)
    except Exception:
        raise ProgramError(f"{path.name}: not an ONNX program") from None
    g = model.graph
    ops = {(n.domain, n.op_type) for n in g.node}
    bad = sorted(op for dom, op in ops if dom not in ("", "ai.onnx") or op not in ALLOWED_OPS)
    if bad or model.functions:
        raise ProgramError(f"{path.name}: operators outside what a VAE needs: {', '.join(bad[:5]) or 'functions'}")
    for t in _all_tensors(g):
        if t.data_location == onnx.TensorProto.EXTERNAL or len(t.external_data):
            raise ProgramError(f"{path.name}: tensor {t.name!r} points at external data; only the run's "
                               "model.safetensors is read")
    taken = {i.name for i in g.input} | {t.name for t in g.initializer}
    used = {name for n in g.node for name in n.input}
    needed = {name: weights[name] for name in used - taken - {o for n in g.node for o in n.output}
              if name in weights}
    missing = sorted(used - taken - {o for n in g.node for o in n.output} - set(needed) - {""})
    if missing:
        raise ProgramError(f"{path.name}: model.safetensors lacks the weights {missing[:3]}")
    g.initializer.extend(numpy_helper.from_array(np.ascontiguousarray(a), k) for k, a in needed.items())
    return model.SerializeToString()


def program_weights(path: Path) -> set[str]:
    """The weight names a stored program expects (inputs of its nodes that nothing in it defines)."""
    import onnx
    g = onnx.load_model_from_string(path.read_bytes()).graph
    defined = {i.name for i in g.input} | {t.name for t in g.initializer} | {o for n in g.node for o in n.output}
    return {name for n in g.node for name in n.input if name and name not in defined}


def session(program: bytes, threads: int = 1):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    try:
        return ort.InferenceSession(program, so, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise ProgramError(f"onnxruntime refused the program ({str(e).splitlines()[0][:200]})") from None


class ForeignVAE(nn.Module):
    """The model contract on a tracked run's two stored programs (run with onnxruntime on the CPU).

    ``cfg`` is the run's ``ModelConfig`` (arch ``foreign``: shapes and likelihood), ``output`` what the stored
    decoder returns (``logits``, ``probs`` or ``mean``); ``decode`` turns it into logits as the contract asks
    (the logit of a probability or mean, clamped to 1e-6..1-1e-6). The weights are this module's state dict
    (``load_state_dict`` after construction, as for any run), named as in ``model.safetensors``."""

    def __init__(self, cfg: ModelConfig, output: str, folder: Path, shapes: dict[str, tuple[int, ...]]):
        super().__init__()
        if output not in OUTPUTS:
            raise ValueError(f"tracked.output must be one of {list(OUTPUTS)}, got {output!r}")
        self.cfg, self.output, self.folder = cfg, output, Path(folder)
        self._weights = {k: torch.zeros(s) for k, s in shapes.items()}
        self._sessions: dict[str, Any] = {}
        self.anchor = nn.Parameter(torch.zeros(0), requires_grad=False)   # the CPU device, for the tools' lookups

    # state: the programs' weights, by name (names hold dots, so they are not submodules' parameters)
    def state_dict(self, *args, **kwargs) -> dict[str, torch.Tensor]:
        return dict(self._weights)

    def load_state_dict(self, state: dict[str, torch.Tensor], strict: bool = True, assign: bool = False):
        if set(state) != set(self._weights):
            raise ValueError("the weights do not match the stored programs")
        self._weights = {k: v.detach().to(torch.float32).cpu().contiguous() for k, v in state.items()}
        self._sessions.clear()
        return None

    def _run(self, part: str, inputs: dict[str, np.ndarray] | None) -> list[np.ndarray]:
        if part not in self._sessions:
            arrays = {k: v.numpy() for k, v in self._weights.items()}
            self._sessions[part] = session(read_program(self.folder / (ENCODE if part == "encode" else DECODE),
                                                        arrays))
        if inputs is None:
            return []
        sess = self._sessions[part]
        fixed = sess.get_inputs()[0].shape[0]
        (name, a), = inputs.items()
        if not isinstance(fixed, int) or fixed == len(a):
            return sess.run(None, inputs)
        parts = []                                             # a program whose batch the export left fixed
        for i in range(0, len(a), fixed):
            chunk = a[i:i + fixed]
            pad = np.concatenate([chunk, np.repeat(chunk[-1:], fixed - len(chunk), 0)]) if len(chunk) < fixed else chunk
            parts.append([o[:len(chunk)] for o in sess.run(None, {name: pad})])
        return [np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))]

    def open(self) -> "ForeignVAE":
        """Check and load both programs now (a bad program is then refused when the run is opened, in one line)."""
        self._run("encode", None)
        self._run("decode", None)
        return self

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x: [B, C, H, W] float 0..1 -> mu, logvar: [B, D]."""
        mu, logvar = self._run("encode", {"x": x.detach().float().cpu().numpy()})
        return torch.from_numpy(mu).to(x.device), torch.from_numpy(logvar).to(x.device)

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """z: [B, D] -> logits [B, C, H, W]."""
        out = torch.from_numpy(self._run("decode", {"z": z.detach().float().cpu().numpy()})[0]).to(z.device)
        return out if self.output == "logits" else torch.logit(out.clamp(_EPS, 1 - _EPS))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None, k: int = 1, eps: torch.Tensor | None = None):
        raise NotImplementedError("a tracked model is not trained by VAE Lab (its user's own loop trains it)")

    def likelihood_sigma(self) -> torch.Tensor | None:
        return torch.full((self.cfg.channels,), self.cfg.gaussian_sigma) if self.cfg.likelihood == "gaussian" \
            else None

    def sigma(self) -> torch.Tensor:
        return torch.full((self.cfg.channels,), self.cfg.gaussian_sigma)

    def prior_params(self) -> None:
        return None                                            # N(0, I): what a VAE's KL term assumes

    @torch.no_grad()
    def sample_prior(self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0
                     ) -> torch.Tensor:
        return torch.randn((n, self.cfg.latent_dim), generator=generator) * temperature

    @property
    def pseudo_inputs(self) -> None:
        return None


def weight_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """The tensors a safetensors file declares (name -> shape), read from its header alone."""
    from .safejson import load_json
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        if not 0 < n <= 16 << 20:
            raise ProgramError(f"{path.name}: not a safetensors file")
        header = load_json(f.read(n), path.name, max_bytes=16 << 20)
    if not isinstance(header, dict):
        raise ProgramError(f"{path.name}: not a safetensors file")
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        shape = v.get("shape") if isinstance(v, dict) else None
        if not (isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)):
            raise ProgramError(f"{path.name}: tensor {k!r} has no valid shape")
        out[k] = tuple(shape)
    return out


def build_foreign(config: RunConfig, folder: Path | None = None) -> ForeignVAE:
    """The model of a tracked run folder (``vae.kinds.BUILDERS["tracked"]``): its programs' weights as declared by
    ``model.safetensors``; the weights themselves are loaded by ``vae.runs.load_run`` as for any run."""
    if folder is None:
        raise ValueError("a tracked run's model lives in its run folder")
    folder = Path(folder)
    shapes = weight_shapes(folder / "model.safetensors") if (folder / "model.safetensors").is_file() else {}
    return ForeignVAE(config.model, config.tracked.output, folder, shapes)
