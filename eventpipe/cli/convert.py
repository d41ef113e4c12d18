"""``eventpipe convert SRC DST``: convert a recording to another format."""

from __future__ import annotations

from eventpipe.cli.common import add_reading_options
from eventpipe.errors import ExitStatus


def add_parser(subparsers):
    sp = subparsers.add_parser("convert", help="convert a recording to another format")
    sp.add_argument("src")
    sp.add_argument("dst")
    sp.add_argument("--to", default=None, help="output format (default: from dst's extension)")
    add_reading_options(sp)
    return sp


def run(args, env) -> int:
    from eventpipe.convert import convert

    n = convert(args.src, args.dst, to=args.to, format=args.format, sensor_size=args.sensor_size)
    env.stdout.write(f"wrote {n:,} events to {args.dst}\n")
    return ExitStatus.OK
