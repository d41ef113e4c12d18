"""Snapping: a float model whose weights ARE the chip's integers.

``snap(checkpoint_or_model, profile=..., calibration=...)`` compiles the model, then writes back into
the unfolded model, for every conv the chip runs as a plain conv, the float weight and bias that the
program's integers stand for (:mod:`~snn.backends.chip.quantise`: ``w_q = round(W_eff * u_src * 2^k /
S_dst)``, ``b_q = round(b / S_dst)``, so ``W := w_q * S_dst / (u_src * 2^k)``, ``b := b_q * S_dst``):

* conv -> BatchNorm: the conv weight becomes ``W / s`` (``s = gamma / sqrt(var + eps)``), its bias (if
  any) 0, the BN's running mean 0 and its shift ``beta = b``, so that folding (and the float model's
  ``bn(conv(x))``) gives ``W`` and ``b`` up to float32 rounding;
* the depthwise convs (no BN, no bias) take ``W``; the head (mean of ``head`` and ``head_kd``) gives
  both linears ``W`` and ``b``;
* the attention's RepConvs (Q, K, V, projection) are NOT snapped: the chip collapses each into one
  dense 3x3 kernel, and a RepConv (1x1 -> depthwise 3x3 -> 1x1 with C channels inside) cannot
  express an arbitrary dense kernel (``9 C^2`` values from ``2 C^2 + 9 C`` parameters) - their
  weights keep their rounding (listed in the record under ``unsnapped``).

The program's choices (the scale of every buffer, the weight exponents, the LIF input shifts and
the pooling shift) are stored with the snapped model as *pins* (``extra["chip_snap"]["pins"]``):
compiling the snapped checkpoint for the same numerics and input encoding reuses them (calibration
on a changed model would move the scales off the grid the weights were snapped to), and so gives
the same program, integer for integer (:func:`same_program`; ``SnapResult.recompile_differences``).
A model changed after snapping (fine-tuned) is off its grid: :func:`~snn.backends.chip.compile.compile`
then ignores the pins and derives the scales as usual.

What stays between the snapped float model and the chip: the floor of the weight-exponent shifts
(sums finer than the residual stream), the membrane's ``>> 1``, the input table's codes of
``log1p``, the pooling shift and the RepConvs' rounding (``docs/chip.md``).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import os
from typing import Any, Callable, Dict, List, Tuple

import numpy as np
import torch

from .errors import CompileError
from .pins import pins_for, pins_of  # noqa: F401 (public here too)
from .profile import load_profile
from .program import Program

SNAP_VERSION = 1


def grid_values(program: Program) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """``{conv op: (W [Co, Ci/g, k, k], b [Co])}`` float64: the real weights and biases the
    program's integers stand for (``w_q * S_dst / (u_src * 2^k)``, ``b_q * S_dst``)."""
    from .quantise import _src_scale_matrix

    scales = {b: np.asarray(v, np.float64) for b, v in program.meta["scales"].items()}
    out = {}
    for op in program.ops:
        if op.kind != "conv":
            continue
        s = scales[op.dst]
        u = _src_scale_matrix(op, scales[op.src])
        k = op.arrays["shift"].astype(np.float64)
        wq = op.arrays["weight"].astype(np.float64)
        w = wq * (s / 2.0 ** k)[:, None, None, None] / u[:, :, None, None]
        out[op.name] = (w, op.arrays["bias"].astype(np.float64) * s)
    return out


# ---------------------------------------------------------------------------- writing back
def _set_conv_bn_scaled(name: str, conv, bn) -> Callable[[np.ndarray, np.ndarray], None]:
    def put(w: np.ndarray, b: np.ndarray) -> None:
        if not getattr(bn, "affine", False) or bn.running_var is None:
            raise CompileError(name, "a BatchNorm without affine parameters and running statistics cannot be snapped")
        s = (bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)).numpy()
        wt = torch.from_numpy(w)
        if conv.weight.dim() == 3:
            wt = wt[..., 0]
        st = torch.from_numpy(s).view((-1,) + (1,) * (wt.dim() - 1))
        conv.weight.copy_(torch.where(st != 0, wt / torch.where(st != 0, st, torch.ones_like(st)), 0.0).float())
        if conv.bias is not None:
            conv.bias.zero_()
        bn.running_mean.zero_()
        bn.bias.copy_(torch.from_numpy(b).float())
    return put


#: a BatchNorm running variance whose ``var + eps`` is 1.0 in float32 and float64 rounding for the
#: default eps (1e-5): with weight 1 and mean 0 the BN is exactly ``x + beta`` (``identity_bn``)
def _unit_var(eps: float) -> float:
    v = np.float32(1.0 - eps)
    for cand in (v, np.nextafter(v, np.float32(1)), np.nextafter(v, np.float32(0))):
        if np.float32(cand) + np.float32(eps) == np.float32(1.0):
            return float(cand)
    raise CompileError("BatchNorm", f"no float32 variance makes var + eps == 1 for eps {eps}")


def _set_conv_identity_bn(name: str, conv, bn) -> Callable[[np.ndarray, np.ndarray], None]:
    """Exact grid: the conv takes ``W`` itself and its BN becomes ``x + b`` (weight 1, mean 0,
    ``var + eps == 1`` in float32), so that the float model computes ``W * x + b`` with no
    rounding of its own (``W``, ``b`` are powers of two times integers)."""
    def put(w: np.ndarray, b: np.ndarray) -> None:
        if not getattr(bn, "affine", False) or bn.running_var is None:
            raise CompileError(name, "a BatchNorm without affine parameters and running statistics cannot be snapped")
        wt = torch.from_numpy(w)
        if conv.weight.dim() == 3:
            wt = wt[..., 0]
        conv.weight.copy_(wt.reshape(conv.weight.shape).float())
        if conv.bias is not None:
            conv.bias.zero_()
        bn.weight.fill_(1.0)
        bn.running_mean.zero_()
        bn.running_var.fill_(_unit_var(bn.eps))
        bn.bias.copy_(torch.from_numpy(b).float())
    return put


def _set_split(parts) -> Callable[[np.ndarray, np.ndarray], None]:
    """One fused op (Q/K/V) into its convs: rows ``[i C, (i + 1) C)`` to setter ``i``."""
    def put(w: np.ndarray, b: np.ndarray) -> None:
        n = w.shape[0] // len(parts)
        for i, p in enumerate(parts):
            p(w[i * n:(i + 1) * n], b[i * n:(i + 1) * n])
    return put


def _set_plain(name: str, conv) -> Callable[[np.ndarray, np.ndarray], None]:
    def put(w: np.ndarray, b: np.ndarray) -> None:
        if np.any(b != 0) and conv.bias is None:
            raise CompileError(name, "the program has a bias for a conv without one")
        conv.weight.copy_(torch.from_numpy(w).reshape(conv.weight.shape).float())
        if conv.bias is not None:
            conv.bias.copy_(torch.from_numpy(b).float())
    return put


def _set_head(model, kind: str) -> Callable[[np.ndarray, np.ndarray], None]:
    both = model.head_kd is not None and getattr(model, "head_input", "spikes") == "spikes"

    def put(w: np.ndarray, b: np.ndarray) -> None:
        w2 = torch.from_numpy(w[:, :, 0, 0]).float()
        b2 = torch.from_numpy(b).float()
        if both:  # the chip's head is the mean of the two: both become it
            lins = [model.head, model.head_kd]
        else:  # head and head_kd lowered apart, each halved when both exist
            lins = [model.head if kind == "head" else model.head_kd]
            if model.head_kd is not None:
                w2, b2 = w2 * 2, b2 * 2
        for lin in lins:
            lin.weight.copy_(w2)
            lin.bias.copy_(b2)
    return put


def setters(model, exact: bool = False) -> Tuple[Dict[str, Callable], List[str]]:
    """``({conv op name: put(W, b)}, [conv ops that cannot be snapped])`` for an unfolded
    Meta-SpikeFormer, with the op names of :func:`~snn.backends.chip.lower.lower`.  ``exact``: every
    BN becomes ``x + b`` (:func:`_set_conv_identity_bn`) and dense attention convs are snapped too."""
    from ...models import RepConv
    from ...models.blocks import ConvBlock
    from ...models.metaspikeformer import STAGES

    out: Dict[str, Callable] = {}
    skipped: List[str] = []
    _set_conv_bn = _set_conv_identity_bn if exact else _set_conv_bn_scaled
    for stage in STAGES:
        mod = getattr(model, stage)
        if not isinstance(mod, torch.nn.ModuleList):
            out[f"{stage}.encode_conv"] = _set_conv_bn(f"{stage}.encode_conv", mod.encode_conv, mod.encode_bn)
            continue
        for i, blk in enumerate(mod):
            n = f"{stage}.{i}"
            if isinstance(blk, ConvBlock):
                sep = blk.Conv
                out[f"{n}.Conv.pwconv1"] = _set_conv_bn(f"{n}.Conv.pwconv1", sep.pwconv1, sep.bn1)
                out[f"{n}.Conv.dwconv"] = _set_plain(f"{n}.Conv.dwconv", sep.dwconv)
                out[f"{n}.Conv.pwconv2"] = _set_conv_bn(f"{n}.Conv.pwconv2", sep.pwconv2, sep.bn2)
                out[f"{n}.conv1"] = _set_conv_bn(f"{n}.conv1", blk.conv1, blk.bn1)
                out[f"{n}.conv2"] = _set_conv_bn(f"{n}.conv2", blk.conv2, blk.bn2)
            else:
                mlp, a = blk.mlp, blk.attn
                if isinstance(a.q_conv[0], RepConv):
                    skipped += [f"{n}.attn.qkv_conv", f"{n}.attn.proj_conv"]
                else:
                    out[f"{n}.attn.qkv_conv"] = _set_split([_set_conv_bn(f"{n}.attn.{q}_conv", getattr(a, f"{q}_conv")[0],
                                                                         getattr(a, f"{q}_conv")[1]) for q in "qkv"])
                    out[f"{n}.attn.proj_conv"] = _set_conv_bn(f"{n}.attn.proj_conv", a.proj_conv[0], a.proj_conv[1])
                out[f"{n}.mlp.fc1_conv"] = _set_conv_bn(f"{n}.mlp.fc1_conv", mlp.fc1_conv, mlp.fc1_bn)
                out[f"{n}.mlp.fc2_conv"] = _set_conv_bn(f"{n}.mlp.fc2_conv", mlp.fc2_conv, mlp.fc2_bn)
    out["head"] = _set_head(model, "head")
    out["head_kd"] = _set_head(model, "head_kd")
    return out, skipped


# ---------------------------------------------------------------------------- comparing programs
def same_program(a: Program, b: Program) -> List[str]:
    """The differences between two programs' integers and choices (empty: the same program)."""
    diffs = []
    if [(o.kind, o.name, o.src, o.dst) for o in a.ops] != [(o.kind, o.name, o.src, o.dst) for o in b.ops]:
        return ["the op lists differ"]
    for x, y in zip(a.ops, b.ops):
        if x.attrs != y.attrs:
            diffs.append(f"{x.name}: attributes differ")
        for k in x.arrays:
            if k not in y.arrays or x.arrays[k].shape != y.arrays[k].shape or not np.array_equal(x.arrays[k], y.arrays[k]):
                n = int(np.count_nonzero(x.arrays[k] != y.arrays[k])) if k in y.arrays and x.arrays[k].shape == y.arrays[k].shape else -1
                diffs.append(f"{x.name}.{k}: {n} entries differ")
    if a.buffers != b.buffers or a.output != b.output:
        diffs.append("buffers differ")
    if a.logit_scale != b.logit_scale:
        diffs.append("logit scale differs")
    if a.meta.get("scales") != b.meta.get("scales"):
        diffs.append("buffer scales differ")
    return diffs


# ---------------------------------------------------------------------------- snapping
@dataclasses.dataclass
class SnapResult:
    model: torch.nn.Module          # the snapped unfolded model (eval)
    meta: Dict[str, Any]            # the source's checkpoint metadata
    program: Program                # the program the weights were snapped to
    record: Dict[str, Any]          # extra["chip_snap"]: how it was made, the pins
    recompile_differences: List[str]  # same_program(program, compile(snapped)); empty = idempotent
    weight_change: Dict[str, float]   # per snapped op: max |W_snapped - W_source| / max |W_source|


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


#: exact grid: the thresholds move off every grid a neuron's input can lie on (by 2^-22, a
#: fraction of a float32 step near 1), so that no input held constant converges on a threshold
#: (float32 would round its way across it after ~20 steps; the chip's integers never do)
THRESHOLD_OFFSET = 2.0 ** -22


def _off_grid(v: float) -> float:
    return float(np.float32(np.round(v * 2.0 ** 20) / 2.0 ** 20 + THRESHOLD_OFFSET))


@torch.no_grad()
def exact_model(model):
    """The model a snap to the exact grid starts from, the same function in eval mode up to float
    rounding and a 2^-22 threshold move: dense attention convs (``attn_conv="dense"``: each RepConv
    -> BN becomes its collapsed 3x3 kernel -> BN ``x + b``) and thresholds off the input grids
    (:data:`THRESHOLD_OFFSET`)."""
    from ...compile import fold_attn_conv
    from ...models import RepConv, create_model
    from ...models.attention import SpikeDrivenSelfAttention

    rec = dict(getattr(model, "recipe", None) or {})
    args = dict(rec.get("args") or {})
    v_th = float(model.lif.v_threshold)
    attns = [(n, m) for n, m in model.named_modules() if isinstance(m, SpikeDrivenSelfAttention)]
    a_th = float(attns[0][1].attn_lif.v_threshold) if attns and attns[0][1].attn_lif is not None else 0.5
    new_args = dict(args, attn_conv="dense", v_threshold=_off_grid(v_th), attn_threshold=_off_grid(a_th))
    try:
        dense = create_model(rec.get("name"), **dict(new_args, T=model.T))
    except (KeyError, TypeError) as e:
        raise CompileError("model", f"cannot rebuild {rec.get('name')!r} with dense attention convs: {e}") from None
    dense.recipe = dict(rec, args=new_args)
    dense.input_size = getattr(model, "input_size", None)
    own = dense.state_dict()
    dense.load_state_dict({k: v for k, v in model.state_dict().items() if k in own and own[k].shape == v.shape},
                          strict=False)
    for (name, m), d in zip(attns, [m for m in dense.modules() if isinstance(m, SpikeDrivenSelfAttention)]):
        if not isinstance(m.q_conv[0], RepConv):
            continue
        for q in ("q", "k", "v", "proj"):
            c = fold_attn_conv(getattr(m, f"{q}_conv"))
            _set_conv_identity_bn(f"{name}.{q}_conv", getattr(d, f"{q}_conv")[0], getattr(d, f"{q}_conv")[1])(
                c.weight.double().numpy(), c.bias.double().numpy())
    return dense.eval()


def exact_encoding(encoding: Dict[str, Any], input_frac_bits: int) -> Dict[str, Any]:
    """The input encoding of a model snapped to the exact grid: ``log1p`` becomes ``qlog1p:N``
    (the input table the chip reads); the others are kept."""
    enc = dict(encoding)
    if enc["norm"] == "log1p":
        enc["norm"] = f"qlog1p:{int(input_frac_bits)}"
    return enc


def _exact_start(model, meta, input_size, encoding, sensor_size, input_frac_bits):
    """``(model, meta, input_size, encoding)`` a snap to the exact grid starts from: the model of
    :func:`exact_model`, its metadata saying so (args, the recipe's normalisation) and the input
    encoding of :func:`exact_encoding`."""
    from .compile import encoding_from_meta

    size = input_size or (meta.get("recipe") or {}).get("size") or meta.get("input_size")
    if size is None:
        raise CompileError("input", "the model does not say its input size; pass input_size=(W, H)")
    if encoding is None:
        encoding = encoding_from_meta(meta, tuple(size), sensor_size)
    encoding = exact_encoding(encoding, input_frac_bits)
    model = exact_model(model)
    meta = dict(meta, args=dict(model.recipe.get("args") or {}))
    if isinstance(meta.get("recipe"), dict):
        meta["recipe"] = dict(meta["recipe"], normalisation=encoding["norm"])
    return model, meta, tuple(size), encoding


@torch.no_grad()
def snap(model_or_checkpoint, *, profile="generic", calibration=None, sensor_size=None, input_size=None,
         encoding=None, input_frac_bits: int = 6) -> SnapResult:
    """Snap a Meta-SpikeFormer (or checkpoint path) to the program it compiles to (module docstring).

    The compile arguments are :func:`~snn.backends.chip.compile.compile`'s; use those the runtime
    uses (``eventpipe chip snap`` does: 2 synthetic training clips, the source's sensor size).

    A profile on the ``pow2`` scale grid (``exact``) snaps exactly: the attention convs become dense
    and its thresholds move off the input grids (:func:`exact_model`), every BN ``x + b``, a ``log1p`` input ``qlog1p:input_frac_bits``
    (:func:`exact_encoding`); the snapped float model then computes the chip's integers."""
    from .compile import compile as chip_compile, load_model
    from .lower import lower

    prof = load_profile(profile)
    model, meta = load_model(model_or_checkpoint)
    exact = prof.numerics.scale_grid == "pow2"
    size = input_size
    if exact:
        model, meta, size, encoding = _exact_start(model, meta, input_size, encoding, sensor_size, input_frac_bits)
    prog = chip_compile(model if exact else model_or_checkpoint, profile=prof, calibration=calibration,
                        sensor_size=sensor_size, input_size=size, encoding=encoding)
    snapped = copy.deepcopy(model).eval()
    put, skipped = setters(snapped, exact=exact)
    targets = grid_values(prog)
    source_w = {op.name: op.arrays["weight"] for op in lower(model.eval(), tuple(prog.meta["input_size"])).ops
                if op.kind == "conv"}
    done, change = [], {}
    for name, (w, b) in targets.items():
        if name in skipped:
            continue
        if name not in put:
            raise CompileError(name, "no parameter to snap this conv into")
        put[name](w, b)
        done.append(name)
        ref = np.abs(source_w[name]).max()
        change[name] = float(np.abs(w - source_w[name]).max() / ref) if ref > 0 else 0.0
    pins = pins_of(prog, done)
    again = chip_compile(snapped, profile=prof, calibration=calibration, input_size=tuple(prog.meta["input_size"]),
                         encoding=prog.meta["encoding"], pins=pins)
    diffs = same_program(prog, again)
    if again.meta.get("pinned") is not True:
        diffs.insert(0, f"the recompile did not take the pins: {again.meta.get('pinned')}")
    src = model_or_checkpoint if isinstance(model_or_checkpoint, (str, os.PathLike)) else None
    record = {
        "version": SNAP_VERSION,
        "made_by": "eventpipe chip snap (snn.backends.chip.snap.snap)",
        "profile": prof.name,
        "source": str(src) if src is not None else meta.get("source"),
        "source_sha256": file_sha256(src) if src is not None else None,
        "calibrated": bool(prog.meta.get("calibrated")),
        "snapped_ops": done,
        "unsnapped": [n for n in skipped if n in targets],
        "max_relative_weight_change": max(change.values(), default=0.0),
        "pins": pins,
    }
    if "chip_snap" in (meta.get("extra") or {}):
        record["previous"] = {k: v for k, v in meta["extra"]["chip_snap"].items() if k != "pins"}
    return SnapResult(snapped, meta, prog, record, diffs, change)


def save_snapped(path, result: SnapResult) -> None:
    """Write the snapped model with the source's metadata (recipe, class names, input size, every
    ``extra`` entry) and ``extra["chip_snap"]`` (how it was made, the pins)."""
    from ...checkpoint import save_checkpoint

    meta = result.meta
    extra = dict(meta.get("extra") or {})
    extra["chip_snap"] = result.record
    save_checkpoint(path, result.model, class_names=meta.get("class_names"), input_size=meta.get("input_size"),
                    extra=extra, recipe=meta.get("recipe"))
