"""Pins: the choices of a compile (buffer scales, weight exponents, LIF input shifts, pooling
shifts) stored with a snapped checkpoint (``extra["chip_snap"]["pins"]``, :mod:`.snap`) so that
:func:`~snn.backends.chip.compile.compile` gives the program its weights were snapped to."""

from __future__ import annotations

import dataclasses
from typing import List, Mapping, Optional

from .profile import Profile
from .program import Program


def pins_for(extra: Optional[Mapping], profile: Profile) -> Optional[dict]:
    """The pins a snapped checkpoint's ``extra`` holds for ``profile``'s numerics (``None``: none)."""
    rec = (extra or {}).get("chip_snap") if isinstance(extra, Mapping) else None
    pins = rec.get("pins") if isinstance(rec, Mapping) else None
    if not isinstance(pins, Mapping):
        return None
    # pins written before the scale grid was a setting are for the fitted grid
    if dict({"scale_grid": "fitted"}, **dict(pins.get("numerics") or {})) != dataclasses.asdict(profile.numerics):
        return None
    return dict(pins)


def pins_of(program: Program, ops: List[str]) -> dict:
    """The choices of ``program`` that a recompile must reuse to give the same integers."""
    nb = program.profile.numerics
    return {
        "profile": program.profile.name,
        "numerics": dataclasses.asdict(nb),
        "encoding": dict(program.meta["encoding"]),
        "scales": {b: list(v) for b, v in program.meta["scales"].items() if b != "input"},
        "shift": {op.name: [int(k) for k in op.arrays["shift"]] for op in program.ops if op.kind == "conv"},
        "in_shift": {op.name: int(op.attrs["in_shift"]) for op in program.ops if op.kind == "lif"},
        "pool_shift": {op.name: int(op.attrs["shift"]) for op in program.ops if op.kind == "pool"},
        "ops": list(ops),
    }
