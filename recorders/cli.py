"""The work of ``eventpipe record`` and ``eventpipe replay-labels`` (their parsers are
``eventpipe/cli/record.py`` and ``replay_labels.py``)."""

from __future__ import annotations

import threading
from typing import TextIO

from eventpipe.runtime.stopper import stop_on_signals as _stop_on_signals

EXIT_OK = 0


def run_record(args, out: TextIO, err: TextIO) -> int:
    """Record until the source ends, ``--duration`` passes or the first SIGINT/SIGTERM: a
    signal ends the recording as the end of the source does (the file is finalised, the
    summary printed, exit 0); a second one gives up at once (``KeyboardInterrupt``)."""
    from recorders.replay import record_source

    stop = threading.Event()
    with _stop_on_signals(stop):
        res = record_source(args.source, args.out, duration_s=args.duration,
                            compression=args.compression, overwrite=args.overwrite,
                            speed=args.speed, flush_every_us=int(args.flush_every * 1e6),
                            progress=err, stop=stop)
    out.write(f"recorded {res['events']:,} events in {res['seconds']:.2f} s "
              f"({res['rate_hz'] / 1e6:.2f} Mev/s) to {res['path']} ({res['mb']:.1f} MB, "
              f"{res['compression']})\n")
    if res["other_stream_events"]:
        out.write(f"not recorded: {res['other_stream_events']:,} events of streams other than "
                  f"stream {res['stream']}\n")
    if res["back_in_time"]:
        out.write(f"time went backwards: {res['back_in_time']:,} events earlier than an event "
                  "before them (recorded as they came; slices follow the running maximum)\n")
    if res["source_dropped"]:
        out.write(f"the source dropped {res['source_dropped']:,} events (queue full)\n")
    for line in res.get("advice", ()):  # what the source lost or never reached, and why
        if "dropped: the source queue" not in line:  # (said on the line above)
            out.write(f"  {line}\n")
    return EXIT_OK


def run_replay_labels(args, out: TextIO, err: TextIO) -> int:
    from eventpipe.sinks.zmq_pub import ZmqPubSink
    from recorders.reader import RecordingError, open_recording
    from recorders.replay import replay_labels

    with open_recording(args.file) as rec:  # a bad file fails before the endpoint is bound
        streams = rec.info.streams
        rows = rec.labels(stream=args.stream)  # its rows checked (damaged text)
    if not streams:
        raise RecordingError("the recording holds no labels (eventpipe record records events "
                             "only; run --record records the labels too)", path=args.file,
                             field="labels")
    if args.stream is not None and args.stream not in streams:
        raise RecordingError(f"no labels of stream {args.stream} (its label streams: "
                             f"{streams})", path=args.file, field="labels")
    stop = threading.Event()
    with _stop_on_signals(stop):  # Ctrl-C/SIGTERM: stop sending, then the summary
        sink = ZmqPubSink(args.publish)
        try:
            err.write(f"eventpipe: publishing labels on {sink.endpoint}\n")
            err.flush()
            if (args.wait_subscribers > 0 and not sink.wait_subscribers(
                    1, args.wait_subscribers, stop=stop) and not stop.is_set()):
                err.write(f"eventpipe: no subscriber after {args.wait_subscribers:g} s; "
                          "sending anyway\n")
            n = replay_labels(args.file, sink, speed=None if args.max_speed else args.speed,
                              stream=args.stream, stop=stop)
        finally:
            sink.close()
    stopped = (f" (stopped by a signal; {len(rows) - n:,} of {len(rows):,} not sent)"
               if n < len(rows) else "")
    out.write(f"published {n:,} labels from {args.file}{stopped}\n")
    return EXIT_OK
