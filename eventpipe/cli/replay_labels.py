"""``eventpipe replay-labels OUT.h5 --publish EP``: re-publish recorded labels with their
original timing (see docs/recorders.md)."""

from __future__ import annotations

from eventpipe.errors import ExitStatus


def add_parser(subparsers):
    sp = subparsers.add_parser("replay-labels", help="re-publish a recording's labels with "
                               "their original timing (test consumers without a model)")
    sp.add_argument("file", help="a recording (.h5)")
    sp.add_argument("--publish", default="tcp://127.0.0.1:5556", help="ZeroMQ PUB endpoint")
    sp.add_argument("--speed", type=float, default=1.0, help="timing factor (2: twice as fast)")
    sp.add_argument("--max-speed", action="store_true", help="no pacing")
    sp.add_argument("--stream", type=int, default=None, help="only this stream's labels")
    sp.add_argument("--wait-subscribers", type=float, default=5.0, metavar="S",
                    help="wait up to S seconds for a subscriber before sending (0: don't)")
    return sp


def run(args, env) -> int:
    from recorders.cli import run_replay_labels

    run_replay_labels(args, env.stdout, env.stderr)
    return ExitStatus.OK
