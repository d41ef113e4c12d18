"""``eventpipe train``: train a spiking action classifier (``configs/train_*.toml``)."""

from __future__ import annotations


def add_parser(subparsers):
    from eventpipe.training.cli import add_train_arguments

    sp = subparsers.add_parser("train", help="train a spiking action classifier "
                                             "(configs/train_*.toml)")
    return add_train_arguments(sp)


def run(args, env) -> int:
    from eventpipe.training.cli import run_train

    return run_train(args, env.stdout)
