"""``eventpipe eval [CKPT]``: clip accuracy + confusion matrix, or (``--stream URI``)
streaming accuracy and action-switch latency.  ``--config FILE`` and ``--set
KEY=VALUE`` configure either mode (a training TOML for clips, a run TOML for a
stream)."""

from __future__ import annotations

import argparse
import json

from eventpipe.cli.common import check_flag, check_output
from eventpipe.errors import ExitStatus


def add_parser(subparsers):
    from eventpipe.training.cli import add_eval_arguments

    sp = subparsers.add_parser("eval", help="clip accuracy + confusion matrix, or (--stream) "
                                            "streaming accuracy and action-switch latency")
    add_eval_arguments(sp)
    sp.add_argument("--run-config", dest="config", default=argparse.SUPPRESS,
                    help=argparse.SUPPRESS)  # the old name of --config in stream mode
    sp.add_argument("--stream", default=None, metavar="URI", action="append",
                    help="evaluate on a labelled stream instead, e.g. synthetic:seed=1000 "
                         "(repeat for several streams: each one's line, then all together)")
    sp.add_argument("--duration", type=float, default=60.0,
                    help="stream: seconds of the synthetic stream's event time (other sources: "
                         "wall-clock seconds)")
    sp.add_argument("--max-speed", action="store_true", help="stream: as fast as possible")
    sp.add_argument("--max-latency-ms", type=float, default=500.0)
    sp.add_argument("--json-out", default=None, help="stream: write the full result as JSON")
    sp.add_argument("--settle-ms", type=float, default=500.0,
                    help="stream: windows this long after a switch count as settled")
    sp.add_argument("--confusion-png", default=None,
                    help="stream: the settled windows' confusion matrix (all streams)")
    return sp


def run(args, env) -> int:
    check_flag("--batch-size", args.batch_size, ge=1)
    check_output("--png", args.png, suffixes=(".png", ".pdf", ".svg", ".jpg"))
    if args.stream is None:
        from eventpipe.training.cli import run_eval

        return run_eval(args, env.stdout)
    check_flag("--duration", args.duration, gt=0)
    check_flag("--max-latency-ms", args.max_latency_ms, gt=0)
    check_output("--json-out", args.json_out)
    check_flag("--settle-ms", args.settle_ms, ge=0)
    check_output("--confusion-png", args.confusion_png, suffixes=(".png", ".pdf", ".svg", ".jpg"))
    from eventpipe.cli.common import check_not_input
    from eventpipe.sources.uri import source_file

    for uri in args.stream:  # written after the evaluation: never over a stream being read
        for flag, out in (("--json-out", args.json_out), ("--confusion-png", args.confusion_png)):
            check_not_input(flag, out, source_file(uri))
    from eventpipe.errors import DataError
    from eventpipe.runtime.config import load_run_config
    from eventpipe.labelling.truth import evaluate_recording, labelled_recording
    from eventpipe.runtime.stream_eval import combine, evaluate_stream

    labelled_of = {uri: labelled_recording(uri) for uri in args.stream}  # REC + REC.labels.csv
    _refuse_unlabelled(labelled_of)
    results = []
    for uri in args.stream:
        stream, wall_limit = uri, None
        labelled = labelled_of[uri]
        if labelled is not None:
            cfg = load_run_config(args.config, args.set, {"model.name": args.checkpoint})
            res = evaluate_recording(cfg, *labelled, max_latency_us=int(args.max_latency_ms * 1e3),
                                     err=env.stderr)
        else:
            if not stream.startswith("synthetic:"):
                wall_limit = args.duration
            elif "duration_s=" not in stream:
                # a fixed stretch of event time: the result does not depend on machine speed
                stream += ("," if stream != "synthetic:" else "") + f"duration_s={args.duration}"
            values = {"source.uri": stream, "model.name": args.checkpoint}
            if args.max_speed:
                values["source.speed"] = None
            cfg = load_run_config(args.config, args.set, values)
            res = evaluate_stream(cfg, duration_s=wall_limit,
                                  max_latency_us=int(args.max_latency_ms * 1e3),
                                  settle_us=int(args.settle_ms * 1e3), err=env.stderr)
            if not res["windows"] and not stream.startswith("synthetic:"):
                raise DataError(_no_truth(uri))
        results.append(res)
        env.stdout.write(_line(uri if len(args.stream) > 1 else "", res))
    total = results[0] if len(results) == 1 else combine(results)
    if len(results) > 1:
        env.stdout.write(_line("all", total))
        total = dict(total, streams=[dict(r, uri=u) for u, r in zip(args.stream, results)])
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(total, f, indent=2)
    if args.png:
        from eventpipe.runtime.stream_eval import plot_trace

        res = results[0]
        plot_trace(res["trace"], args.png, title=f"{args.stream[0]}: truth and label per window "
                   f"(first 60 s; window accuracy {res['window_accuracy'] or 0:.3f})")
    if args.confusion_png:
        from eventpipe.runtime.stream_eval import plot_stream_confusion

        plot_stream_confusion(total, args.confusion_png)
    return ExitStatus.OK


def _refuse_unlabelled(labelled_of: dict) -> None:
    """A recording's truth is its labels file: a recording without one has nothing to score,
    said before anything runs.  A missing, empty or foreign file is said as such first: its
    first event is decoded (none: the run finds what is wrong with it, or says the same at its
    end)."""
    from eventpipe.errors import DataError
    from eventpipe.io import open_reader
    from eventpipe.sources.uri import source_file

    for uri, labelled in labelled_of.items():
        if labelled is None and _is_recording(uri):
            first = next(iter(open_reader(source_file(uri)).iter_events(chunk_events=1)), None)
            if first is not None and len(first):
                raise DataError(_no_truth(uri) + " (checked before the run)")


def _no_truth(uri: str) -> str:
    return (f"{uri}: no window carried a truth label, so there is nothing to score: a recording "
            "needs its labels file beside it (REC.labels.csv, written by `eventpipe label REC`)")


def _is_recording(uri: str) -> bool:
    """A ``file:`` URI or a bare path (whose truth could only come from a labels file)."""
    from eventpipe.errors import ConfigError
    from eventpipe.sources.uri import parse_uri

    try:
        return parse_uri(uri).scheme == "file"
    except ConfigError:
        return False  # the run says what is wrong with it


def _line(name: str, res: dict) -> str:
    def pct(v):
        return "-" if v is None else f"{v:.1%}"

    def ms(v):  # percentiles of 50 ms steps: 570.0000000000002 is 570.0
        return "-" if v is None else f"{v:.1f}"

    acc, per = res["window_accuracy"], res["label_changes_per_switch"]
    head = f"{name}: " if name else ""
    classes = ", ".join(f"{k} {pct(v)}" for k, v in sorted(res["per_class_settled"].items()))
    return (f"{head}windows {res['windows']:,}, window accuracy "
            f"{'-' if acc is None else f'{acc:.4f}'}, switches {res['switches']}, "
            f"caught within {res['max_latency_ms']:.0f} ms: {res['switches_caught']} "
            f"({pct(res['switch_catch_rate'])}), latency median "
            f"{ms(res['latency_ms_median'])} ms, p90 {ms(res['latency_ms_p90'])} ms"
            + (f", unlabelled windows {res['unlabelled_windows']}" if "unlabelled_windows" in res else "")
            + "\n"
            f"{head}settled (>= {res['settle_ms']:.0f} ms after a switch): {res['settled_windows']:,} "
            f"windows, {pct(res['settled_accuracy'])} right; label changes {res['label_changes']} "
            f"= {'-' if per is None else f'{per:.2f}'} per switch\n"
            f"{head}per class (settled): {classes}\n")
