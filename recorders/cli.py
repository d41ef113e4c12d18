"""The work of ``eventpipe record`` and ``eventpipe replay-labels`` (their parsers are
``eventpipe/cli/record.py`` and ``replay_labels.py``)."""

from __future__ import annotations

from typing import TextIO

EXIT_OK = 0


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
    from recorders.reader import open_recording
    from recorders.replay import replay_labels

    with open_recording(args.file):  # a bad file fails before the endpoint is bound
        pass
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
