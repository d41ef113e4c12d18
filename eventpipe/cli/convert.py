"""``eventpipe convert SRC DST``: convert a recording to another format."""

from __future__ import annotations

from eventpipe.cli.common import add_reading_options, check_not_input, check_output
from eventpipe.errors import ExitStatus


def add_parser(subparsers):
    sp = subparsers.add_parser("convert", help="convert a recording to another format")
    sp.add_argument("src")
    sp.add_argument("dst")
    sp.add_argument("--to", default=None, help="output format (default: from dst's extension)")
    sp.add_argument("--overwrite", action="store_true", help="replace an existing DST")
    add_reading_options(sp)
    return sp


def run(args, env) -> int:
    from pathlib import Path

    from eventpipe.convert import convert
    from eventpipe.errors import ConfigError, EventFormatError
    from eventpipe.info import recognised_by_content

    check_output("dst", args.dst)
    check_not_input("dst", args.dst, args.src)
    if not args.overwrite and Path(args.dst).exists():  # as record: a recording is not replaced unasked
        raise ConfigError(f"dst {args.dst}: already exists; refusing to overwrite it (pass "
                          "--overwrite, or choose another name)")
    if Path(args.src).is_file() and Path(args.src).stat().st_size == 0:
        raise EventFormatError("empty file (0 bytes), not a recording", path=args.src, offset=0)
    n = convert(args.src, args.dst, to=args.to, format=args.format, sensor_size=args.sensor_size)
    if n == 0 and args.format is None and recognised_by_content(args.src) is None:
        Path(args.dst).unlink(missing_ok=True)  # not a conversion of anything
        raise EventFormatError("no events decoded, and nothing in the content says what format "
                               "it is (only the extension does): not a recording? (force one "
                               "with --format)", path=args.src, offset=0)
    env.stdout.write(f"wrote {n:,} events to {args.dst}\n")
    return ExitStatus.OK
