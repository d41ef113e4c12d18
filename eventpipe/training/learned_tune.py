"""Fit the learned temporal decoder (``decoder.rule = "learned"``, :mod:`eventpipe.learned_decoder`)
on *training* streams and tune the EMA rule that follows it on the *validation* streams.

The network is fitted on the per-window logits of training-seed streams (seeds ``TRAIN_SEED0 +
...``, 10000-19999; rendered as the training cache renders them, the model stepped from rest with
its state carried), never on the validation (20000-) or held-out (1000-9999) seeds.  Its output
probabilities then replay through the real ``LabelDecoder``'s EMA rule for every setting of
:data:`GRID` on the validation streams (:mod:`eventpipe.training.decoder_tune`), and the rule of
``decoder_tune.pick`` chooses.

    python -m eventpipe.training.learned_tune --config configs/train_synthetic_halves_switch.toml \\
        --checkpoint runs/cand.pt --seeds 10048-10079 --logits-dir runs/tl \\
        --val-logits runs/val_logits.npz --k 6 [--store]

``--store`` writes ``rule = "learned"``, the network (``learned``) and the chosen EMA settings into
the checkpoint's ``extra["decoder"]`` (every other ``extra`` entry kept).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

import numpy as np

from eventpipe.learned_decoder import (LearnedParams, fit, forward, params_to_stored,
                                       stream_features)
from eventpipe.training import decoder_tune as dt

#: the EMA rule's grid after the network: decoder_tune's with dwell 1 (a dwell delays every switch)
GRID = {**dt.GRID, "dwell": (1,)}


def network_streams(params: LearnedParams, streams: Sequence[tuple]) -> list[tuple]:
    """``streams`` (``(logits, truth, t_end)``) with the logits replaced by the log of the
    network's probabilities: replayed through the EMA rule (whose softmax gives those
    probabilities back) they decode as ``rule = "learned"`` does, at a fraction of the cost."""
    out = []
    for lg, tr, te in streams:
        p = forward(params, stream_features(np.asarray(lg), params.k, params.clip))
        out.append((np.log(np.maximum(p, 1e-300)), tr, te))
    return out


def parse_seeds(text: str) -> list[int]:
    """``"10048-10079"`` or ``"10000,10001"`` -> seeds; each must be a training seed."""
    from eventpipe.training.stream_data import TEST_SEED0, TRAIN_SEED0

    seeds = []
    for part in text.split(","):
        a, _, b = part.strip().partition("-")
        try:
            seeds += list(range(int(a), int(b or a) + 1))
        except ValueError:
            raise ValueError(f"--seeds: {part.strip()!r} is not a seed or a range A-B "
                             f"(e.g. 10048-10079 or 10000,10001)") from None
    bad = [s for s in seeds if not TRAIN_SEED0 <= s < TEST_SEED0]
    if bad or not seeds:
        raise ValueError(f"--seeds: training seeds are {TRAIN_SEED0}-{TEST_SEED0 - 1}, got {bad or text!r}")
    return seeds


def training_logits(cfg, model, seeds: Sequence[int], cache_dir: str | None = None) -> list[tuple]:
    """``(logits, truth, t_end)`` of the training-seed streams ``seeds`` under ``cfg.data``
    (one ``<cache_dir>/<seed>.npz`` each, reused when it was made from the same model and data
    config: :func:`~eventpipe.training.decoder_tune.logits_key`; made again otherwise)."""
    from eventpipe.training.config import data_recipe
    from eventpipe.training.stream_data import render_stream

    recipe = data_recipe(cfg.data)
    key = dt.logits_key(cfg, model) if cache_dir else None
    out = []
    for seed in seeds:
        path = os.path.join(cache_dir, f"{seed}.npz") if cache_dir else None
        if path and os.path.isfile(path):
            with np.load(path) as z:
                if "key" in z.files and str(z["key"]) == key:
                    out.append((z["logits"], z["truth"], z["t_end"]))
                    continue
        r = render_stream(int(seed), cfg.data)
        item = (dt.stream_logits(model, r["frames"], recipe, float(r["scale"])), r["truth"], r["t_end"])
        if path:
            os.makedirs(cache_dir, exist_ok=True)
            np.savez(path + ".tmp.npz", logits=item[0], truth=item[1], t_end=item[2], key=key)
            os.replace(path + ".tmp.npz", path)
        out.append(item)
    return out


def tune(train: Sequence[tuple], val: Sequence[tuple], class_names, *, grid: dict = GRID,
         max_changes: float = 1.5, progress: bool = False, **fit_kw):
    """Fit on ``train``, grid the EMA rule on ``val``: ``(params, best row, rows)``."""
    params = fit(train, len(class_names), **fit_kw)
    rows = dt.grid(network_streams(params, val), class_names, grid, progress=progress)
    return params, dt.pick(rows, max_changes), rows


def store(checkpoint, params: LearnedParams, settings: dict) -> None:
    """Write ``rule = "learned"``, the network and the EMA ``settings`` into ``checkpoint``'s
    ``extra["decoder"]`` (atomically; the weights and every other ``extra`` entry kept)."""
    # the EMA settings (challenger / release when set), the rule and the network: one write
    dt.store_settings(checkpoint, settings,
                      also={"rule": "learned", "learned": params_to_stored(params)})


def main(argv=None) -> int:
    import torch

    from eventpipe.training.cli import load_checkpoint_arg
    from eventpipe.training.config import load_train_config

    p = argparse.ArgumentParser(prog="python -m eventpipe.training.learned_tune",
                                description=__doc__.split("\n")[0])
    p.add_argument("--config", required=True, help="a synthetic_stream training TOML")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--seeds", default="10048-10079", help="training-seed streams to fit on")
    p.add_argument("--logits-dir", default=None, help="cache of the training streams' logits (a file per seed, reused when made from the same model and data config)")
    p.add_argument("--val-logits", default=None, help="cache of the validation streams' logits (.npz; reused when made from the same model and data config)")
    p.add_argument("--k", type=int, default=6, help="windows of history")
    p.add_argument("--hidden", type=int, default=0, help="0: logistic regression, else one tanh layer")
    p.add_argument("--switch-weight", type=float, default=1.0)
    p.add_argument("--l2", type=float, default=1e-4)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-changes", type=float, default=1.5)
    p.add_argument("--rows", action="store_true", help="print every grid row")
    p.add_argument("--store", action="store_true")
    args = p.parse_args(argv)
    for bad, why in ((args.k < 1, "--k must be >= 1"), (args.hidden < 0, "--hidden must be >= 0"),
                     (not args.switch_weight >= 0, "--switch-weight must be >= 0"),
                     (not args.l2 >= 0, "--l2 must be >= 0"), (args.steps < 1, "--steps must be >= 1"),
                     (args.seed < 0, "--seed must be >= 0"),
                     (not args.max_changes > 0, "--max-changes must be > 0")):
        if bad:
            p.error(why)
    try:
        seeds = parse_seeds(args.seeds)
    except ValueError as exc:
        p.error(str(exc))
    torch.set_num_threads(1)
    cfg = load_train_config(args.config)
    path, model, meta = load_checkpoint_arg(args.checkpoint, "learned_tune")
    model = model.float().eval()
    names = meta["class_names"]
    val = dt.cached_validation_streams(cfg, model, args.val_logits)
    train = training_logits(cfg, model, seeds, args.logits_dir)
    params, best, rows = tune(train, val, names, k=args.k, hidden=args.hidden,
                              switch_weight=args.switch_weight, l2=args.l2, steps=args.steps,
                              seed=args.seed, max_changes=args.max_changes, progress=True)
    net = network_streams(params, val)
    raw = dt.score_settings(net, names, ema=0.0)
    print(f"network alone (argmax per window, validation): settled {raw['settled_accuracy']:.4f}, "
          f"caught {raw['switch_catch_rate']:.4f}, {raw['label_changes_per_switch']:.2f} changes per switch")
    if args.rows:
        print(dt.format_rows(rows))
    print(f"best (<= {args.max_changes} changes per switch): {dt.setting_text(best)}: settled "
          f"{best['settled_accuracy']:.4f}, caught {best['switch_catch_rate']:.4f}, "
          f"{best['label_changes_per_switch']:.2f} changes per switch")
    if args.store:
        store(path, params, best)
        print(f"stored in {path} (extra['decoder'])")
    return 0


if __name__ == "__main__":
    from eventpipe.errors import run_tool

    sys.exit(run_tool(main, "python -m eventpipe.training.learned_tune"))
