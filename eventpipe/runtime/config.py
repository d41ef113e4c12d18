"""The run configuration: one TOML file (``configs/*.toml``) plus overrides.

Every section is a dataclass; unknown keys and wrong types are
:class:`~eventpipe.errors.ConfigError` naming the dotted key.  Values left as
``None`` are taken from the model's checkpoint recipe (window, input size (W, H),
geometry, channels, frame normalisation); see docs/represent.md.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

from eventpipe.config import apply_overrides, from_dict, load_toml


@dataclasses.dataclass
class SourceConfig:
    uri: str = "synthetic:"
    speed: float | None = 1.0          # real-time factor for file/synthetic sources; None = max speed
    loop: bool = False
    sensor_size: tuple[int, int] | None = None
    queue_size: int | None = None      # source queue bound in packets; None: the source's
    queue_events: int | None = None    # ... and in events (live sources); None: its default
    options: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class ModelConfig:
    name: str = "default"              # registry name, checkpoint path, or "default" (shipped)
    device: str = "cpu"
    threads: int = 1                   # torch intra-op threads; ingest runs on another core
    fold: bool = True                  # fold RepConv/BN for inference
    num_classes: int | None = None     # registry names with random weights only
    class_names: list[str] | None = None


@dataclasses.dataclass
class WindowConfig:
    window_us: int | None = None       # None: from the checkpoint recipe (else 50 ms)
    stride_us: int | None = None
    timeout_s: float | None = 0.25     # close a window after this much wall-clock silence
    time_tolerance_us: int = 1000
    max_gap_us: int | None = 1_000_000  # event time jumping further is a discontinuity
    reset_on_gap: bool = True          # ... that resets the stream's membranes and labels


@dataclasses.dataclass
class InputConfig:
    size: tuple[int, int] | None = None  # model input (W, H); None: from the recipe
    policy: Literal["pad", "crop"] | None = None  # None: from the recipe (default pad)
    roi: tuple[int, int, int, int] | None = None  # (x0, y0, w, h) on the sensor
    flip_x: bool | None = None         # None: from the recipe (default false)
    flip_y: bool | None = None
    frame_norm: str | None = None      # counts | binary | clip:N | log1p; None: from the recipe
    channels: Literal["polarity", "halves"] | None = None  # None: from the recipe


@dataclasses.dataclass
class FilterConfig:
    refractory_us: int = 0
    denoise_us: int = 0
    polarity: int | None = None


@dataclasses.dataclass
class DecoderConfig:
    ema: float = 0.0
    topk: int = 3
    threshold: float = 0.0
    hysteresis: float = 0.0
    emit_every: int = 0
    emit_on_change: bool = True


@dataclasses.dataclass
class SinkConfig:
    publish: str | None = None         # e.g. tcp://127.0.0.1:5556
    jsonl: str | None = None           # path or "-"
    console: bool = True


@dataclasses.dataclass
class RuntimeConfig:
    max_batch: int = 8                 # streams stepped together
    frame_queue: int = 64              # frames between the ingest and inference threads
    idle_reset_s: float = 5.0          # reset a silent stream's membranes after this
    duration_s: float | None = None
    metrics_every_s: float = 5.0


@dataclasses.dataclass
class RunConfig:
    source: SourceConfig = dataclasses.field(default_factory=SourceConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    window: WindowConfig = dataclasses.field(default_factory=WindowConfig)
    input: InputConfig = dataclasses.field(default_factory=InputConfig)
    filters: FilterConfig = dataclasses.field(default_factory=FilterConfig)
    decoder: DecoderConfig = dataclasses.field(default_factory=DecoderConfig)
    sinks: SinkConfig = dataclasses.field(default_factory=SinkConfig)
    runtime: RuntimeConfig = dataclasses.field(default_factory=RuntimeConfig)


def load_run_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Read ``path`` (TOML; None = defaults), apply ``section.key=value`` overrides, validate."""
    data = load_toml(path) if path is not None else {}
    data = apply_overrides(data, overrides or [])
    return from_dict(RunConfig, data)
