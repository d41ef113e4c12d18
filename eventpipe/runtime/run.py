"""Build and run a pipeline from a :class:`RunConfig` (what ``eventpipe run`` does).

:func:`preflight` checks everything that can be checked before the model loads
(the source URI and its scheme, the sensor size a source needs, the model name
or checkpoint path) and fills in the sensor size of a file source from its
header or, like ``eventpipe info``, from one pass over its events.  :func:`run`
runs under a :class:`~eventpipe.runtime.stopper.Stopper` (SIGINT/SIGTERM), which
the CLI installs before it imports the runtime, so a stop during start-up still
ends with a summary.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import os
import sys
import warnings
from pathlib import Path
from typing import Callable, TextIO

import torch

from eventpipe.errors import CheckpointError, ConfigError, DataError, reading_checkpoint
from eventpipe.runtime.config import RunConfig, check_sensor_size
from eventpipe.runtime.metrics import Metrics, format_summary
from eventpipe.runtime.model_loader import REPRESENTATION, load_model
from eventpipe.runtime.pipeline import Pipeline
from eventpipe.runtime.preprocess import InputRecipe
from eventpipe.runtime.sources import open_run_source
from eventpipe.runtime.stopper import Stopper

DEFAULT_WINDOW_US = 50_000


def input_recipe(cfg: RunConfig, loaded) -> InputRecipe:
    """The config's explicit values, else the checkpoint's training recipe, else defaults."""
    ex = loaded.extra or {}
    rep = ex.get("representation")
    return InputRecipe(
        window_us=int(cfg.window.window_us or ex.get("window_us") or DEFAULT_WINDOW_US),
        stride_us=cfg.window.stride_us or ex.get("stream_stride_us"),
        channels=cfg.input.channels or ex.get("channels") or "polarity",
        frame_norm=cfg.input.frame_norm or REPRESENTATION.get(rep, rep) or "counts",
        area=ex.get("resize") == "area",
        clip=ex.get("clip_count"),
    )


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


def _source_kind(uri: str) -> tuple[str, str]:
    """(scheme, rest) for a ``--source`` URI; a bare path is ``file``."""
    from eventpipe.sources.uri import SOURCE_SCHEMES

    if "://" in uri:
        scheme, _, rest = uri.partition("://")
        return scheme.lower(), rest
    scheme, sep, rest = uri.partition(":")
    if sep and scheme.lower() in SOURCE_SCHEMES:
        return scheme.lower(), rest
    return "file", uri


def _schemes_text() -> str:
    from eventpipe.sources.uri import SOURCE_SCHEMES

    return ", ".join(SOURCE_SCHEMES)


def _file_sensor_size(path: str) -> tuple[int, int]:
    """The recording's sensor size from its header, else from one pass over its events."""
    from eventpipe.errors import EventFormatError
    from eventpipe.io import open_reader

    reader = open_reader(path)
    if os.path.getsize(path) == 0:
        raise EventFormatError("empty file (0 bytes), not a recording", path=path, offset=0)
    size = reader.info.sensor_size
    if size is None:
        reader.stats()  # one streaming pass infers the size from the coordinates
        size = reader.info.sensor_size
    if size is None:
        raise EventFormatError(f"no events decoded as {reader.info.format}, so no sensor size "
                               f"(not a recording?)", path=path, offset=0)
    return tuple(int(v) for v in size)


def check_model_name(name: str) -> None:
    """'default', an existing checkpoint file, or a registry name; else a clear error."""
    from eventpipe.runtime.model_loader import resolve_checkpoint

    if name == "default":
        resolve_checkpoint(name)  # the shipped weights must be there
        return
    path = Path(name)
    if path.is_dir():
        raise DataError(f"model {name}: is a directory, not a checkpoint")
    if path.exists():
        if path.stat().st_size == 0:
            raise CheckpointError(f"{name}: empty file, not a checkpoint")
        return
    if path.suffix in (".pt", ".pth", ".ckpt") or os.sep in name:
        raise DataError(f"no such checkpoint: {name}")
    from snn import list_models

    known = list(list_models())
    if name not in known:
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        if "=" in name:
            hint += " (config overrides are --set KEY=VALUE)"
        raise ConfigError(f"unknown model {name!r}{hint}; give 'default', a checkpoint path "
                          f"or one of: {', '.join(known)}")


def preflight(cfg: RunConfig) -> RunConfig:
    """Check what can be checked before anything loads; return the config with the sensor
    size of a file source filled in.  Raises ``ConfigError`` / ``DataError``."""
    from eventpipe.sources.uri import SCHEMES, parse_uri

    uri = cfg.source.uri
    scheme, rest = _source_kind(uri)
    if "://" in uri and scheme not in SCHEMES:
        raise ConfigError(f"source {uri!r}: unknown scheme {scheme!r} (known: {_schemes_text()})")
    if "://" in uri:
        try:
            parse_uri(uri)
        except ValueError as exc:
            raise ConfigError(f"source: {exc}") from None
    check_sensor_size(cfg.source.sensor_size)
    size = cfg.source.sensor_size
    if scheme == "file" and size is None:
        path = rest[2:] if uri.startswith("file://") else rest
        if not path:
            raise ConfigError(f"source {uri!r}: file: needs a path")
        if not Path(path).exists() and ":" in path and not uri.startswith("file:"):
            raise ConfigError(f"source {uri!r}: no such file, and {path.partition(':')[0]!r} "
                              f"is not a source scheme (known: {_schemes_text()})")
        size = _file_sensor_size(path)
        check_sensor_size(size, f"sensor size of {path}")
    elif scheme == "udp" and size is None:
        raise ConfigError(f"source {uri!r}: UDP events carry no sensor size; set it with "
                          f"--set source.sensor_size=[W,H]")
    elif scheme == "dvcam" and not rest:
        try:
            import dv_processing as dv
        except ImportError:
            raise ConfigError("dvcam: needs dv-processing (pip install 'eventpipe[interop]')") \
                from None
        if not dv.io.camera.discover():
            raise DataError("dvcam: no iniVation camera found (is it plugged in and "
                            "readable by this user?)")
    check_model_name(cfg.model.name)
    if size != cfg.source.sensor_size:
        cfg = dataclasses.replace(cfg, source=dataclasses.replace(cfg.source, sensor_size=size))
    return cfg


def build_pipeline(cfg: RunConfig, out: TextIO = sys.stdout,
                   on_label: Callable[[dict], None] | None = None, *, view: bool = False,
                   video: str | None = None) -> Pipeline:
    torch.set_num_threads(max(1, cfg.model.threads))
    from eventpipe.runtime.model_loader import resolve_checkpoint

    path = resolve_checkpoint(cfg.model.name)
    with reading_checkpoint(path) if path.is_file() else contextlib.nullcontext():
        loaded = load_model(cfg.model.name, num_classes=cfg.model.num_classes,
                            class_names=cfg.model.class_names)
    if cfg.model.fold and hasattr(loaded.model, "fold"):
        loaded.model = loaded.model.fold()
    recipe = input_recipe(cfg, loaded)
    window_us = recipe.window_us
    input_size = cfg.input.size or loaded.input_size or (128, 128)
    source = open_run_source(cfg.source.uri, speed=cfg.source.speed, loop=cfg.source.loop,
                             sensor_size=cfg.source.sensor_size,
                             queue_size=cfg.source.queue_size, options=cfg.source.options,
                             start=False)
    try:
        sinks = build_sinks(cfg, out)
        viewer = None
        if view or video:
            from eventpipe.runtime.viewer import LabelViewer
            viewer = LabelViewer(window=view, video=video, fps=1e6 / window_us)
    except BaseException:
        source.close()
        raise
    return Pipeline(cfg, source, loaded, sinks, input_size=input_size, recipe=recipe,
                    on_label=on_label, viewer=viewer)


def run(cfg: RunConfig, out: TextIO = sys.stdout, err: TextIO = sys.stderr,
        on_label: Callable[[dict], None] | None = None, *, view: bool = False,
        video: str | None = None, stopper: Stopper | None = None) -> dict:
    """Run until the source ends, ``duration_s`` passes, or SIGINT/SIGTERM; return metrics.

    ``stopper``: a :class:`Stopper` the caller installed earlier (the CLI does, before
    it imports the runtime); without one, ``run`` installs its own."""
    if stopper is not None:
        return _run(cfg, out, err, on_label, stopper, view=view, video=video)
    stopper = Stopper()
    with stopper.installed():
        return _run(cfg, out, err, on_label, stopper, view=view, video=video)


def _stopped_at_start(err: TextIO) -> dict:
    """The summary of a run stopped before its pipeline existed."""
    summary = Metrics().snapshot({})
    summary.update(type="metrics", stream="metrics", events_filtered=0, events_out_of_bounds=0)
    err.write("eventpipe: stopped during start-up\n")
    err.write("eventpipe: " + format_summary(summary) + "\n")
    return summary


def _run(cfg, out, err, on_label, stopper: Stopper, *, view, video) -> dict:
    cfg = preflight(cfg)
    if stopper.requested:
        return _stopped_at_start(err)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pipe = build_pipeline(cfg, out, on_label, view=view, video=video)
    for w in caught:
        err.write(f"eventpipe: warning: {w.message}\n")
    err.write(f"eventpipe: model {pipe.loaded.source} ({len(pipe.loaded.class_names)} classes), "
              f"window {pipe.window_us} us, input {pipe.input_size[0]}x{pipe.input_size[1]}, "
              f"source {cfg.source.uri}\n")
    stopper.pipe = pipe
    try:
        if stopper.requested:
            err.write("eventpipe: stopped during start-up\n")
        else:
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
    err.write("eventpipe: " + format_summary(summary) + "\n")
    return summary
