"""``eventpipe replay-labels OUT.h5 --publish EP``: re-publish recorded labels with their
original timing (see docs/recorders.md)."""

from __future__ import annotations

from eventpipe.errors import ExitStatus


def add_parser(subparsers):
    sp = subparsers.add_parser("replay-labels", help="re-publish a recording's labels with "
                               "their original timing (test consumers without a model)")
    sp.add_argument("file", help="a recording (.h5)")
    sp.add_argument("--publish", default="tcp://127.0.0.1:5556", help="ZeroMQ PUB endpoint")
    sp.add_argument("--speed", type=float, default=None,
                    help="timing factor (2: twice as fast; default 1)")
    sp.add_argument("--max-speed", action="store_true", help="no pacing")
    sp.add_argument("--stream", type=int, default=None, help="only this stream's labels")
    sp.add_argument("--wait-subscribers", type=float, default=5.0, metavar="S",
                    help="wait up to S seconds for a subscriber before sending (0: don't)")
    return sp


def replay_speed(args) -> float | None:
    """The timing factor: None (no pacing) for ``--max-speed``, else ``--speed`` (default 1)."""
    if args.max_speed:
        return None
    return 1.0 if args.speed is None else args.speed


def run(args, env) -> int:
    from eventpipe.cli.common import check_endpoint, check_flag
    from eventpipe.errors import UsageError
    from recorders.cli import run_replay_labels

    if args.speed is not None and args.max_speed:
        raise UsageError("replay-labels: --speed and --max-speed exclude each other")
    check_flag("--speed", args.speed, gt=0)
    check_flag("--wait-subscribers", args.wait_subscribers, ge=0, optional=False)
    check_endpoint("--publish", args.publish)
    args.speed = replay_speed(args)
    run_replay_labels(args, env.stdout, env.stderr)
    return ExitStatus.OK
