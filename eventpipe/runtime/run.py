"""Build and run a pipeline from a :class:`RunConfig` (what ``eventpipe run`` does).

:func:`run` first calls :func:`~eventpipe.runtime.preflight.preflight` (what
can be checked before the model loads), and runs under a :class:`~eventpipe.runtime.stopper.Stopper` (SIGINT/SIGTERM), which
the CLI installs before it imports the runtime, so a stop during start-up still
ends with a summary.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from typing import Callable, TextIO

import torch

from eventpipe.errors import ConfigError, reading_checkpoint
from eventpipe.represent import InputRecipe
from eventpipe.runtime.config import ModelConfig, RunConfig
from eventpipe.runtime.metrics import Metrics, format_summary
from eventpipe.runtime.model_loader import load_model, run_recipe
from eventpipe.runtime.pipeline import Pipeline
from eventpipe.runtime.preflight import preflight
from eventpipe.runtime.stopper import Stopper
from eventpipe.runtime.warmup_notice import WarmUpNotice
from eventpipe.sources import open_source
from eventpipe.sources.uri import bound_port_note


def input_recipe(cfg: RunConfig, loaded) -> InputRecipe:
    """The checkpoint's recipe with the config's explicit [input]/[window] values on top."""
    return run_recipe(cfg, loaded)


def model_backend(model_cfg: ModelConfig) -> str:
    """``model.backend``, or from the older ``model.fold`` (true: ``cpu``, false: ``float``)."""
    from snn.stepper import check_backend

    if model_cfg.backend is None:
        return "cpu" if model_cfg.fold else "float"
    try:
        backend = check_backend(model_cfg.backend)
    except ValueError as e:
        raise ConfigError(f"model.backend: {e}") from None
    if backend == "cpu" and not model_cfg.fold:
        raise ConfigError("model.fold=false contradicts model.backend='cpu' (a folded backend); "
                          "drop one of them")
    return backend


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
    from snn.stepper import make_stepper

    torch.set_num_threads(max(1, cfg.model.threads))
    from eventpipe.runtime.model_loader import resolve_checkpoint

    backend = model_backend(cfg.model)  # checked before the model loads
    path = resolve_checkpoint(cfg.model.name)
    with reading_checkpoint(path) if path.is_file() else contextlib.nullcontext():
        loaded = load_model(cfg.model.name, num_classes=cfg.model.num_classes,
                            class_names=cfg.model.class_names)
    if backend != "chip":  # the chip is compiled below, once the source's sensor size is known
        loaded.model = make_stepper(loaded.model, backend, device=cfg.model.device)
    recipe = input_recipe(cfg, loaded)
    window_us = recipe.window_us
    input_size = recipe.size
    if loaded.input_size and tuple(input_size) != tuple(loaded.input_size):
        from eventpipe.events import InputSizeWarning
        warnings.warn(InputSizeWarning(
            f"input.size {input_size[0]}x{input_size[1]} differs from the checkpoint's recipe "
            f"({loaded.input_size[0]}x{loaded.input_size[1]}): the model gets frames of a size "
            "it was not trained on"), stacklevel=2)
        if getattr(loaded.model, "input_size", None) is not None:  # said once: not again per frame
            loaded.model.input_size = tuple(input_size)
    source = open_source(cfg.source.uri, speed=cfg.source.speed, loop=cfg.source.loop,
                         sensor_size=cfg.source.sensor_size, queue_size=cfg.source.queue_size,
                         queue_events=cfg.source.queue_events, start=False,
                         **cfg.source.options)
    try:
        if backend == "chip":
            from eventpipe.runtime.chip import use_chip
            loaded, recipe = use_chip(loaded, recipe, cfg.source.sensor_size or getattr(source, "sensor_size", None),
                                      cfg.model.profile)
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


def run(cfg: RunConfig, out: TextIO = sys.stdout, err: TextIO = sys.stderr,
        on_label: Callable[[dict], None] | None = None, *, view: bool = False,
        video: str | None = None, view_dump: str | None = None,
        stopper: Stopper | None = None, record: str | None = None) -> dict:
    """Run until the source ends, ``duration_s`` passes, or SIGINT/SIGTERM; return metrics.
    ``record``: also write the events and labels to this recording (``recorders``).

    ``stopper``: a :class:`Stopper` the caller installed earlier (the CLI does, before
    it imports the runtime); without one, ``run`` installs its own."""
    if stopper is not None:
        return _run(cfg, out, err, on_label, stopper, view=view, video=video,
                    view_dump=view_dump, record=record)
    stopper = Stopper()
    with stopper.installed():
        return _run(cfg, out, err, on_label, stopper, view=view, video=video,
                    view_dump=view_dump, record=record)


def _stopped_at_start(err: TextIO) -> dict:
    """The summary of a run stopped before its pipeline existed."""
    summary = Metrics().snapshot({})
    summary.update(type="metrics", stream="metrics", events_filtered=0, events_out_of_bounds=0)
    err.write("eventpipe: stopped during start-up\n")
    err.write("eventpipe: " + format_summary(summary) + "\n")
    return summary


def _run(cfg, out, err, on_label, stopper: Stopper, *, view, video, view_dump=None,
         record=None) -> dict:
    cfg = preflight(cfg)
    if stopper.requested:
        return _stopped_at_start(err)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pipe = build_pipeline(cfg, out, on_label, view=view, video=video, view_dump=view_dump)
    if record:
        from recorders.tap import attach_recorder
        try:
            attach_recorder(pipe, record, source_uri=cfg.source.uri, err=err)
        except BaseException:
            pipe.source.close()
            raise
    for w in caught:
        err.write(f"eventpipe: warning: {w.message}\n")
    err.write(f"eventpipe: model {pipe.loaded.source} ({len(pipe.loaded.class_names)} classes), "
              f"window {pipe.window_us} us, input {pipe.input_size[0]}x{pipe.input_size[1]}, "
              f"source {cfg.source.uri}{bound_port_note(cfg.source.uri, pipe.source)}\n")
    stopper.pipe = pipe
    try:
        if stopper.requested:
            err.write("eventpipe: stopped during start-up\n")
        else:
            with WarmUpNotice(err):
                pipe.warm_up()
            if not stopper.requested:
                pipe.start()
                pipe.wait(cfg.runtime.duration_s)
    finally:
        pipe.stop()
        pipe.source.close()
        if pipe.viewer is not None:
            pipe.viewer.close()
        summary = pipe.publish_metrics()
        for sink in pipe.sinks:
            sink.flush()
            sink.close()
        # the summary also when the run failed: how far it got (the error line follows)
        err.write("eventpipe: " + format_summary(summary) + "\n")
    return summary
