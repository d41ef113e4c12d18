"""Command-line entry points: ``train_main(argv)`` (``eventpipe train``) and ``eval_main(argv)``.

The main CLI wires them with :func:`add_train_arguments` / :func:`run_train` and
:func:`add_eval_arguments` / :func:`run_eval`.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Optional, Sequence


def add_train_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--config", "-c", default=None, help="TOML file (configs/train_*.toml)")
    p.add_argument("--resume", default=None, help="last.pt to resume from, or 'auto'")
    p.add_argument("--out-dir", default=None, help="override out_dir")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="config overrides, e.g. optim.epochs=3 data.n_per_class=10")
    return p


def run_train(args, out=None) -> int:
    from eventpipe.training.config import config_dict, load_train_config
    from eventpipe.training.trainer import train

    out = out or sys.stdout
    ov = list(args.overrides or [])
    if args.resume:
        ov.append(f"resume={json.dumps(args.resume)}")
    if args.out_dir:
        ov.append(f"out_dir={json.dumps(args.out_dir)}")
    cfg = load_train_config(args.config, ov)
    if args.print_config:
        json.dump(config_dict(cfg), out, indent=2)
        out.write("\n")
        return 0
    summary = train(cfg, log=lambda m: (out.write(m + "\n"), out.flush()))
    return 0 if summary else 1


def train_main(argv: Optional[Sequence[str]] = None) -> int:
    p = add_train_arguments(argparse.ArgumentParser(prog="eventpipe train",
                                                    description="Train an SNN action classifier"))
    return run_train(p.parse_args(argv))


def add_eval_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("checkpoint", help="snn checkpoint (best.pt, final.pt, snn/weights/*.pt)")
    p.add_argument("--config", "-c", default=None,
                   help="TOML whose [data] selects the dataset (default: the checkpoint's training config)")
    p.add_argument("--split", default="test")
    p.add_argument("--png", default=None, help="write the confusion matrix here")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    return p


def run_eval(args, out=None) -> int:
    from eventpipe.config import from_dict
    from eventpipe.training.config import TrainConfig, load_train_config
    from eventpipe.training.datasets import build_dataset
    from eventpipe.training.evaluate import eval_clips, load_for_eval

    out = out or sys.stdout
    model, meta = load_for_eval(args.checkpoint)
    if args.config:
        cfg = load_train_config(args.config, list(args.overrides or []))
    else:
        from eventpipe.config import apply_overrides

        base = (meta.get("extra") or {}).get("train_config") or {}
        cfg = from_dict(TrainConfig, apply_overrides(base, list(args.overrides or [])))
    ds = build_dataset(cfg.data, args.split, train=False)
    res = eval_clips((model, meta), ds, batch_size=args.batch_size, png=args.png)
    out.write(f"accuracy {res['accuracy']:.4f} on {res['n']} clips ({args.split})\n")
    return 0


def eval_main(argv: Optional[Sequence[str]] = None) -> int:
    p = add_eval_arguments(argparse.ArgumentParser(prog="eventpipe eval",
                                                   description="Clip accuracy + confusion matrix"))
    return run_eval(p.parse_args(argv))
