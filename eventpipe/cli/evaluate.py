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
    sp.add_argument("--stream", default=None, metavar="URI",
                    help="evaluate on a labelled stream instead, e.g. synthetic:seed=1000")
    sp.add_argument("--duration", type=float, default=60.0,
                    help="stream: seconds of the synthetic stream's event time (other sources: "
                         "wall-clock seconds)")
    sp.add_argument("--max-speed", action="store_true", help="stream: as fast as possible")
    sp.add_argument("--max-latency-ms", type=float, default=500.0)
    sp.add_argument("--json-out", default=None, help="stream: write the full result as JSON")
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
    from eventpipe.runtime.config import load_run_config
    from eventpipe.runtime.stream_eval import evaluate_stream

    stream, wall_limit = args.stream, None
    from eventpipe.labelling.truth import labelled_recording

    labelled = labelled_recording(stream)  # REC + REC.labels.csv: truth per window
    if labelled is not None:
        from eventpipe.labelling.truth import evaluate_recording

        cfg = load_run_config(args.config, args.set, {"model.name": args.checkpoint})
        res = evaluate_recording(cfg, *labelled, max_latency_us=int(args.max_latency_ms * 1e3),
                                 err=env.stderr)
    elif stream.startswith("synthetic:") and "duration_s=" not in stream:
        # a fixed stretch of event time: the result does not depend on machine speed
        stream += ("," if stream != "synthetic:" else "") + f"duration_s={args.duration}"
    else:
        wall_limit = args.duration
    if labelled is None:
        values = {"source.uri": stream, "model.name": args.checkpoint}
        if args.max_speed:
            values["source.speed"] = None
        cfg = load_run_config(args.config, args.set, values)
        res = evaluate_stream(cfg, duration_s=wall_limit,
                              max_latency_us=int(args.max_latency_ms * 1e3), err=env.stderr)
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(res, f, indent=2)
    if args.png:
        from eventpipe.runtime.stream_eval import plot_trace

        plot_trace(res["trace"], args.png, title=f"{args.stream}: truth and label per window "
                   f"(first 60 s; window accuracy {res['window_accuracy'] or 0:.3f})")
    rate = res["switch_catch_rate"]
    acc = res["window_accuracy"]
    env.stdout.write(f"windows {res['windows']:,}, window accuracy "
                     f"{'-' if acc is None else f'{acc:.4f}'}, switches {res['switches']}, "
                     f"caught within {res['max_latency_ms']:.0f} ms: {res['switches_caught']} "
                     f"({'-' if rate is None else f'{rate:.1%}'}), latency median "
                     f"{res['latency_ms_median']} ms, p90 {res['latency_ms_p90']} ms"
                     + (f", unlabelled windows {res['unlabelled_windows']}"
                        if "unlabelled_windows" in res else "") + "\n")
    return ExitStatus.OK
