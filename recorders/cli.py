"""``eventpipe record`` and ``eventpipe replay-labels`` (registered by eventpipe.cli with
:func:`add_parsers`; each command is ``run_*(args, out, err) -> int``)."""

from __future__ import annotations

from typing import TextIO

EXIT_OK = 0


def add_parsers(sub) -> None:
    sp = sub.add_parser("record", help="record any source's events into an HDF5 recording")
    sp.add_argument("source", help="a source URI: file:PATH, synthetic:..., zmq+tcp://H:P, "
                                   "udp://H:P, dv://H:P, dvcam:[NAME], camera:N, video:PATH")
    sp.add_argument("out", help="the recording to write (.h5)")
    sp.add_argument("--duration", type=float, default=None, metavar="S",
                    help="stop after S seconds (default: when the source ends; Ctrl-C stops)")
    sp.add_argument("--compression", default="lzf",
                    help="none, lzf (default), gzip[:N], blosc[:CODEC], zstd[:LEVEL] "
                         "(blosc/zstd need the hdf5 extra)")
    sp.add_argument("--speed", type=float, default=None,
                    help="file/synthetic sources: replay speed (default: as fast as possible)")
    sp.add_argument("--flush-every", type=float, default=1.0, metavar="S",
                    help="make the file crash-safe every S seconds of recording time")
    sp.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    sp.set_defaults(func=lambda args, out: run_record(args, out, args.err))

    sp = sub.add_parser("replay-labels", help="re-publish a recording's labels with their "
                                              "original timing (test consumers without a model)")
    sp.add_argument("file", help="a recording (.h5)")
    sp.add_argument("--publish", default="tcp://127.0.0.1:5556", help="ZeroMQ PUB endpoint")
    sp.add_argument("--speed", type=float, default=1.0, help="timing factor (2: twice as fast)")
    sp.add_argument("--max-speed", action="store_true", help="no pacing")
    sp.add_argument("--stream", type=int, default=None, help="only this stream's labels")
    sp.add_argument("--wait-subscribers", type=float, default=5.0, metavar="S",
                    help="wait up to S seconds for a subscriber before sending (0: don't)")
    sp.set_defaults(func=lambda args, out: run_replay_labels(args, out, args.err))


def run_record(args, out: TextIO, err: TextIO) -> int:
    from recorders.replay import record_source

    res = record_source(args.source, args.out, duration_s=args.duration,
                        compression=args.compression, overwrite=args.overwrite, speed=args.speed,
                        flush_every_us=int(args.flush_every * 1e6), progress=err)
    out.write(f"recorded {res['events']:,} events in {res['seconds']:.2f} s "
              f"({res['rate_hz'] / 1e6:.2f} Mev/s) to {res['path']} ({res['mb']:.1f} MB, "
              f"{res['compression']})\n")
    if res["other_stream_events"]:
        out.write(f"not recorded: {res['other_stream_events']:,} events of streams other than "
                  f"stream {res['stream']}\n")
    if res["source_dropped"]:
        out.write(f"the source dropped {res['source_dropped']:,} events (queue full)\n")
    return EXIT_OK


def run_replay_labels(args, out: TextIO, err: TextIO) -> int:
    from eventpipe.sinks.zmq_pub import ZmqPubSink
    from recorders.replay import replay_labels

    sink = ZmqPubSink(args.publish)
    try:
        err.write(f"eventpipe: publishing labels on {sink.endpoint}\n")
        err.flush()
        if args.wait_subscribers > 0 and not sink.wait_subscribers(1, args.wait_subscribers):
            err.write(f"eventpipe: no subscriber after {args.wait_subscribers:g} s; "
                      "sending anyway\n")
        n = replay_labels(args.file, sink, speed=None if args.max_speed else args.speed,
                          stream=args.stream)
    finally:
        sink.close()
    out.write(f"published {n:,} labels from {args.file}\n")
    return EXIT_OK
