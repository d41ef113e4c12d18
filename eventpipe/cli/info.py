"""``eventpipe info FILE``: summarise a recording."""

from __future__ import annotations

import json

from eventpipe.cli.common import add_reading_options
from eventpipe.errors import ExitStatus


def add_parser(subparsers):
    sp = subparsers.add_parser("info", help="summarise a recording")
    sp.add_argument("file")
    sp.add_argument("--json", action="store_true", help="print JSON")
    sp.add_argument("--on-error", choices=("raise", "warn"), default="raise",
                    help="damaged files: fail (default) or warn and summarise what decodes")
    add_reading_options(sp)
    return sp


def _format_us(t: int | None) -> str:
    return "-" if t is None else f"{t} us"


def run(args, env) -> int:
    from eventpipe.info import recording_summary

    out = env.stdout
    summary = recording_summary(args.file, format=args.format, sensor_size=args.sensor_size,
                                on_error=args.on_error)
    if args.json:
        out.write(json.dumps(summary, indent=2) + "\n")
        out.flush()
        return ExitStatus.OK
    size = summary["sensor_size"]
    size_txt = f"{size[0]} x {size[1]} ({summary['sensor_size_source']})" if size else "unknown"
    rows = [
        ("file", summary["path"]),
        ("format", f"{summary['format']} - {summary['format_title']}"),
        ("sensor size", size_txt),
        ("events", f"{summary['events']:,}"),
        ("first t", _format_us(summary["t_first"])),
        ("last t", _format_us(summary["t_last"])),
        ("duration", f"{summary['duration_us'] / 1e6:.6f} s"),
        ("mean rate", f"{summary['rate_hz'] / 1e6:.3f} Mev/s"),
        ("ON fraction", f"{summary['on_fraction']:.4f}"),
    ]
    if summary["back_in_time"]:  # said only where time goes backwards
        rows.append(("back in time", f"{summary['back_in_time']:,} events earlier than an "
                                     "event before them"))
    for k, v in sorted(summary["extras"].items()):
        rows.append((k, str(v)))
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        out.write(f"{k:<{width}}  {v}\n")
    out.flush()
    return ExitStatus.OK
