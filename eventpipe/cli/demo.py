"""``eventpipe demo``: a synthetic recording written, read back, summarised and rendered."""

from __future__ import annotations


def add_parser(subparsers):
    sp = subparsers.add_parser("demo", help="make a synthetic recording, read it back and "
                                            "summarise it")
    sp.add_argument("--out", default="eventpipe-demo", help="folder for the demo outputs (made if missing): "
                                                       "synthetic.raw and frames/")
    return sp


def run(args, env) -> int:
    from eventpipe.cli.common import check_output_folder
    from eventpipe.demo import run_demo

    check_output_folder("--out", args.out)  # made with its parents, as view's PNG folder
    return run_demo(args.out, env.stdout)
