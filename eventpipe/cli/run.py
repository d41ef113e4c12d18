"""``eventpipe run``: stream action labels from a source through the model.

The configuration is ``--config FILE``, then ``--set KEY=VALUE`` overrides, then
the flags that stand for config keys (``--source`` = ``source.uri``, ``--model``
= ``model.name``, ``--speed``/``--max-speed`` = ``source.speed``, ``--duration`` =
``runtime.duration_s`` ...), all checked by the one config engine before
anything loads.
"""

from __future__ import annotations

import json
import os

from eventpipe.cli.common import (add_config_options, check_endpoint, check_flag,
                                  check_not_input, check_output, check_output_folder)
from eventpipe.errors import ConfigError, ExitStatus, UsageError


def add_parser(subparsers):
    sp = subparsers.add_parser("run", help="stream action labels from a source through the model")
    sp.add_argument("--source", default=None,
                    help="synthetic:[seed=N], file:PATH, zmq+tcp://H:P, udp://H:P, dv://H:P, "
                         "dvcam:[NAME], camera:N, video:PATH (default: the synthetic stream)")
    sp.add_argument("--model", default=None,
                    help="'default' (shipped), a checkpoint path, or a registry name")
    sp.add_argument("--backend", default=None,
                    help="how the model runs: cpu (folded fast path, default), float (unfolded, exact) "
                         "or chip (the integer event-driven executor, snn.chip)")
    sp.add_argument("--profile", default=None, help="backend chip: hardware profile (configs/chip)")
    add_config_options(sp, "a TOML run config (see configs/)")
    sp.add_argument("--publish", default=None,
                    help="ZeroMQ PUB endpoint for labels; add ?mode=connect&worker=NAME to "
                         "publish through a scale-out broker")
    sp.add_argument("--jsonl", default=None, help="write labels as JSON lines to PATH or -")
    sp.add_argument("--duration", type=float, default=None, help="stop after S seconds")
    sp.add_argument("--speed", type=float, default=None, help="replay speed factor (> 0)")
    sp.add_argument("--max-speed", action="store_true", help="replay as fast as possible")
    sp.add_argument("--loop", action="store_true", help="loop a file source")
    sp.add_argument("--quiet", action="store_true", help="no console label lines")
    sp.add_argument("--metrics-json", default=None, help="write the final metrics here")
    sp.add_argument("--view", action="store_true",
                    help="show the event frames and the current label in an OpenCV window")
    sp.add_argument("--record", default=None, metavar="OUT.h5",
                    help="record the run's events and labels (HDF5, see docs/recorders.md)")
    sp.add_argument("--start", type=float, default=None, metavar="S",
                    help="file source: start S seconds after the recording's first event")
    sp.add_argument("--end", type=float, default=None, metavar="S",
                    help="file source: stop at S seconds after the recording's first event")
    sp.add_argument("--video", default=None, metavar="OUT.mp4",
                    help="record the frames with their labels to a video")
    sp.add_argument("--view-dump", default=None, metavar="DIR",
                    help="also write each picture the viewer shows as DIR/view_NNNNNN.png")
    return sp


def flag_values(args) -> dict:
    """The flags that stand for config keys, by dotted key (they win over file and --set)."""
    if args.speed is not None and args.max_speed:
        raise UsageError("run: --speed and --max-speed exclude each other")
    values = {"source.uri": args.source, "model.name": args.model,
              "source.speed": args.speed, "sinks.publish": args.publish,
              "sinks.jsonl": args.jsonl, "runtime.duration_s": args.duration,
              "model.backend": args.backend, "model.profile": args.profile}
    values = {k: v for k, v in values.items() if v is not None}
    if args.max_speed:
        values["source.speed"] = None
    if args.loop:
        values["source.loop"] = True
    if args.quiet:
        values["sinks.console"] = False
    return values


#: the largest --start/--end (seconds after the first event): 31 years
MAX_SLICE_S = 1e9


def check_slice(start, end) -> None:
    """``--start`` >= 0 and ``--end`` > 0 finite seconds, ``--end`` after ``--start``."""
    check_flag("--start", start, ge=0, le=MAX_SLICE_S)
    check_flag("--end", end, gt=0, le=MAX_SLICE_S)
    if start is not None and end is not None and end <= start:
        raise ConfigError(f"--end {end} must be after --start {start}")


def run(args, env) -> int:
    from eventpipe.render import VIDEO_SUFFIXES
    from eventpipe.runtime.config import load_run_config
    from eventpipe.runtime.stopper import Stopper

    check_output("--metrics-json", args.metrics_json)
    check_output("--record", args.record)
    check_output_folder("--view-dump", args.view_dump)  # a folder, made if missing
    check_output("--video", args.video, suffixes=tuple(VIDEO_SUFFIXES))
    check_slice(args.start, args.end)

    # the signal handlers first: a SIGTERM while torch and the model load still ends with
    # a summary
    with Stopper().installed() as stopper:
        cfg = load_run_config(args.config, args.set, flag_values(args))
        check_output("sinks.jsonl", cfg.sinks.jsonl)
        check_endpoint("sinks.publish", cfg.sinks.publish)
        from eventpipe.sources.uri import source_file

        source = source_file(cfg.source.uri)
        # every file the run writes: --jsonl and --metrics-json had overwritten the recording
        # being read (left as JSON lines / the metrics) without a word
        for flag, out in (("--record", args.record), ("sinks.jsonl", cfg.sinks.jsonl),
                          ("--metrics-json", args.metrics_json)):
            check_not_input(flag, out, source)
        if args.record is not None and os.path.exists(args.record):  # run has no --overwrite
            raise ConfigError(f"--record {args.record}: exists; a recording is never "
                              "overwritten (choose another name, or delete it first)")
        for key, value in (("start_s", args.start), ("end_s", args.end)):
            if value is not None:
                cfg.source.options[key] = value
        from eventpipe.runtime.run import run as run_pipeline

        summary = run_pipeline(cfg, out=env.stdout, err=env.stderr, view=args.view,
                               video=args.video, view_dump=args.view_dump, stopper=stopper,
                               record=args.record)
    if args.metrics_json:
        with open(args.metrics_json, "w") as f:
            json.dump(summary, f, indent=2, default=str)
    return ExitStatus.OK
