"""What a stream model says right after a change of action, step by step (issue #16).

The decoder can only show a new label once the model says it, so a late switch is either the
model's (it keeps the old class, or says something else, for several windows) or the
decoder's (it smooths).  This profiles the raw per-window output around every switch of the
*validation* streams of a training config (the runtime's frames, membranes carried, as
:mod:`eventpipe.training.decoder_tune` runs them): for the ``k``-th window after the last
window of the old action (its end ``50 (k + 1)`` ms later at a 50 ms stride), the mean
probability of the new and of the old class, how often the argmax is the new class, and the
first step at which it is.

    python -m eventpipe.training.switch_profile --config configs/train_synthetic_halves_switch.toml \\
        --checkpoint snn/weights/meta_spikeformer_tiny_synthetic.pt
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

import numpy as np


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
        for i in range(1, len(truth)):
            new, old = int(truth[i]), int(truth[i - 1])
            if new == old or i + steps > len(truth) or np.any(truth[i:i + steps] != new):
                continue
            p_new += p[i:i + steps, new]
            p_old += p[i:i + steps, old]
            hit = am[i:i + steps] == new
            a_new += hit
            first.append(int(np.argmax(hit)) if hit.any() else None)
    n = len(first)
    d = max(1, n)
    return dict(switches=n, p_new=(p_new / d).tolist(), p_old=(p_old / d).tolist(),
                argmax_new=(a_new / d).tolist(), first_new=first)


def format_profile(prof: dict, stride_ms: float = 50.0) -> str:
    lines = [f"{prof['switches']} switches; k = windows after the last old window (its end k+1 strides later)",
             "  k   ends  p(new)  p(old)  argmax=new"]
    for k, (a, b, c) in enumerate(zip(prof["p_new"], prof["p_old"], prof["argmax_new"])):
        lines.append(f"{k:3d} {stride_ms * (k + 1):4.0f} ms  {a:.3f}   {b:.3f}   {c:.3f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    import torch

    import snn
    from eventpipe.training.config import load_train_config
    from eventpipe.training.decoder_tune import cached_validation_streams

    p = argparse.ArgumentParser(prog="python -m eventpipe.training.switch_profile",
                                description=__doc__.split("\n")[0])
    p.add_argument("--config", required=True, help="a synthetic_stream training TOML (its validation streams)")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--steps", type=int, default=14)
    p.add_argument("--logits", default=None, help="keep the streams' logits in this .npz (reused when made from the same model and data config, else made again)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    cfg = load_train_config(args.config)
    model, _ = snn.load_checkpoint(args.checkpoint)
    streams = cached_validation_streams(cfg, model.float().eval(), args.logits)
    print(format_profile(switch_profile(streams, args.steps), cfg.data.stride_us / 1e3 or cfg.data.window_us / 1e3))
    return 0


if __name__ == "__main__":
    from eventpipe.errors import run_tool

    sys.exit(run_tool(main, "python -m eventpipe.training.switch_profile"))
