"""The compiled integer program: a list of ops over named buffers, saved as npz + JSON.

Ops (all integer; buffers are ``(C, H, W)`` maps, held per batch row as ``[H, W, C]``):

``input``  frame counts ``c`` (clamped to ``[0, len(lut) - 1]``) -> codes ``lut[c]`` (graded);
``conv``   ``dst (=|+=) bias + (sum_i w[:, i] * src[i]) >> shift`` over the non-zero inputs -
           accumulates for spike inputs, multiply-accumulates for graded ones - then saturated to
           the accumulator (sums are exact, in 64 bits; ``>>`` rounds per the profile; ``shift``,
           the weight exponent per output channel, is signed: ``k < 0`` shifts left by ``-k``,
           exactly, :mod:`~snn.backends.chip.exponent`);
``lif``    ``h = (v + (x << in_shift)) >> 1`` (rounding per profile), saturated to the membrane,
           spike ``h >= theta``, hard reset ``v = 0`` on a spike;
``attn``   SDSA-3 on binary Q, K, V (channels ``[0,C)``, ``[C,2C)``, ``[2C,3C)`` of ``src``): per head
           ``M = K^T V`` (counts), ``y = Q M`` (row sums of M), graded;
``pool``   ``dst[c] = (sum over positions of src[c]) >> shift`` (``0 <= shift <= 30``), saturated to
           the accumulator.

A conv's ``bias`` fits the accumulator (``|bias| <= 2^(a-1) - 1``, as the compiler clips it).

Files are an ``.npz`` (no pickle): the JSON description under ``__program__`` (format, version,
profile, ops with attributes, metadata) and one array per op parameter (``op<i>.<name>``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import zipfile
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from .errors import ProgramFormatError
from .exponent import MAX_EXPONENT
from .profile import Profile, profile_from_dict

FORMAT = "eventpipe.snn.chip.program"
#: 2: signed weight exponents and the profile's scale_grid; version 1 files (unsigned exponents, the
#: fitted grid) are read as before
VERSION = 2
READABLE_VERSIONS = (1, 2)

OP_KINDS = ("input", "conv", "lif", "attn", "pool")
# arrays each op kind must carry, with their dtype kind ('i': signed int)
_ARRAYS = {"input": ("lut",), "conv": ("weight", "bias", "shift"), "lif": ("theta",), "attn": (), "pool": ()}
_ATTRS = {
    "input": ("clip",),
    "conv": ("kernel", "stride", "pad", "groups", "mode", "src_kind"),
    "lif": ("state", "in_shift"),
    "attn": ("heads",),
    "pool": ("shift",),
}
# the attributes above that are integers (the others are names)
_INT_ATTRS = {"clip", "kernel", "stride", "pad", "groups", "in_shift", "heads", "shift"}


@dataclasses.dataclass
class Op:
    kind: str
    name: str
    src: str
    dst: str
    attrs: Dict[str, Any] = dataclasses.field(default_factory=dict)
    arrays: Dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    def describe(self) -> dict:
        return {"kind": self.kind, "name": self.name, "src": self.src, "dst": self.dst, "attrs": self.attrs}


def conv_out_hw(h: int, w: int, k: int, stride: int, pad: int) -> Tuple[int, int]:
    return (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1


@dataclasses.dataclass
class Program:
    """An integer Meta-SpikeFormer for one hardware profile (see the module docstring)."""

    ops: List[Op]
    buffers: Dict[str, Tuple[int, int, int]]
    output: str
    logit_scale: float
    profile: Profile
    meta: Dict[str, Any] = dataclasses.field(default_factory=dict)

    # ------------------------------------------------------------------ derived
    @property
    def input_shape(self) -> Tuple[int, int, int]:
        return self.buffers["frame"]

    @property
    def num_classes(self) -> int:
        return self.buffers[self.output][0]

    @property
    def class_names(self) -> list:
        return list(self.meta.get("class_names") or [str(i) for i in range(self.num_classes)])

    def state_keys(self) -> List[str]:
        return [op.attrs["state"] for op in self.ops if op.kind == "lif"]

    def state_shape(self, key: str) -> Tuple[int, int, int]:
        """``(H, W, C)`` of a membrane (the layout of state arrays, after the batch axis)."""
        for op in self.ops:
            if op.kind == "lif" and op.attrs["state"] == key:
                c, h, w = self.buffers[op.dst]
                return h, w, c
        raise KeyError(key)

    @property
    def membrane_dtype(self):
        return np.int16 if self.profile.numerics.membrane_bits <= 16 else np.int32

    def init_state(self, batch: int = 1) -> Dict[str, np.ndarray]:
        """Membranes at rest: ``{key: zeros [B, H, W, C]}``."""
        return {k: np.zeros((batch,) + self.state_shape(k), self.membrane_dtype) for k in self.state_keys()}

    def check_state(self, state, batch: int) -> Dict[str, np.ndarray]:
        if state is None:
            return self.init_state(batch)
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict of membranes (or None), got {type(state).__name__}")
        keys = self.state_keys()
        if set(state) != set(keys):
            extra, missing = sorted(set(state) - set(keys))[:3], sorted(set(keys) - set(state))[:3]
            raise ValueError(f"state does not belong to this program: unexpected {extra}, missing {missing}")
        for k in keys:
            a = state[k]
            want = (batch,) + self.state_shape(k)
            if not isinstance(a, np.ndarray) or a.shape != want or a.dtype != self.membrane_dtype:
                got = (a.shape, a.dtype) if isinstance(a, np.ndarray) else type(a).__name__
                raise ValueError(f"state[{k!r}]: expected {want} {np.dtype(self.membrane_dtype)}, got {got}")
        return state

    def check_frame(self, frame) -> np.ndarray:
        f = np.asarray(frame)
        if f.ndim != 4 or tuple(f.shape[1:]) != tuple(self.input_shape):
            raise ValueError(f"frame must be integer counts [B, {', '.join(map(str, self.input_shape))}], "
                             f"got shape {f.shape}")
        if f.dtype.kind not in "iu":
            raise TypeError(f"frame must hold integer event counts, got {f.dtype} "
                            "(the chip reads counts before any float normalisation)")
        return f

    # ------------------------------------------------------------------ reports
    def report(self, frames=None):
        """Per-layer mapping and per-step ops/energy (see :mod:`snn.backends.chip.report`)."""
        from .report import build_report

        return build_report(self, frames)

    # ------------------------------------------------------------------ validation
    def validate(self, where: str = "<program>") -> "Program":
        def bad(reason, key=None):
            raise ProgramFormatError(where, reason, key)

        if "frame" not in self.buffers:
            bad("no 'frame' input buffer", "buffers")
        if self.output not in self.buffers:
            bad(f"output buffer {self.output!r} is not declared", "output")
        written = {"frame"}
        for i, op in enumerate(self.ops):
            key = f"op{i}"
            if op.kind not in OP_KINDS:
                bad(f"unknown op kind {op.kind!r}", key)
            for a in _ATTRS[op.kind]:
                if a not in op.attrs:
                    bad(f"{op.kind} op {op.name!r} lacks attribute {a!r}", key)
                v = op.attrs[a]
                if a in _INT_ATTRS and (isinstance(v, bool) or not isinstance(v, (int, np.integer))):
                    bad(f"{op.kind} op {op.name!r}: attribute {a!r} = {v!r} is not an integer", key)
            for a in _ARRAYS[op.kind]:
                arr = op.arrays.get(a)
                if not isinstance(arr, np.ndarray) or arr.dtype.kind != "i":
                    bad(f"{op.kind} op {op.name!r} lacks integer array {a!r}", f"{key}.{a}")
            for b in (op.src, op.dst):
                if b not in self.buffers:
                    bad(f"op {op.name!r} uses undeclared buffer {b!r}", key)
            if op.src not in written:
                bad(f"op {op.name!r} reads buffer {op.src!r} before anything writes it", key)
            self._validate_shapes(op, bad, key)
            written.add(op.dst)
        if self.output not in written:
            bad("nothing writes the output buffer", "output")
        if not math.isfinite(self.logit_scale):
            bad(f"logit_scale {self.logit_scale} is not a finite number", "logit_scale")
        return self

    def _validate_shapes(self, op: Op, bad, key: str) -> None:
        ci, hi, wi = self.buffers[op.src]
        co, ho, wo = self.buffers[op.dst]
        nb = self.profile.numerics
        if op.kind == "input":
            if (ci, hi, wi) != (co, ho, wo) or op.arrays["lut"].shape != (op.attrs["clip"] + 1,):
                bad(f"input op {op.name!r}: shapes do not match", key)
        elif op.kind == "conv":
            k, s, p, g = (int(op.attrs[a]) for a in ("kernel", "stride", "pad", "groups"))
            w = op.arrays["weight"]
            if g < 1 or ci % g or co % g or w.shape != (co, ci // g, k, k) or op.arrays["bias"].shape != (co,) \
                    or op.arrays["shift"].shape != (co,) \
                    or conv_out_hw(hi, wi, k, s, p) != (ho, wo) or s < 1 or p < 0:
                bad(f"conv op {op.name!r}: weight {w.shape} does not fit {self.buffers[op.src]} -> "
                    f"{self.buffers[op.dst]}", key)
            ks = op.arrays["shift"].astype(np.int64)
            out = np.flatnonzero((ks < -MAX_EXPONENT) | (ks > MAX_EXPONENT))
            if out.size:
                bad(f"conv op {op.name!r}: weight exponent (shift) {int(op.arrays['shift'][out[0]])} of output "
                    f"channel {int(out[0])} is outside [-{MAX_EXPONENT}, {MAX_EXPONENT}]", f"{key}.shift")
            lim = (1 << (nb.weight_bits - 1)) - 1
            if w.size and int(np.abs(w.astype(np.int64)).max()) > lim:
                bad(f"conv op {op.name!r}: weights exceed {nb.weight_bits} bits", f"{key}.weight")
            acc = (1 << (nb.accumulator_bits - 1)) - 1
            bias = op.arrays["bias"].astype(np.int64)
            wide = np.flatnonzero((bias < -acc) | (bias > acc))  # not abs: -2^63 has none in int64
            if wide.size:
                bad(f"conv op {op.name!r}: bias {int(op.arrays['bias'][wide[0]])} of output channel {int(wide[0])} "
                    f"does not fit the {nb.accumulator_bits}-bit accumulator (|bias| <= {acc})", f"{key}.bias")
            if op.attrs["mode"] not in ("set", "add") or op.attrs["src_kind"] not in ("spike", "graded"):
                bad(f"conv op {op.name!r}: bad mode/src_kind", key)
        elif op.kind == "lif":
            if (ci, hi, wi) != (co, ho, wo) or op.arrays["theta"].shape != (co,):
                bad(f"lif op {op.name!r}: shapes do not match", key)
            if not 0 <= int(op.attrs["in_shift"]) <= MAX_EXPONENT:
                bad(f"lif op {op.name!r}: in_shift {int(op.attrs['in_shift'])} is outside [0, {MAX_EXPONENT}]", key)
        elif op.kind == "attn":
            h = int(op.attrs["heads"])
            if (hi, wi) != (ho, wo) or ci != 3 * co or h < 1 or co % h:
                bad(f"attn op {op.name!r}: shapes do not match", key)
        elif op.kind == "pool":
            if ci != co or (ho, wo) != (1, 1):
                bad(f"pool op {op.name!r}: shapes do not match", key)
            if not 0 <= int(op.attrs["shift"]) <= MAX_EXPONENT:
                bad(f"pool op {op.name!r}: shift {int(op.attrs['shift'])} is outside [0, {MAX_EXPONENT}]", key)

    # ------------------------------------------------------------------ files
    def to_json(self) -> dict:
        return {
            "format": FORMAT,
            "version": VERSION,
            "profile": self.profile.to_dict(),
            "buffers": {k: list(v) for k, v in self.buffers.items()},
            "output": self.output,
            "logit_scale": float(self.logit_scale),
            "meta": self.meta,
            "ops": [op.describe() | {"arrays": sorted(op.arrays)} for op in self.ops],
        }

    def save(self, path: "str | os.PathLike") -> None:
        """Write ``path`` (an ``.npz``: JSON description + integer arrays; no pickle)."""
        arrays = {"__program__": np.frombuffer(json.dumps(self.to_json()).encode("utf-8"), np.uint8)}
        for i, op in enumerate(self.ops):
            for k, a in op.arrays.items():
                arrays[f"op{i}.{k}"] = a
        with open(path, "wb") as f:
            np.savez_compressed(f, **arrays)

    @classmethod
    def load(cls, path: "str | os.PathLike") -> "Program":
        """Read a file written by :meth:`save`; a damaged file, another format or another version
        raises :class:`ProgramFormatError` naming the file (and the entry)."""
        where = str(path)
        try:
            with open(path, "rb") as f:
                if f.read(4) != b"PK\x03\x04":  # else numpy tries pickle and advises allow_pickle
                    raise ProgramFormatError(where, "not an npz program (no zip signature at byte 0)")
            with np.load(path, allow_pickle=False) as z:
                if "__program__" not in z.files:
                    raise ProgramFormatError(where, "no '__program__' description", "__program__")
                try:
                    desc = json.loads(z["__program__"].tobytes().decode("utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError) as e:
                    raise ProgramFormatError(where, f"description is not JSON: {e}", "__program__") from None
                except RecursionError:  # json recurses once per nesting level
                    raise ProgramFormatError(where, "description is not JSON: nested too deep", "__program__") from None
                if not isinstance(desc, dict) or desc.get("format") != FORMAT:
                    raise ProgramFormatError(where, f"format is {desc.get('format') if isinstance(desc, dict) else None!r}, "
                                             f"expected {FORMAT!r}", "format")
                if desc.get("version") not in READABLE_VERSIONS:
                    raise ProgramFormatError(where, f"format version {desc.get('version')!r}; this eventpipe reads "
                                             f"versions {', '.join(map(str, READABLE_VERSIONS))} (recompile the program)",
                                             "version")
                if desc["version"] == 1 and isinstance(desc.get("profile"), dict) \
                        and isinstance(desc["profile"].get("numerics"), dict):
                    desc["profile"]["numerics"].setdefault("scale_grid", "fitted")
                ops = []
                for i, d in enumerate(desc["ops"]):
                    arrays = {}
                    for k in d["arrays"]:
                        key = f"op{i}.{k}"
                        if key not in z.files:
                            raise ProgramFormatError(where, "array missing", key)
                        arrays[k] = z[key]
                    ops.append(Op(d["kind"], d["name"], d["src"], d["dst"], dict(d["attrs"]), arrays))
                prog = cls(ops=ops, buffers={k: tuple(int(x) for x in v) for k, v in desc["buffers"].items()},
                           output=desc["output"], logit_scale=float(desc["logit_scale"]),
                           profile=profile_from_dict(desc["profile"], f"{where}:profile"), meta=desc.get("meta", {}))
        except ProgramFormatError:
            raise
        except FileNotFoundError:
            raise
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise ProgramFormatError(where, f"damaged or not an npz program ({type(e).__name__}: {e})") from None
        except Exception as e:  # zlib.error from a corrupt member, and other decoder errors
            raise ProgramFormatError(where, f"damaged ({type(e).__name__}: {e})") from None
        return prog.validate(where)


def describe_buffers(program: Program) -> Dict[str, Optional[str]]:
    """Which op writes each buffer first (for reports)."""
    out: Dict[str, Optional[str]] = {"frame": None}
    for op in program.ops:
        out.setdefault(op.dst, op.name)
    return out
