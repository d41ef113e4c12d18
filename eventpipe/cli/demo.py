"""``eventpipe demo``: a synthetic recording written, read back, summarised and rendered."""

from __future__ import annotations


def add_parser(subparsers):
    sp = subparsers.add_parser("demo", help="make a synthetic recording, read it back and "
                                            "summarise it")
    sp.add_argument("--out", default="eventpipe-demo", help="folder for the demo outputs")
    return sp


def run(args, env) -> int:
    from eventpipe.demo import run_demo

    return run_demo(args.out, env.stdout)
