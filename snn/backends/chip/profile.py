"""Hardware profiles: the numeric formats, core limits and energy figures of a target chip.

A profile is a TOML file (``configs/chip/<name>.toml``); every key is required and unknown keys are
errors (:class:`~snn.backends.chip.errors.ProfileError` names the key and suggests the closest one).
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
from pathlib import Path
from typing import Any, Mapping

from .errors import ProfileError

PROFILE_DIR = Path(__file__).resolve().parents[3] / "configs" / "chip"

ROUNDING = ("floor", "half_up")
MEMORY_FORMULAS = ("dense", "speck")
#: "fitted": every scale fitted to its values (the coarsest writer sets a residual stream's scale,
#: finer writers shift their sums right: floors); "pow2": every scale a power of two and a stream
#: at its finest writer's scale (coarser writers shift left): a float model snapped to this grid
#: computes the chip's integers exactly (``docs/chip.md``, "The exact grid")
SCALE_GRIDS = ("fitted", "pow2")


@dataclasses.dataclass(frozen=True)
class Numerics:
    weight_bits: int
    membrane_bits: int
    accumulator_bits: int
    input_bits: int
    rounding: str
    attn_frac_bits: int
    lif_frac_bits: int
    scale_grid: str = "fitted"


@dataclasses.dataclass(frozen=True)
class Cores:
    count: int
    neurons_per_core: int
    kernel_memory_per_core: tuple
    neuron_memory_per_core: tuple
    memory_formula: str
    one_layer_per_core: bool
    max_fan_in: int
    max_fan_out: int
    supports_attention: bool
    supports_graded_input: bool


@dataclasses.dataclass(frozen=True)
class Energy:
    e_ac_pj: float
    e_mac_pj: float
    e_neuron_pj: float
    e_read_pj_per_byte: float


@dataclasses.dataclass(frozen=True)
class Profile:
    name: str
    description: str
    numerics: Numerics
    cores: Cores
    energy: Energy

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["cores"]["kernel_memory_per_core"] = list(self.cores.kernel_memory_per_core)
        d["cores"]["neuron_memory_per_core"] = list(self.cores.neuron_memory_per_core)
        return d


_RANGES = {  # integer keys: inclusive bounds
    "weight_bits": (2, 8), "membrane_bits": (8, 32), "accumulator_bits": (16, 32),
    "input_bits": (1, 16), "attn_frac_bits": (0, 8), "lif_frac_bits": (0, 8),
    "count": (0, 1 << 20), "neurons_per_core": (0, 1 << 40), "max_fan_in": (0, 1 << 40),
    "max_fan_out": (0, 1 << 20),
}


def _section(src: str, raw: Mapping[str, Any], name: str, cls) -> Any:
    if name not in raw:
        raise ProfileError(src, name, "missing section")
    sec = raw[name]
    if not isinstance(sec, Mapping):
        raise ProfileError(src, name, "must be a table")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for k in sec:
        if k not in fields:
            close = difflib.get_close_matches(k, list(fields), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ProfileError(src, f"{name}.{k}", f"unknown key{hint}")
    values = {}
    for k, f in fields.items():
        if k not in sec:
            raise ProfileError(src, f"{name}.{k}", "missing")
        values[k] = _check(src, f"{name}.{k}", k, sec[k], f.type)
    return cls(**values)


def _check(src: str, dotted: str, key: str, v: Any, typ: str) -> Any:
    if typ == "int":
        if isinstance(v, bool) or not isinstance(v, int):
            raise ProfileError(src, dotted, f"must be an integer, got {v!r}")
        lo, hi = _RANGES.get(key, (0, 1 << 62))
        if not lo <= v <= hi:
            raise ProfileError(src, dotted, f"{v} is outside [{lo}, {hi}]")
        return v
    if typ == "float":
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
            raise ProfileError(src, dotted, f"must be a non-negative number, got {v!r}")
        return float(v)
    if typ == "bool":
        if not isinstance(v, bool):
            raise ProfileError(src, dotted, f"must be true or false, got {v!r}")
        return v
    if typ == "tuple":
        if isinstance(v, int) and not isinstance(v, bool):
            v = [v]
        if not isinstance(v, list) or not v or not all(isinstance(x, int) and not isinstance(x, bool)
                                                       and x >= 0 for x in v):
            raise ProfileError(src, dotted, f"must be a non-empty list of non-negative integers, got {v!r}")
        return tuple(v)
    if typ == "str":
        if not isinstance(v, str):
            raise ProfileError(src, dotted, f"must be a string, got {v!r}")
        allowed = {"rounding": ROUNDING, "memory_formula": MEMORY_FORMULAS, "scale_grid": SCALE_GRIDS}.get(key)
        if allowed and v not in allowed:
            raise ProfileError(src, dotted, f"{v!r} is not one of {allowed}")
        return v
    raise AssertionError(typ)  # pragma: no cover - a field type this module does not know


def profile_from_dict(raw: Mapping[str, Any], source: str = "<dict>") -> Profile:
    """Validate a parsed profile (the TOML's tables) strictly."""
    top = {"name", "description", "numerics", "cores", "energy"}
    for k in raw:
        if k not in top:
            close = difflib.get_close_matches(k, sorted(top), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ProfileError(source, k, f"unknown key{hint}")
    for k in ("name", "description"):
        if k not in raw:
            raise ProfileError(source, k, "missing")
        if not isinstance(raw[k], str):
            raise ProfileError(source, k, f"must be a string, got {raw[k]!r}")
    cores = _section(source, raw, "cores", Cores)
    for key in ("kernel_memory_per_core", "neuron_memory_per_core"):
        n = len(getattr(cores, key))
        if n != 1 and n != cores.count:
            raise ProfileError(source, f"cores.{key}", f"{n} entries for {cores.count} cores (give 1 or count)")
    return Profile(raw["name"], raw["description"], _section(source, raw, "numerics", Numerics), cores,
                   _section(source, raw, "energy", Energy))


def list_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))


def load_profile(profile: "str | Path | Profile | Mapping") -> Profile:
    """A profile by name (``configs/chip/<name>.toml``), by path, or from a dict."""
    if isinstance(profile, Profile):
        return profile
    if isinstance(profile, Mapping):
        return profile_from_dict(profile)
    p = Path(profile)
    if p.suffix != ".toml":
        if str(profile) not in list_profiles():
            close = difflib.get_close_matches(str(profile), list_profiles(), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ProfileError(str(profile), "name", f"no such profile{hint} (known: {', '.join(list_profiles())})")
        p = PROFILE_DIR / f"{profile}.toml"
    if not p.is_file():
        raise ProfileError(str(p), "path", "no such file")
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ProfileError(str(p), "toml", f"not valid TOML: {e}") from None
    except RecursionError:  # tomllib recurses once per nesting level
        raise ProfileError(str(p), "toml", "not valid TOML: nested too deep") from None
    return profile_from_dict(raw, str(p))
