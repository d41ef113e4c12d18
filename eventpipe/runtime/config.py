"""The run configuration: one TOML file (``configs/*.toml``) plus overrides.

Every section is a dataclass; unknown keys, wrong types, numbers that are not
finite and values out of their bounds (the ``bounded`` fields below) are
:class:`~eventpipe.errors.ConfigError` naming the dotted key, raised before
anything loads.  Values left as ``None`` are taken from the model's checkpoint
recipe (window, input size (W, H), geometry, channels, frame normalisation); see
docs/represent.md.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

from eventpipe.config import bounded, load_config
from eventpipe.errors import ConfigError

MAX_SENSOR_SIDE = 65536            # x, y are uint16
MAX_SENSOR_PIXELS = 4096 * 4096    # per-pixel filter state stays under ~128 MiB a stream
MAX_INPUT_SIDE = 1024              # model input: larger frames only exhaust memory
MAX_WINDOW_US = 60_000_000         # one minute
MIN_WINDOW_US = 100                # 10 kHz of model steps is far beyond any model


def sensor_size_problem(size, note: str = "") -> str | None:
    """What is wrong with a (W, H) sensor size (``"WxH<note> has N pixels (at most M)"``, ...),
    or None: within the event contract and a bounded per-pixel state."""
    w, h = size
    if not (1 <= w <= MAX_SENSOR_SIDE and 1 <= h <= MAX_SENSOR_SIDE):
        return f"{w}x{h}{note} is out of range (each side 1..{MAX_SENSOR_SIDE})"
    if w * h > MAX_SENSOR_PIXELS:
        return f"{w}x{h}{note} has {w * h:,} pixels (at most {MAX_SENSOR_PIXELS:,})"
    return None


def check_sensor_size(size, key: str = "source.sensor_size") -> None:
    """A user's (W, H) sensor size (``key``): a :class:`ConfigError` naming it when it has a
    :func:`sensor_size_problem`."""
    problem = None if size is None else sensor_size_problem(size)
    if problem:
        raise ConfigError(f"{key}: {problem}")


@dataclasses.dataclass
class SourceConfig:
    uri: str = "synthetic:"
    speed: float | None = bounded(1.0, gt=0)  # real-time factor (files, synthetic); None = max speed
    loop: bool = False
    sensor_size: tuple[int, int] | None = None
    queue_size: int | None = bounded(None, ge=1, le=1_000_000)    # source queue bound in packets;
    queue_events: int | None = bounded(None, ge=1, le=1 << 28)    # ... and in events; None: the source's default
    options: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        check_sensor_size(self.sensor_size)


@dataclasses.dataclass
class ModelConfig:
    name: str = "default"              # registry name, checkpoint path, or "default" (shipped)
    device: str = "cpu"
    threads: int = bounded(1, ge=1, le=1024)  # torch intra-op threads; ingest runs on another core
    fold: bool = True                  # older switch: false = backend "float"
    profile: str = "auto"              # backend chip: hardware profile (configs/chip/NAME.toml); auto: the
                                       # one the checkpoint was snapped for, else generic
    backend: str | None = None         # float (exact, unfolded) | cpu (folded fast path); None: cpu if fold
    num_classes: int | None = bounded(None, ge=1, le=100_000)  # registry names (random weights)
    class_names: list[str] | None = None


@dataclasses.dataclass
class WindowConfig:
    window_us: int | None = bounded(None, ge=MIN_WINDOW_US, le=MAX_WINDOW_US)  # None: recipe (else 50 ms)
    stride_us: int | None = bounded(None, ge=MIN_WINDOW_US, le=MAX_WINDOW_US)
    timeout_s: float | None = bounded(0.25, gt=0)  # close a window after this much silence; None: never
    time_tolerance_us: int = bounded(1000, ge=0)
    max_gap_us: int | None = bounded(1_000_000, ge=1)  # event time jumping further is a discontinuity
    reset_on_gap: bool = True          # ... that resets the stream's membranes and labels


@dataclasses.dataclass
class InputConfig:
    size: tuple[int, int] | None = bounded(None, ge=1, le=MAX_INPUT_SIDE, each=True)  # (W, H); None: recipe
    policy: Literal["pad", "crop"] | None = None  # None: from the recipe (default pad)
    roi: tuple[int, int, int, int] | None = bounded(None, ge=0, le=MAX_SENSOR_SIDE, each=True)  # (x0, y0, w, h)
    flip_x: bool | None = None         # None: from the recipe (default false)
    flip_y: bool | None = None
    frame_norm: str | None = None      # counts | binary | clip:N | log1p; None: from the recipe
    channels: Literal["polarity", "halves"] | None = None  # None: from the recipe


@dataclasses.dataclass
class FilterConfig:
    refractory_us: int = bounded(0, ge=0)
    denoise_us: int = bounded(0, ge=0)
    polarity: int | None = bounded(None, ge=0, le=1)


@dataclasses.dataclass
class DecoderConfig:
    # ema / hysteresis / dwell / challenger_ema / release / release_hysteresis unset (None): the
    # checkpoint's own (extra["decoder"], chosen on its training's validation streams by
    # eventpipe.training.decoder_tune), else 0 / 0 / 1 / off (eventpipe.labels.decoder_settings)
    ema: float | None = bounded(None, ge=0, lt=1)
    topk: int = bounded(3, ge=1)
    threshold: float = bounded(0.0, ge=0, le=1)
    hysteresis: float | None = bounded(None, ge=0, le=1)
    dwell: int | None = bounded(None, ge=1)
    challenger_ema: float | None = bounded(None, ge=0, lt=1)   # the challengers' faster EMA
                                                                # (eventpipe.labels); None: ema
    release: float | None = bounded(None, ge=0, le=1)              # a label whose slow EMA is below
    release_hysteresis: float | None = bounded(None, ge=0, le=1)   # this is let go of sooner (labels)
    # rule "hmm": an online Bayes filter over the classes instead of the EMA (eventpipe.labels);
    # None: the checkpoint's, else "ema" / hazard 0.01 / temperature 1 / floor 0 / min_posterior 0.5
    # / margin 0 / hazard_ramp 0
    rule: Literal["ema", "hmm", "learned"] | None = None
    hazard: float | None = bounded(None, ge=0, lt=1)          # per step: the action changes
    temperature: float | None = bounded(None, gt=0)           # softmax(logits / temperature)
    floor: float | None = bounded(None, ge=0, lt=1)           # least likelihood of a class
    min_posterior: float | None = bounded(None, ge=0, le=1)   # a challenger's posterior to win
    margin: float | None = bounded(None, ge=0, le=1)          # ... and its lead over the label's
    hazard_ramp: int | None = bounded(None, ge=0)             # steps for the hazard to rise
    emit_every: int = bounded(0, ge=0)
    emit_on_change: bool = True


@dataclasses.dataclass
class SinkConfig:
    publish: str | None = None         # e.g. tcp://127.0.0.1:5556
    jsonl: str | None = None           # path or "-"
    console: bool = True


@dataclasses.dataclass
class RuntimeConfig:
    max_batch: int = bounded(8, ge=1, le=4096)       # streams stepped together
    # stream ids a run keeps state for; packets of further ones are dropped and counted
    max_streams: int = bounded(256, ge=1, le=65536)
    frame_queue: int = bounded(64, ge=1, le=100_000)  # frames between ingest and inference
    idle_reset_s: float = bounded(5.0, ge=0)         # reset a silent stream's membranes (0: never)
    duration_s: float | None = bounded(None, gt=0)   # None: until the source ends
    metrics_every_s: float = bounded(5.0, ge=0)      # periodic metrics messages (0: none)


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


def load_run_config(path: str | Path | None = None, overrides: list[str] | None = None,
                    values: dict[str, Any] | None = None) -> RunConfig:
    """Read ``path`` (TOML; None = defaults), apply ``section.key=value`` overrides (``--set``)
    and typed ``values`` by dotted key (command-line flags, which win); validate."""
    return load_config(RunConfig, path, overrides, values)
