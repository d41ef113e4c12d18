"""The running pipeline: source -> per-stream prep -> model steps -> labels -> sinks.

Two threads besides the source's own receive thread:

- *ingest* reads batches from the source, runs each stream's filters, mapping
  and windower, and puts closed frames on a bounded queue (files block when it
  is full; live sources drop the oldest frame and count it);
- *inference* takes the frames that are ready (at most one per stream per
  step, up to ``max_batch`` streams), steps the model once, decodes labels and
  hands them to the sinks.

A stream silent for ``idle_reset_s`` has its membranes and label state reset.
``stop()`` (or SIGINT/SIGTERM in the CLI) ends both threads; the summary is in
``metrics``.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
from typing import Callable

import torch

from eventpipe.labels import LabelDecoder, decoder_settings
from eventpipe.represent import InputRecipe
from eventpipe.runtime.config import RunConfig
from eventpipe.runtime.metrics import Metrics
from eventpipe.runtime.preprocess import ClosedFrame, StreamPrep
from snn.streaming import StreamingSession


class FrameQueue:
    """A bounded FIFO of closed frames with block / drop-oldest policies."""

    def __init__(self, maxlen: int, drop_oldest: bool, metrics: Metrics):
        self.items: collections.deque = collections.deque()
        self.maxlen = int(maxlen)
        self.drop_oldest = drop_oldest
        self.metrics = metrics
        self.cond = threading.Condition()
        self.closed = False

    def put(self, item: ClosedFrame, stop: threading.Event) -> None:
        with self.cond:
            while len(self.items) >= self.maxlen and not self.drop_oldest:
                if stop.is_set():
                    return
                self.cond.wait(0.1)
            if stop.is_set():
                return
            if len(self.items) >= self.maxlen:
                self.items.popleft()
                self.metrics.frames_dropped += 1
            self.items.append(item)
            self.cond.notify_all()

    def take_ready(self, max_streams: int, timeout: float) -> list[ClosedFrame]:
        """The oldest frame of up to ``max_streams`` distinct streams, in arrival order."""
        with self.cond:
            if not self.items and not self.closed:
                self.cond.wait(timeout)
            out, seen, keep = [], set(), collections.deque()
            while self.items:
                it = self.items.popleft()
                if it.stream in seen or len(out) >= max_streams:
                    keep.append(it)
                else:
                    seen.add(it.stream)
                    out.append(it)
            self.items = keep
            self.cond.notify_all()
            return out

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()


class Pipeline:
    def __init__(self, cfg: RunConfig, source, loaded, sinks: list, *,
                 input_size: tuple[int, int] | None = None, recipe: InputRecipe | None = None,
                 window_us: int | None = None, frame_norm: str = "counts",
                 on_label: Callable[[dict], None] | None = None, viewer=None,
                 clock: Callable[[], float] = time.monotonic):
        """``recipe``: the model input, run config already applied (``run_recipe``);
        without it one is made from ``input_size``, ``window_us`` and ``frame_norm``
        with the run config's ``[input]`` / ``[window]`` values on top.  ``clock``:
        seconds, read by the idle reset and the periodic metrics (tests pass a fake)."""
        from eventpipe.runtime.model_loader import apply_run_config

        self.cfg = cfg
        self.clock = clock
        self.source = source
        self.loaded = loaded
        self.sinks = sinks
        if recipe is None:
            recipe = apply_run_config(InputRecipe(size=input_size, window_us=int(window_us),
                                                  normalisation=frame_norm), cfg)
        self.recipe = recipe
        self.window_us = self.recipe.window_us
        self.input_size = self.recipe.size
        self.on_label = on_label
        self.viewer = viewer
        self.last_label: dict[int, dict] = {}
        self.metrics = Metrics()
        self.session = StreamingSession(loaded.model, device=cfg.model.device,
                                        input_size=self.input_size)
        self.backend = getattr(loaded, "backend", "float")
        smooth = decoder_settings(dataclasses.asdict(cfg.decoder),
                                  (getattr(loaded, "extra", None) or {}).get("decoder"))
        self.decoder = LabelDecoder(loaded.class_names, topk=cfg.decoder.topk,
                                    threshold=cfg.decoder.threshold, **smooth,
                                    emit_every=cfg.decoder.emit_every,
                                    emit_on_change=cfg.decoder.emit_on_change)
        live = source is not None and source.live  # (None: a pipeline used for its preps)
        self.frames = FrameQueue(cfg.runtime.frame_queue, drop_oldest=live, metrics=self.metrics)
        self.preps: dict[int, StreamPrep] = {}
        self.stop_event = threading.Event()   # stop reading; finish what was read (drain)
        self.abort_event = threading.Event()  # stop everything now
        self.error: BaseException | None = None
        self._threads: list[threading.Thread] = []
        self._last_metrics = clock()

    # -- ingest -------------------------------------------------------------------------
    def _prep(self, stream: int) -> StreamPrep:
        prep = self.preps.get(stream)
        if prep is None:
            size = (self.cfg.source.sensor_size
                    or getattr(self.source, "stream_sizes", {}).get(stream)
                    or getattr(self.source, "sensor_size", None))
            if size is None:
                raise ValueError(f"stream {stream}: sensor size unknown; set source.sensor_size")
            c = self.cfg
            prep = StreamPrep(stream, size, recipe=self.recipe, timeout_s=c.window.timeout_s,
                              time_tolerance_us=c.window.time_tolerance_us,
                              refractory_us=c.filters.refractory_us,
                              denoise_us=c.filters.denoise_us, polarity=c.filters.polarity,
                              max_gap_us=c.window.max_gap_us,
                              max_frames=max(16, c.runtime.frame_queue))
            self.preps[stream] = prep
        return prep

    def _ingest(self) -> None:
        try:
            while not self.stop_event.is_set():
                batch = self.source.read(timeout=0.05)
                if batch is None:
                    for prep in list(self.preps.values()):
                        for fr in prep.poll():
                            self.frames.put(fr, self.abort_event)
                    if self.source.done:
                        break
                    continue
                self.metrics.events_in += len(batch.events)
                if self._over_max_streams(batch):
                    continue
                prep = self._prep(batch.stream_id)
                self._put_frames(prep, prep.push(batch.events, batch.t_arrival,
                                                 getattr(batch, "truth", None)))
            for prep in self.preps.values():
                for fr in prep.flush():
                    self.frames.put(fr, self.abort_event)
        except BaseException as exc:  # noqa: BLE001 - reported by run()
            self.error = exc
            self.abort_event.set()
        finally:
            self.frames.close()

    def _over_max_streams(self, batch) -> bool:
        """A batch of a new stream id once ``runtime.max_streams`` streams have state: dropped
        and counted (each stream's windower and filters cost memory: a sender cycling through
        stream ids would otherwise grow the run without bound)."""
        if batch.stream_id in self.preps or len(self.preps) < self.cfg.runtime.max_streams:
            return False
        self.metrics.events_over_max_streams += len(batch.events)
        return True

    def _put_frames(self, prep: StreamPrep, frames: list[ClosedFrame]) -> None:
        """Queue a packet's frames, a bounded chunk at a time (tiny windows: many chunks);
        a stop abandons the rest of the packet, so ``--duration`` holds whatever the input."""
        while True:
            for fr in frames:
                self.frames.put(fr, self.abort_event)
            if not prep.pending or self.stop_event.is_set() or self.abort_event.is_set():
                return
            frames = prep.more()

    # -- inference ----------------------------------------------------------------------
    def _infer(self) -> None:
        torch.set_num_threads(max(1, self.cfg.model.threads))
        last_seen: dict[int, float] = {}
        try:
            while not self.abort_event.is_set():
                ready = self.frames.take_ready(self.cfg.runtime.max_batch, timeout=0.05)
                if not ready:
                    if self.frames.closed and not self.frames.items:
                        break
                    self._idle_resets(last_seen)
                    self._maybe_metrics()  # the heartbeat of an idle live source
                    continue
                now = self.clock()
                for fr in ready:
                    last_seen[fr.stream] = now
                    if fr.after_gap and self.cfg.window.reset_on_gap:
                        self.session.reset(fr.stream)  # event time jumped: a new start
                        self.decoder.reset(fr.stream)
                        self.metrics.gap_resets += 1
                logits = self.session.step({fr.stream: fr.frame for fr in ready})
                self.metrics.frames += len(ready)
                self.metrics.steps += 1
                for fr in ready:
                    msgs = self.decoder.step(logits[fr.stream][None], streams=[fr.stream],
                                             seq=fr.seq, t_us=fr.t_us, t_arrival=fr.t_arrival,
                                             truth=fr.truth)
                    for m in msgs:
                        m["backend"] = self.backend
                        self._emit(m)
                        self.last_label[fr.stream] = m
                    if self.viewer is not None:
                        self.viewer.show(fr.stream, fr.frame, self.last_label.get(fr.stream),
                                         seq=fr.seq, t_us=fr.t_us)
                self._idle_resets(last_seen)
                self._maybe_metrics()
        except BaseException as exc:  # noqa: BLE001
            self.error = exc
            self.abort_event.set()
            self.stop_event.set()

    def _maybe_metrics(self) -> None:
        every = self.cfg.runtime.metrics_every_s
        now = self.clock()
        if not every or now - self._last_metrics < every:
            return
        self._last_metrics = now
        self.publish_metrics()

    def publish_metrics(self) -> dict:
        """Send a metrics message (``type: metrics``, topic ``metrics``) to the machine
        sinks (PUB, JSON lines); the console gets the summary line at the end instead."""
        msg = {"type": "metrics", "stream": "metrics", **self.summary()}
        for sink in self.sinks:
            if getattr(sink, "human", False):
                continue
            sink.write(msg)
        return msg

    def _idle_resets(self, last_seen: dict[int, float]) -> None:
        idle = self.cfg.runtime.idle_reset_s
        if not idle:
            return
        now = self.clock()
        for sid, t in list(last_seen.items()):
            if now - t > idle:
                self.session.reset(sid)
                self.decoder.reset(sid)
                del last_seen[sid]
                self.metrics.streams_reset += 1

    def _emit(self, msg: dict) -> None:
        self.metrics.labels += 1
        if msg.get("latency_ms") is not None:
            self.metrics.add_latency(msg["latency_ms"])
        for sink in self.sinks:
            sink.write(msg)
        if self.on_label is not None:
            self.on_label(msg)

    # -- control ------------------------------------------------------------------------
    def warm_up(self) -> None:
        """Load the Numba kernels and run one model step on a blank frame (state discarded),
        so the first real window does not pay for compilation and first-touch allocation."""
        from eventpipe.events import make_events

        scratch = StreamPrep(-1, self.input_size, recipe=dataclasses.replace(self.recipe, roi=None))
        ev = make_events([0, 1], [0, 1], [0, 2 * self.window_us + 1], [0, 1])
        frames = scratch.push(ev, time.monotonic())
        if frames:
            with torch.inference_mode():
                self.session.step({-1: frames[0].frame})
            self.session.reset(-1)

    def start(self) -> "Pipeline":
        self.source.start()  # idempotent: sources opened unstarted begin with the pipeline
        self._threads = [threading.Thread(target=self._ingest, name="eventpipe-ingest", daemon=True),
                         threading.Thread(target=self._infer, name="eventpipe-infer", daemon=True)]
        for t in self._threads:
            t.start()
        return self

    def stop(self, drain: bool = True) -> None:
        """Stop reading the source; with ``drain`` the frames already read are still
        stepped and their labels emitted, otherwise everything stops at once."""
        self.stop_event.set()
        if not drain:
            self.abort_event.set()

    def wait(self, duration_s: float | None = None) -> None:
        deadline = None if duration_s is None else time.monotonic() + duration_s
        while any(t.is_alive() for t in self._threads):
            if deadline is not None and time.monotonic() >= deadline:
                self.stop()
                deadline = None
            pump = getattr(self.viewer, "pump", None)
            if pump is not None:
                pump(0.02)  # the window lives in this thread: picture, keys, closed window
            for t in self._threads:
                t.join(timeout=0.0 if pump is not None else 0.1)
        if self.error is not None:
            raise self.error

    def summary(self) -> dict:
        stats = self.source.stats.as_dict() if hasattr(self.source, "stats") else {}
        snap = self.metrics.snapshot(stats)
        snap["events_filtered"] = sum(p.removed for p in self.preps.values())
        snap["events_out_of_bounds"] = sum(p.out_of_bounds for p in self.preps.values())
        snap["advice"] = self.source.drop_advice()  # what was lost, why, what to change
        outside = sum(p.outside_sensor for p in self.preps.values())
        if outside:
            w, h = next(iter(self.preps.values())).map.input_size
            snap["advice"].append(
                f"{outside:,} events lay outside the sensor size {w}x{h} and were dropped: give "
                "the real size with --set source.sensor_size=[W,H]")
        if self.metrics.events_over_max_streams:
            cap = self.cfg.runtime.max_streams
            snap["advice"].append(
                f"{self.metrics.events_over_max_streams:,} events dropped: their stream ids came "
                f"after the first {cap:,} (runtime.max_streams; raise it with --set "
                f"runtime.max_streams=N)")
        snap["time_jumps"] = sum(p.binner.discontinuities for p in self.preps.values())
        snap["windows_skipped"] = sum(p.binner.windows_skipped for p in self.preps.values())
        return snap
