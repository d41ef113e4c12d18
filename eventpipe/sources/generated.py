"""Generated sources: the synthetic action stream and the DVS emulator's camera/video.

- ``synthetic:seed=N,switch_s=3,size=128x128`` - the synthetic action stream (windows
  carry ``truth``; not live: paced by ``speed``, back-pressure when behind);
- ``camera:INDEX`` - a webcam through the DVS emulator (live: drops the oldest);
- ``video:PATH`` - a video file through the DVS emulator (not live).

Opened through :func:`eventpipe.sources.open_source`.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any, Iterable, Iterator, NamedTuple

import numpy as np

from eventpipe.errors import ConfigError
from eventpipe.sources.base import Source


class TaggedBatch(NamedTuple):
    stream_id: int
    seq: int | None
    events: np.ndarray
    t_arrival: float
    truth: Any = None


class GeneratorSource(Source):
    """Runs an iterator of ``(events, truth)`` in the receive thread, optionally paced."""

    def __init__(self, items: Iterable[tuple[np.ndarray, Any]], *, sensor_size, live: bool,
                 speed: float | None = None, stream_id: int = 0, queue_size: int = 256):
        self.live = bool(live)
        super().__init__(queue_size=queue_size, sensor_size=sensor_size)
        self._items = items
        self._speed = speed
        self._stream_id = stream_id

    def _run(self) -> None:
        wall0 = time.monotonic()
        t0 = None
        for seq, (events, truth) in enumerate(self._items):
            if self._stop.is_set():
                return
            if self._speed and len(events):
                t_last = int(events["t"][-1])
                t0 = t_last if t0 is None else t0
                delay = wall0 + (t_last - t0) * 1e-6 / self._speed - time.monotonic()
                # (a tiny speed gives a delay past what a wait takes: OverflowError)
                if delay > 0 and self._stop.wait(min(delay, threading.TIMEOUT_MAX)):
                    return
            self.stats.received += len(events)
            self.stats.packets += 1
            batch = TaggedBatch(self._stream_id, seq, events, time.monotonic(), truth)
            if not self._put(batch, len(events)):
                return


def _options(text: str) -> dict[str, str]:
    out = {}
    for part in filter(None, text.replace("&", ",").split(",")):
        k, sep, v = part.partition("=")
        if not sep:
            raise ConfigError(f"source option {part!r} must look like key=value")
        out[k.strip()] = v.strip()
    return out


def _size(text: str) -> tuple[int, int]:
    w, _, h = text.lower().partition("x")
    try:
        size = int(w), int(h)
    except ValueError:
        size = (0, 0)
    if min(size) < 1 or max(size) > 65536:  # x and y are uint16
        raise ConfigError(f"synthetic: option size={text!r} must be WIDTHxHEIGHT in pixels, "
                          "each 1 to 65536 (e.g. 128x128)")
    return size


def _number(opts: dict, key: str, cast, default, *, above=None, least=None, most=None):
    """Option ``key`` of a ``synthetic:`` spec as ``cast`` (int or float), or ``default``;
    finite, ``> above``, ``>= least`` and ``<= most`` where given, else a ``ConfigError``
    naming the option."""
    if key not in opts:
        return default
    try:
        value = cast(opts[key])
    except ValueError:
        kind = "an integer" if cast is int else "a number"
        raise ConfigError(f"synthetic: option {key}={opts[key]!r} is not {kind}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"synthetic: option {key}={opts[key]!r} is not a finite number")
    for bound, ok, text in ((above, lambda b: value > b, ">"), (least, lambda b: value >= b, ">="),
                            (most, lambda b: value <= b, "<=")):
        if bound is not None and not ok(bound):
            raise ConfigError(f"synthetic: option {key}={opts[key]!r} must be {text} {bound:,}")
    return value


#: ``synthetic:packet_us`` at most 1 s: a packet is rendered whole before it is sent
MAX_PACKET_US = 1_000_000


def synthetic_source(spec: str, *, speed: float | None = 1.0,
                     queue_size: int = 256) -> GeneratorSource:
    from eventpipe.synthetic import SyntheticStream
    from eventpipe.synthetic.stream import DEFAULT_CROSSFADE_S

    opts = _options(spec)
    known = {"seed", "switch_s", "size", "duration_s", "packet_us"}
    unknown = set(opts) - known
    if unknown:
        raise ConfigError(f"unknown synthetic: option(s) {sorted(unknown)}; known {sorted(known)}")
    size = _size(opts.get("size", "128x128"))
    stream = SyntheticStream(
        seed=_number(opts, "seed", int, 0, least=0),
        # a switch cross-fades over DEFAULT_CROSSFADE_S, so segments are longer than that
        switch_every_s=_number(opts, "switch_s", float, 3.0, above=DEFAULT_CROSSFADE_S),
        sensor_size=size,
        packet_us=_number(opts, "packet_us", int, 10_000, least=1, most=MAX_PACKET_US),
        duration_s=_number(opts, "duration_s", float, None, above=0))

    # The first packet is made here, as for camera:/video:, so the emulator's kernels are
    # compiled (on a first run: seconds to minutes on a busy machine) before the pipeline and
    # its --duration clock start, not in the receive thread where a stop could not wait for them.
    packets = iter(stream)
    first = next(packets, None)

    def items() -> Iterator[tuple[np.ndarray, Any]]:
        if first is None:
            return
        yield first.events, first.truth_name
        for pk in packets:
            yield pk.events, pk.truth_name

    return GeneratorSource(items(), sensor_size=size, live=False, speed=speed,
                           queue_size=queue_size)


def emulated_source(kind: str, target: str, *, sensor_size, speed: float | None = 1.0,
                    queue_size: int = 256) -> GeneratorSource:
    """``camera:INDEX`` / ``video:PATH`` through the DVS emulator at ``sensor_size``.

    The first packet is pulled here, so a camera or file that cannot deliver frames
    fails when the pipeline is built rather than in its thread."""
    import itertools

    from eventpipe.emulator.sources import camera_source, video_source

    live = kind == "camera"
    if live:
        gen = camera_source(int(target or 0), sensor_size=sensor_size)
        speed = None  # a camera is paced by itself
    else:
        gen = video_source(target, sensor_size=sensor_size)
    first = next(gen, None)
    if first is None and not live:  # events are changes between frames: two at least
        from eventpipe.emulator.sources import count_frames
        from eventpipe.errors import EventFormatError

        n = count_frames(target)
        raise EventFormatError(("no frames" if n == 0 else "1 frame") + " that OpenCV can "
                               "decode; the emulator needs two to see a change", path=target)
    if first is None:
        raise ValueError(f"{kind}:{target} delivered no frames")
    items = ((ev, None) for ev in itertools.chain([first], gen))
    return GeneratorSource(items, sensor_size=sensor_size, live=live, speed=speed,
                           queue_size=queue_size)
