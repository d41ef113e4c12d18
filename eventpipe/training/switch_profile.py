"""What a stream model says right after a change of action, step by step (issue #16).

The decoder can only show a new label once the model says it, so a late switch is either the
model's (it keeps the old class, or says something else, for several windows) or the
decoder's (it smooths).  This profiles the raw per-window output around every switch of the
*validation* streams of a training config (the runtime's frames, membranes carried, as
:mod:`eventpipe.training.decoder_tune` runs them): for the ``k``-th window after the last
window of the old action (its end ``50 (k + 1)`` ms later at a 50 ms stride), the mean
probability of the new and of the old class, how often the argmax is the new class, and the
first step at which it is.

``--from-rest K`` steps the model from rest (no membranes carried) from the ``K``-th window after
each switch instead: how many steps of the new action the network itself needs, with nothing of
the old one in its state (steps before ``K`` are not run and print as ``-``).

    python -m eventpipe.training.switch_profile --config configs/train_synthetic_halves_switch.toml \\
        --checkpoint snn/weights/meta_spikeformer_tiny_synthetic.pt
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

import numpy as np


def switches(truth, steps: int) -> list[int]:
    """The first window ``i`` of every change of ``truth`` followed by ``steps`` windows of the
    new truth (the switches a profile counts)."""
    truth = np.asarray(truth)
    return [i for i in range(1, len(truth))
            if truth[i] != truth[i - 1] and i + steps <= len(truth) and np.all(truth[i:i + steps] == truth[i])]


def switch_profile(streams: Sequence[tuple], steps: int = 14) -> dict:
    """``streams``: ``(logits [N, C], truth [N], t_end [N])`` each.  Every change of truth with
    ``steps`` windows of the new truth after it counts (``switches``); per step ``k`` after it:
    ``p_new``/``p_old`` (mean softmax probability of the new/old class), ``argmax_new`` (the
    fraction of switches whose argmax is the new class); ``first_new``: per switch, the first
    ``k < steps`` with argmax = new (``None``: none)."""
    from eventpipe.labels import softmax

    p_new, p_old, a_new = np.zeros(steps), np.zeros(steps), np.zeros(steps)
    first: list = []
    for logits, truth, _ in streams:
        p = softmax(np.asarray(logits, np.float64))
        am = p.argmax(1)
        truth = np.asarray(truth)
        for i in switches(truth, steps):
            new, old = int(truth[i]), int(truth[i - 1])
            p_new += p[i:i + steps, new]
            p_old += p[i:i + steps, old]
            hit = am[i:i + steps] == new
            a_new += hit
            first.append(int(np.argmax(hit)) if hit.any() else None)
    n = len(first)
    d = max(1, n)
    return dict(switches=n, p_new=(p_new / d).tolist(), p_old=(p_old / d).tolist(),
                argmax_new=(a_new / d).tolist(), first_new=first)


def rest_profile(model, streams: Sequence[tuple], recipe, start: int, steps: int = 14) -> dict:
    """:func:`switch_profile` of ``model`` stepped from rest at the ``start``-th window after
    every switch (``streams``: ``(counts [N, C, H, W], truth [N], scale)`` each, the cached
    windows of :func:`~eventpipe.training.stream_data.build_stream_cache`); steps ``k < start``
    are not run (``None``)."""
    from eventpipe.labels import softmax
    from eventpipe.training.decoder_tune import stream_logits

    if not 0 <= start < steps:
        raise ValueError(f"from rest at window {start}: needs 0 <= start < steps ({steps})")
    runs = []
    for frames, truth, scale in streams:
        truth = np.asarray(truth)
        for i in switches(truth, steps):   # stepped from rest over the windows from i + start
            p = softmax(stream_logits(model, frames[i + start:i + steps], recipe, scale).astype(np.float64))
            runs.append((p, int(truth[i]), int(truth[i - 1])))
    d = max(1, len(runs))
    pad = [None] * start
    col = lambda f: pad + (sum(f(p, new, old) for p, new, old in runs) / d).tolist()  # noqa: E731
    first = []
    for p, new, _ in runs:
        hit = p.argmax(1) == new
        first.append(start + int(np.argmax(hit)) if hit.any() else None)
    return dict(switches=len(runs), p_new=col(lambda p, new, old: p[:, new]),
                p_old=col(lambda p, new, old: p[:, old]),
                argmax_new=col(lambda p, new, old: (p.argmax(1) == new).astype(np.float64)),
                first_new=first)


def format_profile(prof: dict, stride_ms: float = 50.0) -> str:
    lines = [f"{prof['switches']} switches; k = windows after the last old window (its end k+1 strides later)",
             "  k   ends  p(new)  p(old)  argmax=new"]
    num = lambda v: "  -  " if v is None else f"{v:.3f}"  # noqa: E731
    for k, (a, b, c) in enumerate(zip(prof["p_new"], prof["p_old"], prof["argmax_new"])):
        lines.append(f"{k:3d} {stride_ms * (k + 1):4.0f} ms  {num(a)}   {num(b)}   {num(c)}")
    return "\n".join(lines)


def main(argv=None) -> int:
    import torch

    from eventpipe.training.cli import load_checkpoint_arg
    from eventpipe.training.config import data_recipe, load_train_config
    from eventpipe.training.decoder_tune import cached_validation_streams

    p = argparse.ArgumentParser(prog="python -m eventpipe.training.switch_profile",
                                description=__doc__.split("\n")[0])
    p.add_argument("--config", required=True, help="a synthetic_stream training TOML (its validation streams)")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--steps", type=int, default=14)
    p.add_argument("--logits", default=None, help="keep the streams' logits in this .npz (reused when made from the same model and data config, else made again)")
    p.add_argument("--from-rest", type=int, default=None, metavar="K",
                   help="step the model from rest from the K-th window after each switch (no state "
                        "carried from the old action) instead of carrying it through the stream")
    args = p.parse_args(argv)
    if args.steps < 1:
        p.error(f"--steps must be >= 1, got {args.steps}")
    if args.from_rest is not None and not 0 <= args.from_rest < args.steps:
        p.error(f"--from-rest must be in [0, --steps), got {args.from_rest}")
    torch.set_num_threads(1)
    cfg = load_train_config(args.config)
    _, model, _ = load_checkpoint_arg(args.checkpoint, "switch_profile")
    model = model.float().eval()
    stride_ms = (cfg.data.stride_us or cfg.data.window_us) / 1e3
    if args.from_rest is None:
        prof = switch_profile(cached_validation_streams(cfg, model, args.logits), args.steps)
    else:
        prof = rest_profile(model, validation_counts(cfg), data_recipe(cfg.data), args.from_rest, args.steps)
    print(format_profile(prof, stride_ms))
    return 0


def validation_counts(cfg) -> list[tuple]:
    """``(counts, truth, scale)`` of every validation stream of a ``synthetic_stream`` config."""
    from eventpipe.training.stream_data import build_stream_cache

    if cfg.data.dataset != "synthetic_stream":
        raise ValueError(f"switch profiles need a synthetic_stream config, got data.dataset={cfg.data.dataset!r}")
    with np.load(build_stream_cache(cfg.data, "test")) as z:
        frames, truth, lengths, scale = z["frames"], z["truth"], z["lengths"], float(z["scale"])
    ends = np.cumsum(lengths)
    return [(frames[a:b], truth[a:b], scale) for a, b in zip(ends - lengths, ends)]


if __name__ == "__main__":
    from eventpipe.errors import run_tool

    sys.exit(run_tool(main, "python -m eventpipe.training.switch_profile"))
