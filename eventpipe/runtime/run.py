"""Build and run a pipeline from a :class:`RunConfig` (what ``eventpipe run`` does)."""

from __future__ import annotations

import signal
import sys
import threading
import warnings
from typing import Callable, TextIO

import torch

from eventpipe.represent import InputRecipe
from eventpipe.runtime.config import RunConfig
from eventpipe.runtime.metrics import format_summary
from eventpipe.runtime.model_loader import load_model, run_recipe
from eventpipe.runtime.pipeline import Pipeline
from eventpipe.sources import open_source


def input_recipe(cfg: RunConfig, loaded) -> InputRecipe:
    """The checkpoint's recipe with the config's explicit [input]/[window] values on top."""
    return run_recipe(cfg, loaded)


def build_sinks(cfg: RunConfig, out: TextIO) -> list:
    from eventpipe.sinks import ConsoleSink, JsonLinesSink

    sinks = []
    if cfg.sinks.publish:
        from eventpipe.sinks import ZmqPubSink
        sinks.append(ZmqPubSink(cfg.sinks.publish))
    if cfg.sinks.jsonl:
        sinks.append(JsonLinesSink(out if cfg.sinks.jsonl == "-" else cfg.sinks.jsonl))
    if cfg.sinks.console and cfg.sinks.jsonl != "-":
        sinks.append(ConsoleSink(out))
    return sinks


def build_pipeline(cfg: RunConfig, out: TextIO = sys.stdout,
                   on_label: Callable[[dict], None] | None = None, *, view: bool = False,
                   video: str | None = None, view_dump: str | None = None) -> Pipeline:
    torch.set_num_threads(max(1, cfg.model.threads))
    loaded = load_model(cfg.model.name, num_classes=cfg.model.num_classes,
                        class_names=cfg.model.class_names)
    if cfg.model.fold and hasattr(loaded.model, "fold"):
        loaded.model = loaded.model.fold()
    recipe = input_recipe(cfg, loaded)
    window_us = recipe.window_us
    input_size = recipe.size
    if loaded.input_size and tuple(input_size) != tuple(loaded.input_size):
        from eventpipe.events import InputSizeWarning
        warnings.warn(InputSizeWarning(
            f"input.size {input_size[0]}x{input_size[1]} differs from the checkpoint's recipe "
            f"({loaded.input_size[0]}x{loaded.input_size[1]}): the model gets frames of a size "
            "it was not trained on"), stacklevel=2)
    source = open_source(cfg.source.uri, speed=cfg.source.speed, loop=cfg.source.loop,
                         sensor_size=cfg.source.sensor_size, queue_size=cfg.source.queue_size,
                         queue_events=cfg.source.queue_events, start=False,
                         **cfg.source.options)
    try:
        sinks = build_sinks(cfg, out)
        viewer = None
        if view or video or view_dump:
            from eventpipe.runtime.viewer import LabelViewer
            stride_us = recipe.stride_us or window_us  # the video gets one picture a step
            viewer = LabelViewer(window=view, video=video, fps=1e6 / stride_us,
                                 dump_dir=view_dump, merged=recipe.channels == "halves",
                                 frame_hw=(input_size[1], input_size[0]))
    except BaseException:
        source.close()
        raise
    pipe = Pipeline(cfg, source, loaded, sinks, input_size=input_size, recipe=recipe,
                    on_label=on_label, viewer=viewer)
    if viewer is not None:
        viewer.bind(metrics=pipe.metrics, on_quit=pipe.stop, stopping=pipe.stop_event)
    return pipe


def _on_signal(pipe: Pipeline) -> None:
    """First signal: stop reading and drain; a second one: stop at once."""
    pipe.stop(drain=not pipe.stop_event.is_set())


def run(cfg: RunConfig, out: TextIO = sys.stdout, err: TextIO = sys.stderr,
        on_label: Callable[[dict], None] | None = None, *, view: bool = False,
        video: str | None = None, view_dump: str | None = None) -> dict:
    """Run until the source ends, ``duration_s`` passes, or SIGINT/SIGTERM; return metrics."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pipe = build_pipeline(cfg, out, on_label, view=view, video=video, view_dump=view_dump)
    for w in caught:
        err.write(f"eventpipe: warning: {w.message}\n")
    err.write(f"eventpipe: model {pipe.loaded.source} ({len(pipe.loaded.class_names)} classes), "
              f"window {pipe.window_us} us, input {pipe.input_size[0]}x{pipe.input_size[1]}, "
              f"source {cfg.source.uri}\n")
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: _on_signal(pipe))
    try:
        pipe.warm_up()
        pipe.start()
        pipe.wait(cfg.runtime.duration_s)
    finally:
        for sig, h in previous.items():
            signal.signal(sig, h)
        pipe.stop()
        pipe.source.close()
        if pipe.viewer is not None:
            pipe.viewer.close()
        summary = pipe.publish_metrics()
        for sink in pipe.sinks:
            sink.flush()
            sink.close()
    err.write("eventpipe: " + format_summary(summary) + "\n")
    return summary
