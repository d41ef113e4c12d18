"""``eventpipe listen [ENDPOINT]``: print the label messages ``eventpipe run`` publishes."""

from __future__ import annotations

import json

from eventpipe.cli.common import check_endpoint, check_flag
from eventpipe.errors import ExitStatus


def add_parser(subparsers):
    sp = subparsers.add_parser("listen", help="print label messages published by `eventpipe run`")
    sp.add_argument("endpoint", nargs="?", default="tcp://127.0.0.1:5556")
    sp.add_argument("--count", type=int, default=None, help="stop after N labels")
    sp.add_argument("--timeout", type=float, default=None, help="stop after S s of silence")
    sp.add_argument("--json", action="store_true")
    return sp


def _print(msg: dict, as_json: bool, out) -> None:
    from eventpipe.runtime.metrics import format_summary
    from eventpipe.sinks import format_line

    if as_json:
        line = json.dumps(msg)
    elif msg.get("type") == "metrics":
        line = "[metrics] " + format_summary(msg)
    else:
        line = format_line(msg)
    out.write(line + "\n")
    out.flush()


def run(args, env) -> int:
    from eventpipe.sinks import listen
    from eventpipe.sinks.zmq_pub import MAX_LABEL_MESSAGE

    check_flag("--count", args.count, ge=1)
    check_flag("--timeout", args.timeout, gt=0)
    check_endpoint("endpoint", args.endpoint, connects=True)
    import threading

    from eventpipe.runtime.stopper import stop_on_signals

    out = env.stdout
    got = 0
    stats: dict = {}
    stop = threading.Event()
    try:
        # Ctrl-C/SIGTERM: the ordinary end of a listener (exit 0, what arrived is said)
        with stop_on_signals(stop):
            for msg in listen(args.endpoint, n=args.count, timeout=args.timeout, stats=stats,
                              stop=stop):
                got += 1
                _print(msg, args.json, out)
    finally:  # also after Ctrl-C: what was skipped is said
        if stats.get("malformed"):
            env.stderr.write(f"eventpipe: skipped {stats['malformed']:,} malformed messages from "
                             f"{args.endpoint} (not JSON objects)\n")
            env.stderr.flush()
        if stats.get("dropped_connections"):
            env.stderr.write(f"eventpipe: the connection to {args.endpoint} dropped "
                             f"{stats['dropped_connections']:,} times and was made again (the "
                             f"publisher stopped, or sent a message over {MAX_LABEL_MESSAGE:,} "
                             "bytes, which is refused)\n")
            env.stderr.flush()
    if stop.is_set():
        env.stderr.write(f"eventpipe: stopped by a signal after {got:,} messages from "
                         f"{args.endpoint}\n")
        env.stderr.flush()
    elif not got and args.timeout is not None:  # silence is not an error, but say so
        env.stderr.write(f"eventpipe: nothing arrived on {args.endpoint} in {args.timeout:g} s "
                         "(is `eventpipe run --publish` sending there?)\n")
        env.stderr.flush()
    return ExitStatus.OK
