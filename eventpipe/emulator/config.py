"""Emulator parameters: one frozen dataclass, built from keywords or a dict.

Every field is documented in ``docs/emulator.md``.  Units are in the names
(``_us``, ``_hz``); thresholds are in natural-log units of intensity.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, Mapping

from eventpipe.config import from_dict, load_config


@dataclasses.dataclass(frozen=True)
class EmulatorConfig:
    """Parameters of :class:`~eventpipe.emulator.DvsEmulator` (not its state).

    ``pos_threshold`` / ``neg_threshold``: nominal ON / OFF contrast thresholds
    (log intensity).  ``sigma_threshold``: standard deviation of the per-pixel
    Gaussian mismatch added to both (drawn once from the seed; 0 disables it).
    ``min_threshold``: per-pixel thresholds are clipped to at least this.
    ``lin_log_threshold``: intensity (on the 0-255 scale) below which the
    log response becomes linear, as v2e's ``lin_log``; 0 uses
    ``log(I + log_eps)`` everywhere instead.  ``log_eps``: offset for that
    pure-log mode.  ``refractory_us``: after an emitted event a pixel emits
    nothing for this long (crossings meanwhile still move its reference).
    ``cutoff_hz``: photoreceptor low-pass cutoff at full intensity (0 = off);
    its bandwidth scales with intensity as in v2e.  ``shot_noise_rate_hz``:
    per-pixel Poisson rate of noise events of random polarity.
    ``leak_rate_hz``: per-pixel rate of leak (ON) events from a reference
    drifting down by ``leak_rate_hz * pos_threshold`` per second;
    ``leak_jitter_fraction``: relative per-pixel spread of that rate.
    """

    pos_threshold: float = 0.2
    neg_threshold: float = 0.2
    sigma_threshold: float = 0.03
    min_threshold: float = 0.01
    lin_log_threshold: float = 20.0
    log_eps: float = 1e-3
    refractory_us: int = 0
    cutoff_hz: float = 0.0
    shot_noise_rate_hz: float = 0.0
    leak_rate_hz: float = 0.0
    leak_jitter_fraction: float = 0.1

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"EmulatorConfig.{f.name} must be a finite number, got {v!r}")
        for name in ("pos_threshold", "neg_threshold", "min_threshold"):
            if getattr(self, name) <= 0:
                raise ValueError(f"EmulatorConfig.{name} must be > 0, got {getattr(self, name)}")
        for name in ("sigma_threshold", "lin_log_threshold", "refractory_us", "cutoff_hz",
                     "shot_noise_rate_hz", "leak_rate_hz", "leak_jitter_fraction"):
            if getattr(self, name) < 0:
                raise ValueError(f"EmulatorConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.lin_log_threshold == 0 and self.log_eps <= 0:
            raise ValueError("EmulatorConfig.log_eps must be > 0 when lin_log_threshold is 0")
        if self.refractory_us != int(self.refractory_us):
            raise ValueError(f"EmulatorConfig.refractory_us must be whole µs, got {self.refractory_us}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None, prefix: str = "emulator") -> "EmulatorConfig":
        """Build from a mapping through the one strict config engine
        (:func:`eventpipe.config.from_dict`): an unknown key, a wrong type or a value out
        of range is a :class:`~eventpipe.errors.ConfigError` (a ``ValueError``) naming
        the key and suggesting the closest one."""
        if d is None:
            return cls()
        return from_dict(cls, dict(d), prefix=prefix)

    @classmethod
    def load(cls, path: str | os.PathLike | None = None,
             overrides: list[str] | None = None) -> "EmulatorConfig":
        """From a TOML file (top-level keys are the fields) and ``key=value`` overrides,
        the same way ``eventpipe run --config FILE --set KEY=VALUE`` reads a run config."""
        return load_config(cls, path, overrides)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "EmulatorConfig":
        """A copy with some fields changed (unknown names raise like ``from_dict``)."""
        return type(self).from_dict({**self.to_dict(), **changes})


def as_config(config: "EmulatorConfig | Mapping[str, Any] | None") -> EmulatorConfig:
    """Accept a config, a dict of overrides, or ``None`` (defaults)."""
    if isinstance(config, EmulatorConfig):
        return config
    if config is None or isinstance(config, Mapping):
        return EmulatorConfig.from_dict(config)
    raise TypeError(f"config must be an EmulatorConfig, a dict or None, got {type(config).__name__}")
