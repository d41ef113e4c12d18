"""``eventpipe send FILE --to tcp://HOST:PORT``: stream a recording in our wire format.

Delivery is confirmed: with no receiver, or one that goes away, the command
fails after ``--timeout`` seconds instead of reporting packets that nobody got.
The counts are printed as one JSON object.
"""

from __future__ import annotations

import json

from eventpipe.cli.common import check_endpoint, check_flag
from eventpipe.errors import ConfigError, ExitStatus


def add_parser(subparsers):
    sp = subparsers.add_parser("send", help="stream a recording to a zmq endpoint in our wire "
                                            "format (delivery confirmed)")
    sp.add_argument("file")
    sp.add_argument("--to", required=True, help="e.g. tcp://127.0.0.1:5555")
    sp.add_argument("--speed", type=float, default=None, help="real-time factor (default: max)")
    sp.add_argument("--stream", type=int, default=0, help="stream id")
    sp.add_argument("--timeout", type=float, default=5.0, metavar="S",
                    help="fail when no receiver accepts the connection, or the packets are "
                         "not delivered, within S seconds (default 5)")
    return sp


def run(args, env) -> int:
    from eventpipe.io import open_reader
    from eventpipe.sources.sender import send_recording
    from eventpipe.sources.uri import parse_tcp_endpoint

    check_flag("--speed", args.speed, gt=0)
    # libzmq takes it in int milliseconds: at most ~24 days (1e6 s, 11.6 days, is plenty)
    check_flag("--timeout", args.timeout, gt=0, le=1e6)
    check_flag("--stream", args.stream, ge=0, le=0xFFFFFFFF)
    try:
        parse_tcp_endpoint(args.to)
    except ValueError as exc:
        raise ConfigError(f"--to: {exc}") from None
    check_endpoint("--to", args.to, connects=True)
    import threading

    from eventpipe.runtime.stopper import stop_on_signals

    open_reader(args.file)  # a bad file is a data error before any socket opens
    # Ctrl-C/SIGTERM: stop sending; what was sent is delivered and counted ("stopped": true)
    with stop_on_signals(threading.Event()) as stop:
        res = send_recording(args.file, args.to, speed=args.speed, stream_id=args.stream,
                             confirm=True, send_timeout_s=args.timeout, linger_s=args.timeout,
                             stop=stop)
    env.stdout.write(json.dumps({"to": args.to, **res}) + "\n")
    return ExitStatus.OK
