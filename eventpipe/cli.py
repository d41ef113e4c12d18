"""The ``eventpipe`` command line.

One error boundary (:func:`main`) maps exceptions to exit codes and short
messages; ``--traceback`` shows the full trace.  Commands are plain functions
taking parsed arguments and an output stream, so tests drive them in-process.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Callable, TextIO

from eventpipe.errors import ConfigError, EventFormatError

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_BAD_INPUT = 3
EXIT_INTERRUPTED = 130


def _format_us(t: int | None) -> str:
    return "-" if t is None else f"{t} us"


def cmd_info(args, out: TextIO) -> int:
    from eventpipe.info import recording_summary

    summary = recording_summary(args.file, format=args.format, sensor_size=args.sensor_size,
                                on_error=args.on_error)
    if args.json:
        json.dump(summary, out, indent=2)
        out.write("\n")
        return EXIT_OK
    size = summary["sensor_size"]
    size_txt = f"{size[0]} x {size[1]} ({summary['sensor_size_source']})" if size else "unknown"
    rows = [
        ("file", summary["path"]),
        ("format", f"{summary['format']} - {summary['format_title']}"),
        ("sensor size", size_txt),
        ("events", f"{summary['events']:,}"),
        ("first t", _format_us(summary["t_first"])),
        ("last t", _format_us(summary["t_last"])),
        ("duration", f"{summary['duration_us'] / 1e6:.6f} s"),
        ("mean rate", f"{summary['rate_hz'] / 1e6:.3f} Mev/s"),
        ("ON fraction", f"{summary['on_fraction']:.4f}"),
    ]
    for k, v in sorted(summary["extras"].items()):
        rows.append((k, str(v)))
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        out.write(f"{k:<{width}}  {v}\n")
    return EXIT_OK


def cmd_formats(args, out: TextIO) -> int:
    from eventpipe.io.formats import FORMATS

    if args.json:
        json.dump([{"name": f.name, "title": f.title, "extensions": list(f.extensions)}
                   for f in FORMATS], out, indent=2)
        out.write("\n")
        return EXIT_OK
    width = max(len(f.name) for f in FORMATS)
    for f in FORMATS:
        out.write(f"{f.name:<{width}}  {f.title}  [{' '.join(f.extensions)}]\n")
    return EXIT_OK


def cmd_view(args, out: TextIO) -> int:
    from eventpipe.view import view_recording

    result = view_recording(args.file, args.out, window_us=args.window_us, fps=args.fps,
                            max_frames=args.max_frames, format=args.format,
                            sensor_size=args.sensor_size)
    out.write(f"wrote {result['frames']} frames to {result['out']}\n")
    return EXIT_OK


def cmd_convert(args, out: TextIO) -> int:
    from eventpipe.convert import convert

    n = convert(args.src, args.dst, to=args.to, format=args.format, sensor_size=args.sensor_size)
    out.write(f"wrote {n:,} events to {args.dst}\n")
    return EXIT_OK


def cmd_demo(args, out: TextIO) -> int:
    from eventpipe.demo import run_demo

    return run_demo(args.out, out)


def cmd_run(args, out: TextIO) -> int:
    from eventpipe.runtime.config import load_run_config
    from eventpipe.runtime.run import run

    cfg = load_run_config(args.config, list(args.set or []))
    # command-line flags win over the file and --set
    flags = [(cfg.source, "uri", args.source), (cfg.model, "name", args.model),
             (cfg.source, "speed", args.speed), (cfg.sinks, "publish", args.publish),
             (cfg.sinks, "jsonl", args.jsonl), (cfg.runtime, "duration_s", args.duration)]
    for section, key, value in flags:
        if value is not None:
            setattr(section, key, value)
    if args.max_speed:
        cfg.source.speed = None
    if args.loop:
        cfg.source.loop = True
    if args.quiet:
        cfg.sinks.console = False
    summary = run(cfg, out=out, err=args.err, view=args.view, video=args.video,
                  view_dump=args.view_dump)
    if args.metrics_json:
        with open(args.metrics_json, "w") as f:
            json.dump(summary, f, indent=2, default=str)
    return EXIT_OK


def cmd_send(args, out: TextIO) -> int:
    from eventpipe.sources import send_recording

    res = send_recording(args.file, args.to, speed=args.speed, stream_id=args.stream)
    out.write(f"sent {res}\n")
    return EXIT_OK


def cmd_listen(args, out: TextIO) -> int:
    from eventpipe.sinks import format_line, listen

    from eventpipe.runtime.metrics import format_summary

    for msg in listen(args.endpoint, n=args.count, timeout=args.timeout):
        if args.json:
            line = json.dumps(msg)
        elif msg.get("type") == "metrics":
            line = "[metrics] " + format_summary(msg)
        else:
            line = format_line(msg)
        out.write(line + "\n")
        out.flush()
    return EXIT_OK


def cmd_train(args, out: TextIO) -> int:
    from eventpipe.training import run_train

    return run_train(args, out)


def cmd_eval(args, out: TextIO) -> int:
    if args.stream is None:
        from eventpipe.runtime.model_loader import resolve_checkpoint
        from eventpipe.training import run_eval

        args.checkpoint = str(resolve_checkpoint(args.checkpoint))
        return run_eval(args, out)
    from eventpipe.runtime.config import load_run_config
    from eventpipe.runtime.stream_eval import evaluate_stream

    stream, wall_limit = args.stream, None
    if stream.startswith("synthetic:") and "duration_s=" not in stream:
        # a fixed stretch of event time: the result does not depend on machine speed
        stream += ("," if stream != "synthetic:" else "") + f"duration_s={args.duration}"
    else:
        wall_limit = args.duration
    overrides = list(args.set or []) + [f"source.uri={_toml_str(stream)}",
                                        f"model.name={_toml_str(args.checkpoint)}"]
    cfg = load_run_config(args.run_config, overrides)
    if args.max_speed:
        cfg.source.speed = None
    res = evaluate_stream(cfg, duration_s=wall_limit, max_latency_us=int(args.max_latency_ms * 1e3),
                          err=args.err)
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(res, f, indent=2)
    if args.png:
        from eventpipe.runtime.stream_eval import plot_trace

        plot_trace(res["trace"], args.png, title=f"{args.stream}: truth and label per window "
                   f"(first 60 s; window accuracy {res['window_accuracy'] or 0:.3f})")
    rate = res["switch_catch_rate"]
    acc = res["window_accuracy"]
    out.write(f"windows {res['windows']:,}, window accuracy "
              f"{'-' if acc is None else f'{acc:.4f}'}, switches {res['switches']}, caught within "
              f"{res['max_latency_ms']:.0f} ms: {res['switches_caught']} "
              f"({'-' if rate is None else f'{rate:.1%}'}), latency median "
              f"{res['latency_ms_median']} ms, p90 {res['latency_ms_p90']} ms\n")
    return EXIT_OK


def cmd_broker(args, out: TextIO) -> int:
    from eventpipe.transport.scaleout import run_broker

    run_broker(args.in_endpoint, args.workers, args.labels_in, args.labels_out,
               fanout=args.fanout, hwm=args.hwm, stats_every_s=args.stats_every,
               duration_s=args.duration)
    return EXIT_OK


def _toml_str(v: str) -> str:
    return json.dumps(v)


def _sensor_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().replace(",", "x").split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"sensor size must look like 640x480, got {text!r}")
    return w, h


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="eventpipe", description=__doc__.splitlines()[0])
    p.add_argument("--traceback", action="store_true", help="show full tracebacks on errors")
    sub = p.add_subparsers(dest="command", required=True)

    def reading_opts(sp):
        sp.add_argument("--format", default=None, help="force a format (see `eventpipe formats`)")
        sp.add_argument("--sensor-size", type=_sensor_size, default=None, metavar="WxH",
                        help="sensor size when the file has none (or to override it)")

    sp = sub.add_parser("info", help="summarise a recording")
    sp.add_argument("file")
    sp.add_argument("--json", action="store_true", help="print JSON")
    sp.add_argument("--on-error", choices=("raise", "warn"), default="raise",
                    help="damaged files: fail (default) or warn and summarise what decodes")
    reading_opts(sp)
    sp.set_defaults(func=cmd_info)

    sp = sub.add_parser("formats", help="list the formats eventpipe reads")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_formats)

    sp = sub.add_parser("view", help="render a recording as PNG frames or an MP4 video")
    sp.add_argument("file")
    sp.add_argument("--out", required=True, help="a folder (PNG sequence) or a .mp4/.avi path")
    sp.add_argument("--window-us", type=int, default=33_333, help="frame window (us)")
    sp.add_argument("--fps", type=float, default=30.0)
    sp.add_argument("--max-frames", type=int, default=None)
    reading_opts(sp)
    sp.set_defaults(func=cmd_view)

    sp = sub.add_parser("convert", help="convert a recording to another format")
    sp.add_argument("src")
    sp.add_argument("dst")
    sp.add_argument("--to", default=None, help="output format (default: from dst's extension)")
    reading_opts(sp)
    sp.set_defaults(func=cmd_convert)

    sp = sub.add_parser("run", help="stream action labels from a source through the model")
    sp.add_argument("--source", default=None,
                    help="synthetic:[seed=N], file:PATH, zmq+tcp://H:P, udp://H:P, dv://H:P, "
                         "dvcam:[NAME], camera:N, video:PATH (default: the synthetic stream)")
    sp.add_argument("--model", default=None,
                    help="'default' (shipped), a checkpoint path, or a registry name")
    sp.add_argument("--config", default=None, help="a TOML run config (see configs/)")
    sp.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                    help="override a config value (repeatable)")
    sp.add_argument("--publish", default=None,
                    help="ZeroMQ PUB endpoint for labels; add ?mode=connect&worker=NAME to "
                         "publish through a scale-out broker")
    sp.add_argument("--jsonl", default=None, help="write labels as JSON lines to PATH or -")
    sp.add_argument("--duration", type=float, default=None, help="stop after S seconds")
    sp.add_argument("--speed", type=float, default=None, help="replay speed factor")
    sp.add_argument("--max-speed", action="store_true", help="replay as fast as possible")
    sp.add_argument("--loop", action="store_true", help="loop a file source")
    sp.add_argument("--quiet", action="store_true", help="no console label lines")
    sp.add_argument("--metrics-json", default=None, help="write the final metrics here")
    sp.add_argument("--view", action="store_true",
                    help="show the event frames and the current label in an OpenCV window")
    sp.add_argument("--video", default=None, metavar="OUT.mp4",
                    help="record the frames with their labels to a video")
    sp.add_argument("--view-dump", default=None, metavar="DIR",
                    help="also write each picture the viewer shows as DIR/view_NNNNNN.png")
    sp.set_defaults(func=cmd_run)

    sp = sub.add_parser("send", help="stream a recording to a zmq endpoint in our wire format")
    sp.add_argument("file")
    sp.add_argument("--to", required=True, help="e.g. tcp://127.0.0.1:5555")
    sp.add_argument("--speed", type=float, default=None, help="real-time factor (default: max)")
    sp.add_argument("--stream", type=int, default=0, help="stream id")
    sp.set_defaults(func=cmd_send)

    sp = sub.add_parser("listen", help="print label messages published by `eventpipe run`")
    sp.add_argument("endpoint", nargs="?", default="tcp://127.0.0.1:5556")
    sp.add_argument("--count", type=int, default=None, help="stop after N labels")
    sp.add_argument("--timeout", type=float, default=None, help="stop after S s of silence")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_listen)

    from eventpipe.training import add_train_arguments

    sp = sub.add_parser("train", help="train a spiking action classifier (configs/train_*.toml)")
    add_train_arguments(sp)
    sp.set_defaults(func=cmd_train)

    sp = sub.add_parser("eval", help="clip accuracy + confusion matrix, or (--stream) streaming "
                                     "accuracy and action-switch latency")
    sp.add_argument("checkpoint", nargs="?", default="default",
                    help="checkpoint path or 'default' (the shipped model)")
    sp.add_argument("--config", "-c", default=None,
                    help="clips: TOML whose [data] selects the dataset (default: the checkpoint's)")
    sp.add_argument("--split", default="test")
    sp.add_argument("--png", default=None,
                    help="clips: write the confusion matrix here; stream: the truth/label timeline")
    sp.add_argument("--batch-size", type=int, default=32)
    sp.add_argument("--stream", default=None, metavar="URI",
                    help="evaluate on a labelled stream instead, e.g. synthetic:seed=1000")
    sp.add_argument("--run-config", default=None, help="stream: a run TOML (configs/)")
    sp.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE")
    sp.add_argument("--duration", type=float, default=60.0,
                    help="stream: seconds of the synthetic stream's event time (other sources: "
                         "wall-clock seconds)")
    sp.add_argument("--max-speed", action="store_true", help="stream: as fast as possible")
    sp.add_argument("--max-latency-ms", type=float, default=500.0)
    sp.add_argument("--json-out", default=None, help="stream: write the full result as JSON")
    sp.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                    help="clips: dataset config overrides")
    sp.set_defaults(func=cmd_eval)

    sp = sub.add_parser("broker", help="fan event packets out to N `eventpipe run` workers "
                                       "(per-stream affinity) and proxy their labels")
    sp.add_argument("--in", dest="in_endpoint", default="tcp://127.0.0.1:5555",
                    help="where senders connect (PULL, bound)")
    sp.add_argument("--workers", type=int, default=2)
    sp.add_argument("--fanout", default="tcp://127.0.0.1:0",
                    help="worker slots bind here (port P: slot i uses P+i; 0: ephemeral)")
    sp.add_argument("--labels-in", default="tcp://127.0.0.1:5557",
                    help="workers publish here (XSUB, bound)")
    sp.add_argument("--labels-out", default="tcp://127.0.0.1:5556",
                    help="listeners subscribe here (XPUB, bound)")
    sp.add_argument("--hwm", type=int, default=1000)
    sp.add_argument("--stats-every", type=float, default=None, metavar="S")
    sp.add_argument("--duration", type=float, default=None, metavar="S")
    sp.set_defaults(func=cmd_broker)

    sp = sub.add_parser("demo", help="make a synthetic recording, read it back and summarise it")
    sp.add_argument("--out", default="eventpipe-demo", help="folder for the demo outputs")
    sp.set_defaults(func=cmd_demo)
    return p


def _zmq_error() -> type:
    try:
        import zmq
        return zmq.ZMQError
    except ImportError:  # pragma: no cover
        return OSError


def main(argv: list[str] | None = None, out: TextIO | None = None,
         err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    # torch's and numba's OpenMP pools share the cores: idle workers must sleep, not spin (a
    # spinning pool doubles a model step on 2 cores).  Read when OpenMP starts, i.e. at the first
    # torch/numba import, which the commands do lazily; an explicit setting wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help and usage errors
        return int(exc.code or 0)
    func: Callable[..., int] = args.func
    args.err = err
    try:
        return func(args, out)
    except KeyboardInterrupt:
        err.write("interrupted\n")
        return EXIT_INTERRUPTED
    except (EventFormatError, ConfigError) as exc:
        if args.traceback:
            raise
        err.write(f"eventpipe: error: {exc}\n")
        return EXIT_BAD_INPUT
    except (FileNotFoundError, ValueError, OSError, RuntimeError, _zmq_error()) as exc:
        if args.traceback:
            raise
        err.write(f"eventpipe: error: {exc}\n")
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
