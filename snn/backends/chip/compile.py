"""``compile(model_or_checkpoint, *, profile, calibration) -> Program``.

Steps: load (a checkpoint path) -> lower (fold BN and RepConv, see :mod:`.lower`) -> calibrate
(run the float model on a few batches of integer count frames, record the largest LIF input per
channel) -> quantise (:mod:`.quantise`).
"""

from __future__ import annotations

import math
import os
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple

import numpy as np
import torch

from ...neurons import LIFNode
from .errors import CompileError
from .lower import lower
from .pins import pins_for
from .profile import load_profile
from .program import Program
from .quantise import quantise
from .reach import warn_past_float32

#: how far (in integer steps) a pinned op's scaled weights may lie from their integers: float32
#: rounding of a snapped model is ~1e-5 steps; a model changed after snapping is far off
GRID_TOLERANCE = 1e-3

REPRESENTATION = {"log": "log1p", "log1p": "log1p", "counts": "counts", "binary": "binary"}


def encoding_from_meta(meta: Mapping[str, Any], input_size: Tuple[int, int], sensor_size=None) -> Dict[str, Any]:
    """The counts -> model input mapping the checkpoint was trained with: counts of the model-size
    frame (sum-pooled by ``f``), clipped, times ``1/f^2`` for mean pooling, then the normalisation.

    Reads the recipe (``meta["recipe"]``, version 2) or, for older files, ``meta["extra"]``.
    ``sensor_size`` (W, H) gives ``f`` for mean pooling when the checkpoint does not say it."""
    rec = meta.get("recipe")
    if rec is not None:
        norm = rec.get("normalisation", "counts")
        mean = rec.get("pooling") == "mean"
        clip = rec.get("clip_count")
        clip = 255 if clip is None else int(clip)
        sensor_size = sensor_size or (meta.get("extra") or {}).get("sensor_size")  # the training sensor
    else:
        extra = meta.get("extra") or {}
        rep = extra.get("representation", "counts")
        if rep not in REPRESENTATION:
            raise CompileError("input", f"input representation {rep!r} is not expressible on the chip "
                                        f"(known: {sorted(REPRESENTATION)})")
        norm = REPRESENTATION[rep]
        mean = extra.get("resize") == "area"
        clip = int(min(extra.get("clip_count", 255), 255))
        sensor_size = sensor_size or extra.get("sensor_size")
    if not (norm in ("counts", "binary", "log1p") or str(norm).startswith(("clip:", "qlog1p:"))):
        raise CompileError("input", f"input normalisation {norm!r} is not expressible on the chip")
    scale = 1.0
    if mean:
        if not sensor_size:
            raise CompileError("input", "mean pooling: the count scale 1/f^2 needs the sensor size "
                                        "(pass sensor_size=(W, H) or encoding=...)")
        f = max(1, math.ceil(max(sensor_size[0] / input_size[0], sensor_size[1] / input_size[1])))
        scale = 1.0 / f ** 2
    return {"norm": norm, "scale": scale, "clip": clip}


def normalise(counts: np.ndarray, encoding: Mapping[str, Any]) -> torch.Tensor:
    """Integer counts -> the float model's input, as the runtime computes it."""
    x = torch.from_numpy(np.minimum(np.asarray(counts), encoding["clip"]).astype(np.float32))
    x = x * float(encoding["scale"])
    if encoding["norm"] == "log1p":
        return torch.log1p(x)
    if str(encoding["norm"]).startswith("qlog1p:"):
        q = float(2 ** int(encoding["norm"][7:]))
        return torch.round(torch.log1p(x) * q) / q
    if encoding["norm"] == "binary":
        return (x > 0).to(torch.float32)
    if str(encoding["norm"]).startswith("clip:"):
        return x.clamp(max=float(encoding["norm"][5:]))
    return x


@torch.no_grad()
def calibrate(model, batches: Iterable, encoding: Mapping[str, Any]) -> Dict[str, np.ndarray]:
    """Per-channel max |input| of every LIF over ``batches`` (integer counts ``[T, B, C, H, W]``)."""
    peaks: Dict[str, np.ndarray] = {}

    def hook(mod, args):
        x = args[0].detach()
        x = x.abs().transpose(0, 2).reshape(x.shape[2], -1).amax(1).double().numpy()
        k = mod.state_key
        peaks[k] = x if k not in peaks else np.maximum(peaks[k], x)

    handles = [m.register_forward_pre_hook(hook) for m in model.modules() if isinstance(m, LIFNode)]
    try:
        model.eval()
        n = 0
        for b in batches:
            b = np.asarray(b)
            if b.ndim != 5:
                raise ValueError(f"calibration batches must be integer counts [T, B, C, H, W], got {b.shape}")
            model.forward_sequence(normalise(b, encoding))
            n += 1
        if n == 0:
            raise ValueError("calibration is empty")
    finally:
        for h in handles:
            h.remove()
    return peaks


def load_model(model_or_checkpoint) -> Tuple[torch.nn.Module, Dict[str, Any]]:
    if isinstance(model_or_checkpoint, (str, os.PathLike)):
        from ...checkpoint import load_checkpoint

        model, meta = load_checkpoint(model_or_checkpoint)
        meta = dict(meta, source=str(model_or_checkpoint))
        return model, meta
    if isinstance(model_or_checkpoint, torch.nn.Module):
        model = model_or_checkpoint
        rec = getattr(model, "recipe", {}) or {}
        return model, {"input_size": rec.get("input_size"), "T": getattr(model, "T", None), "class_names": None,
                       "extra": {}, "model_name": rec.get("name"), "source": type(model).__name__}
    raise TypeError(f"compile() takes a model or a checkpoint path, got {type(model_or_checkpoint).__name__}")


def compile(model_or_checkpoint, *, profile="generic", calibration: Optional[Iterable] = None,
            input_size: Optional[Tuple[int, int]] = None, encoding: Optional[Mapping[str, Any]] = None,
            sensor_size: Optional[Tuple[int, int]] = None, pins: Any = "auto") -> Program:
    """Compile a Meta-SpikeFormer (or a checkpoint path) into an integer :class:`Program`.

    ``input_size`` (W, H) and ``encoding`` (``{"norm", "scale", "clip"}``) default to the checkpoint's
    recipe; ``calibration``: integer count batches ``[T, B, C, H, W]`` (a few suffice) from which the
    scales are raised where values would not fit the profile's widths (``None``: weights alone).

    ``pins``: the scales and shifts a snapped model (:mod:`~snn.backends.chip.snap`) was made on;
    ``"auto"``: a checkpoint's own (``extra["chip_snap"]``), used when they are for this profile's
    numerics and the weights still lie on their grid (else the program is derived as usual and
    ``meta["pinned"]`` says why not); ``None``: never.

    On a ``pow2`` profile (``exact``) a program whose worst-case sum passes float32's 2^24 units
    (:mod:`~snn.backends.chip.reach`) is returned with a ``Float32ReachWarning`` naming the layer.
    """
    prof = load_profile(profile)
    model, meta = load_model(model_or_checkpoint)
    if input_size is None:
        rec = meta.get("recipe") or {}
        input_size = rec.get("size") or meta.get("input_size")
        if input_size is None:
            raise CompileError("input", "the model does not say its input size; pass input_size=(W, H)")
    input_size = (int(input_size[0]), int(input_size[1]))
    enc = dict(encoding) if encoding is not None else encoding_from_meta(meta, input_size, sensor_size)
    model = model.eval()
    graph = lower(model, input_size)
    ranges = calibrate(model, calibration, enc) if calibration is not None else None
    info = {
        "class_names": meta.get("class_names"),
        "T": meta.get("T"),
        "input_size": list(input_size),
        "model_name": meta.get("model_name"),
        "source": meta.get("source"),
    }
    if isinstance(pins, str) and pins == "auto":
        pins = pins_for(meta.get("extra"), prof)
    if pins and dict(pins.get("encoding") or {}) != dict(enc):
        info["pinned"] = "not used: the pins are for another input encoding"
        pins = None
    if pins:
        prog = quantise(graph, prof, enc, ranges, dict(info), pins=pins)
        if prog.meta["grid_residual"] <= GRID_TOLERANCE:
            prog.meta["pinned"] = True
            warn_past_float32(prog)
            return prog
        info["pinned"] = (f"stale: weights {prog.meta['grid_residual']:.3g} steps off the pinned grid "
                          "(changed after snapping); scales derived as usual")
    prog = quantise(graph, prof, enc, ranges, info)
    warn_past_float32(prog)
    return prog
