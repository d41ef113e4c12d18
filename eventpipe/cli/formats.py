"""``eventpipe formats``: the formats eventpipe reads."""

from __future__ import annotations

import json

from eventpipe.errors import ExitStatus


def add_parser(subparsers):
    sp = subparsers.add_parser("formats", help="list the formats eventpipe reads")
    sp.add_argument("--json", action="store_true")
    return sp


def run(args, env) -> int:
    from eventpipe.io.formats import FORMATS

    out = env.stdout
    if args.json:
        out.write(json.dumps([{"name": f.name, "title": f.title, "extensions": list(f.extensions)}
                              for f in FORMATS], indent=2) + "\n")
        return ExitStatus.OK
    width = max(len(f.name) for f in FORMATS)
    for f in FORMATS:
        out.write(f"{f.name:<{width}}  {f.title}  [{' '.join(f.extensions)}]\n")
    return ExitStatus.OK
