"""The chip's integer arithmetic in torch: a differentiable twin of :func:`reference_step`.

:class:`ChipSim` runs a compiled :class:`~snn.backends.chip.program.Program` on float64 tensors
that hold integers (every value below 2^53, so sums are exact): its forward pass equals
:func:`~snn.backends.chip.reference.reference_step` bit for bit - logits and membranes
(``tests/chip/test_simulate.py``).  Its backward pass is what quantisation-aware fine-tuning
needs (:mod:`snn.backends.chip.finetune`):

* with ``model=`` the weights and biases are not the program's stored integers but are quantised
  *live* from the float model's parameters, with the program's scales and weight exponents:
  ``w_q = clip(round(W_eff * u_src * 2^k / S_dst))`` where ``W_eff`` is the folded weight
  (BatchNorm folded, RepConv collapsed, exactly as :mod:`~snn.backends.chip.lower` folds it,
  including its float32 rounding); for the parameters the compiled program was made from, these are
  the program's integers;
* rounding, floor shifts and saturation pass the gradient straight through (straight-through
  estimator); a spike ``h >= theta`` takes the float model's sigmoid surrogate on
  ``(h - theta) * membrane_scale / V_th`` (the same argument scale as the float neuron).

State: a dict of membranes ``[B, C, H, W]`` (float64 integers) keyed like the program's.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ...neurons import SigmoidSurrogate
from .program import Program


class _Round(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):  # type: ignore[override]
        return torch.round(x)

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        return g


class _Floor(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):  # type: ignore[override]
        return torch.floor(x)

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        return g


class _Clamp(torch.autograd.Function):
    """Saturation with the gradient passed straight through (saturations are rare and counted)."""

    @staticmethod
    def forward(ctx, x, lo, hi):  # type: ignore[override]
        return x.clamp(lo, hi)

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        return g, None, None


def round_ste(x: Tensor) -> Tensor:
    return _Round.apply(x)


def shr(x: Tensor, k: Tensor, half_up: bool, exact: bool = False) -> Tensor:
    """``x >> k`` on integer-valued float64 (``k`` broadcastable): floor or half-up; a negative ``k``
    (a signed weight exponent) is ``x * 2^-k``, exact, nothing to round (``exact`` changes nothing there)."""
    p = torch.pow(2.0, k.to(torch.float64))
    if exact:
        return x / p
    if half_up:
        x = x + torch.where(k > 0, p / 2, torch.zeros_like(p))
    return _Floor.apply(x / p)


def near_threshold(h: Tensor, theta: Tensor, unit: Tensor, width: float) -> Tensor:
    """Mean over neurons of ``relu(1 - |h - theta| * unit / width)``: 1 for a membrane on its
    threshold, falling linearly to 0 at ``width`` (in units of ``V_th``: ``unit`` turns membrane
    units into fractions of the threshold).  The margin loss of fine-tuning: a membrane within the
    rounding error of its threshold spikes on one form and not the other, and that flip spreads."""
    return torch.relu(1.0 - (h - theta).abs() * unit / float(width)).mean()


def saturate(x: Tensor, bits: int) -> Tensor:
    lim = float((1 << (bits - 1)) - 1)
    return _Clamp.apply(x, -lim - 1, lim)


# ---------------------------------------------------------------------------- live weights
def _f32(t: Tensor) -> Tensor:
    """The float32 rounding the folding functions apply (their output convs are float32)."""
    return t.float().double()


def _conv_bn(conv, bn) -> Tuple[Tensor, Tensor]:
    from snn.compile.fold import _bn_affine

    s, t = _bn_affine(bn)
    w = conv.weight.double()
    b = conv.bias.double() if conv.bias is not None else torch.zeros_like(s)
    w = _f32(w * s.view((-1,) + (1,) * (w.dim() - 1)))
    if w.dim() == 3:
        w = w[..., None]
    return w, _f32(b * s + t)


def _repconv(rep, bn) -> Tuple[Tensor, Tensor]:
    from snn.compile.fold import _repconv_terms
    from snn.models import RepConv

    if not isinstance(rep, RepConv):  # a dense attention conv (attn_conv="dense")
        return _conv_bn(rep, bn)
    a, s1, b1, d, p, s2, b2 = _repconv_terms(rep, bn)
    w = torch.einsum("oc,ckl,ci->oikl", p * s2[:, None], d, s1[:, None] * a)
    bias = s2 * (p @ (b1 * d.sum((1, 2)))) + b2
    return _f32(w), _f32(bias)


def live_weights(model) -> Dict[str, Callable[[], Tuple[Tensor, Tensor]]]:
    """``{conv op name: () -> (W_eff [Co, Ci/g, k, k], bias [Co])}`` in float64, differentiable in
    the model's parameters; the names and values are those of :func:`~snn.backends.chip.lower.lower`."""
    from ...models.blocks import ConvBlock

    out: Dict[str, Callable] = {}
    for stage in ("downsample1_1", "ConvBlock1_1", "downsample1_2", "ConvBlock1_2", "downsample2", "ConvBlock2_1",
                  "ConvBlock2_2", "downsample3", "block3", "downsample4", "block4"):
        mod = getattr(model, stage)
        if not isinstance(mod, torch.nn.ModuleList):
            out[f"{stage}.encode_conv"] = (lambda m=mod: _conv_bn(m.encode_conv, m.encode_bn))
            continue
        for i, blk in enumerate(mod):
            n = f"{stage}.{i}"
            if isinstance(blk, ConvBlock):
                sep = blk.Conv
                out[f"{n}.Conv.pwconv1"] = lambda s=sep: _conv_bn(s.pwconv1, s.bn1)
                out[f"{n}.Conv.dwconv"] = lambda s=sep: (s.dwconv.weight.double(),
                                                         torch.zeros(s.dwconv.weight.shape[0], dtype=torch.float64))
                out[f"{n}.Conv.pwconv2"] = lambda s=sep: _conv_bn(s.pwconv2, s.bn2)
                out[f"{n}.conv1"] = lambda b=blk: _conv_bn(b.conv1, b.bn1)
                out[f"{n}.conv2"] = lambda b=blk: _conv_bn(b.conv2, b.bn2)
            else:
                a, mlp = blk.attn, blk.mlp

                def qkv(a=a):
                    parts = [_repconv(s[0], s[1]) for s in (a.q_conv, a.k_conv, a.v_conv)]
                    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

                out[f"{n}.attn.qkv_conv"] = qkv
                out[f"{n}.attn.proj_conv"] = lambda a=a: _repconv(a.proj_conv[0], a.proj_conv[1])
                out[f"{n}.mlp.fc1_conv"] = lambda m=mlp: _conv_bn(m.fc1_conv, m.fc1_bn)
                out[f"{n}.mlp.fc2_conv"] = lambda m=mlp: _conv_bn(m.fc2_conv, m.fc2_bn)

    def head():
        if model.head_kd is not None:
            w = (model.head.weight.double() + model.head_kd.weight.double()) / 2
            b = (model.head.bias.double() + model.head_kd.bias.double()) / 2
        else:
            w, b = model.head.weight.double(), model.head.bias.double()
        return w[:, :, None, None], b

    out["head"] = head
    return out


# ---------------------------------------------------------------------------- the twin
#: roundings ChipSim can leave out (``exact=``), to find which one moves the labels: the input
#: table (the float normalisation instead), weight and bias rounding, the weight-exponent shifts,
#: the membrane's ``>> 1``, the thresholds' ``ceil`` and the head's pooling shift.
EXACT = ("input", "weights", "bias", "shift", "membrane", "threshold", "pool")


class ChipSim:
    """Runs ``program`` in torch float64 integers; ``model``: quantise its live weights instead of the
    program's stored ones (for fine-tuning; the program supplies scales, exponents, thresholds)."""

    def __init__(self, program: Program, model=None, alpha: float = 4.0, exact=()):
        self.program = program
        unknown = set(exact) - set(EXACT)
        if unknown:
            raise ValueError(f"exact: unknown rounding {sorted(unknown)} (known: {EXACT})")
        self.exact = frozenset(exact)
        nb = program.profile.numerics
        self.half_up = nb.rounding == "half_up"
        self.nb = nb
        self.qmax = float((1 << (nb.weight_bits - 1)) - 1)
        self.alpha = alpha
        self.scales = {b: torch.tensor(v, dtype=torch.float64) for b, v in program.meta.get("scales", {}).items()}
        self.weights = live_weights(model) if model is not None else None
        if model is not None and getattr(model, "head_input", "spikes") != "spikes":
            raise ValueError("live weights: only a head on spikes is supported")
        self.lut = None
        self.const: Dict[str, dict] = {}
        for op in program.ops:
            a = {k: torch.from_numpy(np.asarray(v).astype(np.float64)) for k, v in op.arrays.items()}
            if op.kind == "lif":
                m_scale = self.scales.get(op.src, torch.ones(program.buffers[op.src][0], dtype=torch.float64))
                m_scale = m_scale / 2.0 ** int(op.attrs["in_shift"])
                a["vth_units"] = m_scale          # membrane units -> real, for the surrogate's argument
                a["vth_rel"] = m_scale            # membrane units -> fractions of V_th (the margin loss)
                if "v_threshold" in op.attrs:   # the float threshold in membrane units (exact="threshold")
                    vth = torch.tensor(op.attrs["v_threshold"], dtype=torch.float64)
                    a["theta_exact"] = vth / m_scale
                    a["vth_rel"] = m_scale / vth
            self.const[op.name] = a
        enc = program.meta.get("encoding")
        self.input_exact = None
        if enc is not None:  # the float normalisation in input-code units (exact="input")
            from .compile import normalise

            self.input_exact = normalise(np.arange(int(enc["clip"]) + 1), enc).double() / float(program.meta["input_step"])

    def quantised(self, op) -> Tuple[Tensor, Tensor, Tensor]:
        """``(w_q, b_q, k)`` of a conv op: stored, or quantised live from the model."""
        c = self.const[op.name]
        k = c["shift"]
        if self.weights is None:
            return c["weight"], c["bias"], k
        w, b = self.weights[op.name]()
        s_dst = self.scales[op.dst]
        s_src = self.scales[op.src]
        co, cig = w.shape[:2]
        g = int(op.attrs["groups"])
        group = torch.arange(co) // (co // g)
        u = s_src[group[:, None] * cig + torch.arange(cig)[None, :]]
        w_eff = w * u[:, :, None, None]
        wq = w_eff * (torch.pow(2.0, k) / s_dst)[:, None, None, None]
        if "weights" not in self.exact:
            wq = _Clamp.apply(round_ste(wq), -self.qmax, self.qmax)
        acc = float((1 << (self.nb.accumulator_bits - 1)) - 1)
        bq = b / s_dst if "bias" in self.exact else _Clamp.apply(round_ste(b / s_dst), -acc, acc)
        return wq, bq, k

    def init_state(self, batch: int) -> Dict[str, Tensor]:
        out = {}
        for op in self.program.ops:
            if op.kind == "lif":
                c, h, w = self.program.buffers[op.dst]
                out[op.attrs["state"]] = torch.zeros(batch, c, h, w, dtype=torch.float64)
        return out

    def quantise_all(self) -> Dict[str, Tuple[Tensor, Tensor, Tensor]]:
        """Every conv op's ``(w_q, b_q, k)``; quantise once per sequence (``weights=`` of :meth:`step`)."""
        return {op.name: self.quantised(op) for op in self.program.ops if op.kind == "conv"}

    def step(self, frame, state: Optional[Dict[str, Tensor]] = None, *, record: bool = False,
             weights: Optional[Dict[str, Tuple[Tensor, Tensor, Tensor]]] = None,
             margin: Optional[Tuple[float, list]] = None):
        """One step on integer counts ``frame [B, C, H, W]``: ``(logits, new state, spikes)``;
        logits in integer units (times ``program.logit_scale`` for the float model's units);
        ``spikes``: ``{lif op name: [B, C, H, W]}`` when ``record``.  ``margin=(width, terms)``:
        append each LIF op's :func:`near_threshold` term (differentiable) to the list ``terms``."""
        prog, nb = self.program, self.nb
        frame = torch.as_tensor(np.asarray(frame) if not isinstance(frame, Tensor) else frame)
        B = frame.shape[0]
        state = self.init_state(B) if state is None else state
        bufs: Dict[str, Tensor] = {}
        new: Dict[str, Tensor] = {}
        spikes: Dict[str, Tensor] = {}
        for op in prog.ops:
            c = self.const[op.name]
            if op.kind == "input":
                idx = frame.long().clamp(0, int(op.attrs["clip"]))
                bufs[op.dst] = (self.input_exact if "input" in self.exact else c["lut"])[idx]
                continue
            src = bufs[op.src]
            if op.kind == "conv":
                wq, bq, k = weights[op.name] if weights is not None else self.quantised(op)
                acc = F.conv2d(src, wq, None, int(op.attrs["stride"]), int(op.attrs["pad"]), 1, int(op.attrs["groups"]))
                val = shr(acc, k[None, :, None, None], self.half_up, "shift" in self.exact) + bq[None, :, None, None]
                if op.attrs["mode"] == "add":
                    val = val + bufs[op.dst]
                bufs[op.dst] = saturate(val, nb.accumulator_bits)
            elif op.kind == "lif":
                key = op.attrs["state"]
                x = src * float(2 ** int(op.attrs["in_shift"]))
                h = saturate(shr(state[key] + x, torch.tensor(1), self.half_up, "membrane" in self.exact),
                             nb.membrane_bits)
                theta = (c["theta_exact"] if "threshold" in self.exact else c["theta"])[None, :, None, None]
                if margin is not None:
                    margin[1].append(near_threshold(h, theta, c["vth_rel"][None, :, None, None], margin[0]))
                if torch.is_grad_enabled() and h.requires_grad:
                    # the surrogate sees the real membrane minus V_th, like the float neuron
                    spk = SigmoidSurrogate.apply((h - theta) * c["vth_units"][None, :, None, None], self.alpha)
                else:
                    spk = (h >= theta).to(h.dtype)
                new[key] = h * (1.0 - spk.detach())
                bufs[op.dst] = spk
                if record:
                    spikes[op.name] = spk.detach()
            elif op.kind == "attn":
                heads = int(op.attrs["heads"])
                C = src.shape[1] // 3
                d = C // heads
                N = src.shape[2] * src.shape[3]
                tok = src.reshape(B, 3, heads, d, N)
                m = torch.einsum("bhin,bhjn->bhij", tok[:, 1], tok[:, 2])
                y = torch.einsum("bhin,bhij->bhjn", tok[:, 0], m)
                bufs[op.dst] = saturate(y.reshape(B, C, *src.shape[2:]), nb.accumulator_bits)
            elif op.kind == "pool":
                tot = shr(src.sum((2, 3)), torch.tensor(int(op.attrs["shift"])), self.half_up, "pool" in self.exact)
                bufs[op.dst] = saturate(tot[:, :, None, None], nb.accumulator_bits)
            else:  # pragma: no cover - validate() rejects unknown kinds
                raise ValueError(op.kind)
        logits = bufs[prog.output].reshape(B, -1)
        return logits, new, spikes

    def run(self, frames, state=None, margin: Optional[Tuple[float, list]] = None):
        """``frames [T, B, C, H, W]`` counts -> per-step logits ``[T, B, classes]`` (integer units), state;
        ``margin``: as for :meth:`step`, every step's terms."""
        outs = []
        weights = self.quantise_all()
        for t in range(frames.shape[0]):
            lg, state, _ = self.step(frames[t], state, weights=weights, margin=margin)
            outs.append(lg)
        return torch.stack(outs), state
