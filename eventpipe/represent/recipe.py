"""The input recipe: how binned events become the model's input, as one typed value.

An :class:`InputRecipe` says everything between a window of events and the tensor a
model steps on: the sensor -> model geometry (``size`` (W, H), ``policy`` pad | crop,
``roi``, ``flip_x`` / ``flip_y``), the windows (``window_us``, ``stride_us``), the
channels (``polarity`` | ``halves``), the count ceiling (``clip_count``), how a model
pixel combines the sensor pixels it covers (``pooling`` sum | mean) and the
normalisation (``counts`` | ``binary`` | ``log1p`` | ``qlog1p:N`` | ``clip:N``).  Training builds one
from its config and stores it in the checkpoint; the runtime reads it back and lays its
``[input]`` / ``[window]`` overrides on top.  Sizes are ``(W, H)`` like the rest of the
event contract.

Every field is checked when the recipe is made; a bad value is a :class:`RecipeError`
naming the field.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from typing import Any, Mapping

from eventpipe.errors import ConfigError

#: the version :meth:`InputRecipe.to_dict` writes (1 = the untyped ``extra`` dict of old
#: checkpoints, read by :func:`eventpipe.represent.checkpoint.recipe_from_checkpoint`)
RECIPE_VERSION = 2

CHANNELS = ("polarity", "halves")
POLICIES = ("pad", "crop")
POOLINGS = ("sum", "mean")
NORMALISATIONS = ("counts", "binary", "log1p", "qlog1p:N", "clip:N")

#: counts are held in int16 counters: the ceiling when ``clip_count`` is None
MAX_COUNT = 32767


class RecipeError(ConfigError):
    """An input recipe field is missing, of the wrong type or out of range.

    ``field`` names the recipe field; ``source`` (when known) where the recipe came
    from, e.g. a checkpoint path or ``[input] frame_norm``."""

    def __init__(self, field: str, message: str, *, source: str | None = None):
        self.field = field
        self.message = message
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}input recipe field {field!r}: {message}")

    def located(self, source: str) -> "RecipeError":
        return RecipeError(self.field, self.message, source=self.source or source)


def _int(field: str, v: Any, lo: int = 1, hi: int | None = None) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        else:
            raise RecipeError(field, f"expected an integer, got {v!r}")
    if v < lo or (hi is not None and v > hi):
        rng = f">= {lo}" if hi is None else f"in {lo}..{hi}"
        raise RecipeError(field, f"must be {rng}, got {v}")
    return int(v)


def _bool(field: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise RecipeError(field, f"expected true or false, got {v!r}")
    return v


def _choice(field: str, v: Any, options) -> str:
    if v not in options:
        raise RecipeError(field, f"unknown value {v!r} (one of: {', '.join(options)})")
    return v


def _ints(field: str, v: Any, n: int, lo: int) -> tuple:
    if isinstance(v, (str, bytes)) or not hasattr(v, "__len__") or len(v) != n:
        raise RecipeError(field, f"expected {n} integers, got {v!r}")
    return tuple(_int(f"{field}[{i}]", x, lo) for i, x in enumerate(v))


def normalisation_clip(norm: str) -> float | None:
    """``N`` of ``clip:N`` (None for the other normalisations)."""
    return float(norm[5:]) if norm.startswith("clip:") else None


def normalisation_qbits(norm: str) -> int | None:
    """``N`` of ``qlog1p:N`` (None for the other normalisations)."""
    return int(norm[7:]) if norm.startswith("qlog1p:") else None


def _normalisation(v: Any) -> str:
    if not isinstance(v, str):
        raise RecipeError("normalisation", f"expected a string, got {v!r}")
    if v.startswith("clip:"):
        try:
            n = float(v[5:])
        except ValueError:
            n = math.nan
        if not (math.isfinite(n) and n > 0):
            raise RecipeError("normalisation", f"clip:N needs a number N > 0, got {v!r}")
        return v
    if v.startswith("qlog1p:"):
        if not (v[7:].isdigit() and int(v[7:]) <= 16):
            raise RecipeError("normalisation", f"qlog1p:N needs an integer N in [0, 16], got {v!r}")
        return v
    return _choice("normalisation", v, NORMALISATIONS)


@dataclasses.dataclass(frozen=True)
class InputRecipe:
    """Counts -> model input, the same for training and the runtime (see module doc).

    ``size``: model input ``(W, H)`` (None: not stated, e.g. an official checkpoint; the
    runtime then needs ``[input] size``).  ``window_us`` / ``stride_us``: each step sees
    the events of ``[t, t + window_us)``, ``t`` advancing by ``stride_us`` (None = the
    window: no overlap).  ``channels``: ``polarity`` = (OFF, ON) counts of the window;
    ``halves`` = ON+OFF counts of its first and second half (needs an even window and a
    stride of the window or of half of it: :attr:`overlapping_halves`).  ``policy`` / ``roi`` / ``flip_x`` / ``flip_y``: the sensor -> model
    map of :class:`eventpipe.kernels.SpatialMap` (one integer pooling factor ``f``; pad:
    the pooled sensor fits inside, zero border; crop: it covers, centre-cropped).
    ``clip_count``: pooled counts saturate here (None: 32767).  ``pooling``: ``sum`` =
    the counts of the ``f x f`` sensor pixels add up; ``mean`` = divided by ``f**2``
    (density independent of the sensor's resolution).  ``normalisation``: ``counts``;
    ``binary`` = 1 where the model pixel saw at least one event; ``log1p``;
    ``qlog1p:N`` = ``log1p`` rounded to ``N`` fractional bits (``round(log1p(x) 2^N) / 2^N``:
    the input table a chip reads, so that a model snapped to the chip's exact grid computes its
    integers); ``clip:N`` = counts capped at ``N`` (after pooling)."""

    size: tuple[int, int] | None = None
    window_us: int = 50_000
    stride_us: int | None = None
    channels: str = "polarity"
    policy: str = "pad"
    roi: tuple[int, int, int, int] | None = None
    flip_x: bool = False
    flip_y: bool = False
    clip_count: int | None = None
    pooling: str = "sum"
    normalisation: str = "counts"

    def __post_init__(self):
        put = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 - frozen dataclass
        if self.size is not None:
            put("size", _ints("size", self.size, 2, 1))
        put("window_us", _int("window_us", self.window_us))
        if self.stride_us is not None:
            put("stride_us", _int("stride_us", self.stride_us))
        put("channels", _choice("channels", self.channels, CHANNELS))
        put("policy", _choice("policy", self.policy, POLICIES))
        if self.roi is not None:
            put("roi", _ints("roi", self.roi, 4, 0))
            if self.roi[2] < 1 or self.roi[3] < 1:
                raise RecipeError("roi", f"(x0, y0, w, h) needs w, h >= 1, got {self.roi}")
        put("flip_x", _bool("flip_x", self.flip_x))
        put("flip_y", _bool("flip_y", self.flip_y))
        if self.clip_count is not None:
            put("clip_count", _int("clip_count", self.clip_count, 1, MAX_COUNT))
        put("pooling", _choice("pooling", self.pooling, POOLINGS))
        put("normalisation", _normalisation(self.normalisation))
        if self.channels == "halves":
            if self.window_us % 2:
                raise RecipeError("window_us", f"channels='halves' needs an even window, got {self.window_us}")
            if self.stride_us not in (None, self.window_us, self.window_us // 2):
                raise RecipeError("stride_us", f"channels='halves' needs stride_us == window_us "
                                               f"({self.window_us}) or half of it "
                                               f"({self.window_us // 2}), got {self.stride_us}")

    # -- derived ---------------------------------------------------------------------
    @property
    def stride(self) -> int:
        """Window start to start, µs (``stride_us`` or the window)."""
        return int(self.stride_us or self.window_us)

    @property
    def bins_per_window(self) -> int:
        """Binned slices per model window: 2 for ``halves`` (the half windows), else 1."""
        return 2 if self.channels == "halves" else 1

    @property
    def overlapping_halves(self) -> bool:
        """``halves`` with a stride of half a window: window ``k`` pairs half windows
        ``k`` and ``k + 1`` (each half is the second half of one window and the first half
        of the next)."""
        return self.channels == "halves" and self.stride == self.window_us // 2

    def slices(self, n_windows: int) -> int:
        """Binned slices that ``n_windows`` consecutive windows need (``n`` for polarity,
        ``2n`` for ``halves``, ``n + 1`` for overlapping halves)."""
        n = int(n_windows)
        if self.overlapping_halves:
            return n + 1 if n > 0 else 0
        return n * self.bins_per_window

    def windows_of(self, n_slices: int) -> int:
        """Complete windows in ``n_slices`` consecutive binned slices (inverse of :meth:`slices`)."""
        n = int(n_slices)
        if self.overlapping_halves:
            return max(0, n - 1)
        return n // self.bins_per_window

    @property
    def bin_us(self) -> int:
        """Length of one binned slice: the window, or half of it for ``halves``."""
        return self.window_us // self.bins_per_window

    @property
    def count_ceiling(self) -> int:
        return MAX_COUNT if self.clip_count is None else int(self.clip_count)

    @property
    def channel_names(self) -> list[str]:
        return ["OFF", "ON"] if self.channels == "polarity" else ["first_half", "second_half"]

    # -- changing and storing --------------------------------------------------------
    def replace(self, **changes) -> "InputRecipe":
        """A copy with ``changes`` (validated); ``None`` values are left out, so optional
        config overrides pass straight through (``recipe.replace(size=cfg.input.size)``)."""
        unknown = sorted(set(changes) - FIELDS)
        if unknown:
            raise RecipeError(unknown[0], f"no such field{_hint(unknown[0])}")
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict:
        """Plain data for a checkpoint: every field, lists for tuples, and
        ``recipe_version``."""
        d: dict[str, Any] = {"recipe_version": RECIPE_VERSION}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            d[f.name] = list(v) if isinstance(v, tuple) else v
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, source: str | None = None) -> "InputRecipe":
        """Parse :meth:`to_dict`'s output strictly: ``recipe_version`` must be 2, unknown
        fields are errors naming the nearest known one; missing fields keep the defaults."""
        try:
            if not isinstance(d, Mapping):
                raise RecipeError("recipe", f"expected a table of fields, got {type(d).__name__}")
            if "recipe_version" not in d:
                raise RecipeError("recipe_version", "missing")
            v = d["recipe_version"]
            if v != RECIPE_VERSION:
                newer = isinstance(v, int) and not isinstance(v, bool) and v > RECIPE_VERSION
                raise RecipeError("recipe_version", f"version {v!r} is not readable here "
                                  f"(this eventpipe reads {RECIPE_VERSION}"
                                  + ("; the file is from a newer eventpipe)" if newer else ")"))
            body = {k: x for k, x in d.items() if k != "recipe_version"}
            for k in body:
                if k not in FIELDS:
                    raise RecipeError(k, f"unknown field{_hint(k)}")
            return cls(**body)
        except RecipeError as e:
            raise e.located(source) if source else e


FIELDS = frozenset(f.name for f in dataclasses.fields(InputRecipe))


def _hint(name: str) -> str:
    close = difflib.get_close_matches(str(name), sorted(FIELDS), n=1)
    return f"; did you mean {close[0]!r}?" if close else f" (fields: {', '.join(sorted(FIELDS))})"
