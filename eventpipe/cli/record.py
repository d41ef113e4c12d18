"""``eventpipe record SOURCE OUT.h5``: record any source's events (see docs/recorders.md)."""

from __future__ import annotations

from eventpipe.errors import ExitStatus


def add_parser(subparsers):
    sp = subparsers.add_parser("record", help="record any source's events into an HDF5 recording")
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
                    help="make the file crash-safe every S seconds of recording time "
                         "(0.001 to 86400; default 1)")
    sp.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    return sp


def run(args, env) -> int:
    import os

    from eventpipe.cli.common import check_flag, check_not_input, check_output
    from eventpipe.sources.uri import source_file
    from eventpipe.errors import ConfigError
    from recorders.cli import run_record
    from recorders.layout import compression_args

    # checked before any source opens (a camera or socket may send nothing for a long time)
    check_flag("--duration", args.duration, gt=0)
    check_flag("--speed", args.speed, gt=0)
    check_flag("--flush-every", args.flush_every, gt=0, optional=False)
    # at least 1 ms (finer rounds to 0 us, and costs a flush per packet), at most a day
    # (1e300 s meant never: a crash would lose the whole recording)
    check_flag("--flush-every", args.flush_every, ge=0.001, le=86400.0)
    check_output("out", args.out)
    check_not_input("out", args.out, source_file(args.source))
    if not args.overwrite and os.path.exists(args.out):  # as run --record: a flag's value
        raise ConfigError(f"out {args.out}: already exists; refusing to overwrite it (pass "
                          "--overwrite, or choose another name)")
    try:
        compression_args(args.compression)
    except ValueError as e:
        raise ConfigError(f"--compression: {e}") from None
    run_record(args, env.stdout, env.stderr)
    return ExitStatus.OK
