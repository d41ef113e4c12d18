"""``eventpipe train`` and the clip mode of ``eventpipe eval``: their arguments and bodies.

Both run through the one command-line door (:mod:`eventpipe.cli`): ``train_main(argv)``
and ``eval_main(argv)`` (and ``python -m eventpipe.training``) hand their arguments
to it, so errors, exit statuses and ``--traceback`` are the same as for every
command.  Overrides are ``--set KEY=VALUE`` (repeatable), as for ``run``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

from eventpipe.errors import ExitStatus, UsageError, reading_checkpoint


def _config_options(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--config", "-c", default=None, metavar="FILE", help=what)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set optim.epochs=3 (repeatable)")


def add_train_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    _config_options(p, "TOML file (configs/train_*.toml)")
    p.add_argument("--resume", default=None, help="last.pt to resume from, or 'auto'")
    p.add_argument("--out-dir", default=None, help="override out_dir")
    p.add_argument("--data", default=None, metavar="DIR",
                   help="train on your own recordings: DIR holds NAME.h5 + NAME.labels.csv "
                        "takes (data.dataset=recordings; docs/own_actions.md)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    return p


def run_train(args, out=None) -> int:
    from eventpipe.config import load_config
    from eventpipe.training.config import TrainConfig, config_dict

    out = out or sys.stdout
    from eventpipe.training.recordings import data_dir_values

    values = data_dir_values(getattr(args, "data", None), args.config, list(args.set or []))
    if args.resume:
        values["resume"] = args.resume
    if args.out_dir:
        values["out_dir"] = args.out_dir
    cfg = load_config(TrainConfig, args.config, list(args.set or []), values)
    if args.print_config:
        out.write(json.dumps(config_dict(cfg), indent=2) + "\n")
        return ExitStatus.OK
    _check_train_inputs(cfg)
    from eventpipe.training.trainer import train

    summary = train(cfg, log=lambda m: (out.write(m + "\n"), out.flush()))
    return ExitStatus.OK if summary else ExitStatus.RUNTIME


def _check_train_inputs(cfg) -> None:
    """The files training will read, checked before the (long) dataset preparation: a
    resume state that is missing or not a training state, initial weights that are missing;
    and the paths it will write (found after the training otherwise): an ``export`` that is a
    folder, an ``out_dir`` that is a file."""
    from eventpipe.errors import ConfigError

    if cfg.export and Path(cfg.export).is_dir():
        raise ConfigError(f"export {cfg.export}: is a folder, expected a file (the exported "
                          "checkpoint)")
    if Path(cfg.out_dir).exists() and not Path(cfg.out_dir).is_dir():
        raise ConfigError(f"out_dir {cfg.out_dir}: is a file, expected a folder")
    if cfg.resume and cfg.resume != "auto":
        path = Path(cfg.resume)
        if not path.is_file():
            raise FileNotFoundError(2, "no such training state to resume from", str(path))
        from eventpipe.training.trainer import load_train_state

        with reading_checkpoint(path, ("a training state", "the last.pt of a training run")):
            load_train_state(path)
    init = getattr(cfg, "init", None)
    if init and not cfg.resume:
        if not Path(init).exists():
            raise FileNotFoundError(2, "no such checkpoint for init", str(init))
        from eventpipe.runtime.model_loader import check_checkpoint_file

        check_checkpoint_file(init, f"init {init}")
        import snn

        with reading_checkpoint(init):
            snn.load_checkpoint(init)


def add_eval_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("checkpoint", nargs="?", default="default",
                   help="checkpoint (best.pt, final.pt, snn/weights/*.pt) or 'default' "
                        "(the shipped model)")
    _config_options(p, "clips: a training TOML whose [data] selects the dataset (default: the "
                       "checkpoint's training config); --stream: a run TOML (configs/)")
    # every dataset has these two (any other name read the test split, and the output said
    # the other name)
    p.add_argument("--split", default="test", choices=("train", "test"),
                   help="clips: which split to score (default test)")
    p.add_argument("--png", default=None, help="write the confusion matrix here")
    p.add_argument("--batch-size", type=int, default=32)
    return p


def checkpoint_path(name: str, who: str = "eval") -> Path:
    """``eval``'s (or the tool ``who``'s) checkpoint argument: 'default' or an existing file
    (else a clear error)."""
    from eventpipe.runtime.model_loader import check_checkpoint_file, resolve_checkpoint

    path = resolve_checkpoint(name)
    if not path.exists():
        if "=" in name:
            raise UsageError(f"{who}: {name!r} is not a checkpoint; config overrides are "
                             f"--set KEY=VALUE")
        raise FileNotFoundError(2, "no such checkpoint", str(path))
    check_checkpoint_file(path)
    return path


def load_checkpoint_arg(name: str, who: str):
    """A training tool's ``--checkpoint`` (``decoder_tune``, ``switch_profile``, ...): 'default'
    or a checkpoint file, loaded with the errors ``eval`` gives (a device, a damaged or foreign
    file: one line).  Returns ``(path, model, meta)``."""
    import snn

    path = checkpoint_path(name, who)
    with reading_checkpoint(path):
        model, meta = snn.load_checkpoint(path)
    return path, model, meta


def run_eval(args, out=None) -> int:
    from eventpipe.config import load_config
    from eventpipe.training.config import TrainConfig
    from eventpipe.training.datasets import build_dataset
    from eventpipe.training.evaluate import eval_clips, load_for_eval

    out = out or sys.stdout
    path = checkpoint_path(args.checkpoint)
    if args.config:  # the dataset config first: a bad one fails before the model loads
        cfg = load_config(TrainConfig, args.config, list(args.set or []))
    with reading_checkpoint(path):
        model, meta = load_for_eval(str(path))
    if not args.config:
        base = (meta.get("extra") or {}).get("train_config") or {}
        data = base.get("data") or {}
        if meta.get("recipe") is None and data.get("input_size"):  # written before recipes,
            base = {**base, "data": {**data, "input_size": list(data["input_size"])[::-1]}}  # (H, W)
        cfg = load_config(TrainConfig, None, list(args.set or []), base=base)
    ds = build_dataset(cfg.data, args.split, train=False)
    res = eval_clips((model, meta), ds, batch_size=args.batch_size, png=args.png)
    out.write(f"accuracy {res['accuracy']:.4f} on {res['n']} clips ({args.split})\n")
    return ExitStatus.OK


def train_main(argv: Optional[Sequence[str]] = None) -> int:
    """``eventpipe train ARGS`` through the one door."""
    from eventpipe.cli import main

    return main(["train", *(sys.argv[1:] if argv is None else argv)])


def eval_main(argv: Optional[Sequence[str]] = None) -> int:
    """``eventpipe eval ARGS`` through the one door."""
    from eventpipe.cli import main

    return main(["eval", *(sys.argv[1:] if argv is None else argv)])
