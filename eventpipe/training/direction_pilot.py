"""Pilot of issue #16: is the direction of a rotation learnable from one input representation?

Trains the shipped architecture from scratch on circle clips only (``circle_clockwise`` vs
``circle_anticlockwise``, the pair the OFF/ON model confuses), the same rendered events for
every representation, the same seeds, steps and optimiser, and prints the held-out accuracy
every 25 steps.  With OFF/ON channels one window of a bright hand turning clockwise looks
like a dark hand turning anticlockwise (the synthetic hands come in both contrasts);
``halves`` channels (the window's first and second half, polarity merged) show where the hand
was and went, whatever its contrast.  Run on the shared 2-core CPU (docs/training.md):

    python -m eventpipe.training.direction_pilot polarity 125
    python -m eventpipe.training.direction_pilot halves 125
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

NAMES = ("circle_clockwise", "circle_anticlockwise")


def circle_clips(channels: str, seed0: int, n: int, windows: int = 10, sensor=(64, 64)):
    """``n`` clips (class ``i % 2``, seeds ``seed0 + i``) as model input ``[n, windows, 2, H, W]``
    with the recipe of the shipped model but ``channels``, and their labels."""
    from eventpipe.represent import InputRecipe, apply
    from eventpipe.synthetic import make_clip

    recipe = InputRecipe(size=tuple(sensor), window_us=100_000, channels=channels, clip_count=255,
                         pooling="mean", normalisation="log1p")
    xs, ys = [], []
    for i in range(n):
        ev = make_clip(NAMES[i % 2], seed0 + i, sensor_size=tuple(sensor), duration_us=windows * 100_000)
        xs.append(apply(recipe, ev, tuple(sensor), t0=0, n_windows=windows))
        ys.append(i % 2)
    return torch.stack(xs), torch.tensor(ys)


def run(channels: str, steps: int, n_train: int = 240, n_test: int = 80, T: int = 8, log=print) -> list:
    import snn

    torch.manual_seed(0)
    t = time.time()
    xtr, ytr = circle_clips(channels, 500_000, n_train)
    xte, yte = circle_clips(channels, 900_000, n_test)
    model = snn.create_model("meta_spikeformer_tiny", num_classes=2, T=T, in_channels=2,
                             embed_dims=(16, 32, 64, 128), depths=(1, 1), conv_mlp_ratio=2, v_threshold=0.5)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.05)
    rng = np.random.default_rng(0)

    def accuracy() -> float:
        model.eval()
        with torch.no_grad():
            lo = torch.cat([model(xte[i:i + 40, 1:1 + T].transpose(0, 1)) for i in range(0, len(xte), 40)])
        model.train()
        return float((lo.argmax(1) == yte).float().mean())

    hist = []
    for s in range(1, steps + 1):
        idx = rng.integers(0, len(xtr), 16)
        start = rng.integers(0, xtr.shape[1] - T + 1, 16)
        x = torch.stack([xtr[i, k:k + T] for i, k in zip(idx, start)])
        y = ytr[idx].clone()
        flip = torch.from_numpy(rng.random(16) < 0.5)   # a mirror turns clockwise into anticlockwise
        x[flip] = x[flip].flip(-1)
        y[flip] = 1 - y[flip]
        loss = torch.nn.functional.cross_entropy(model(x.transpose(0, 1)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if s % 25 == 0:
            hist.append((s, float(loss.detach()), accuracy()))
            log(f"{channels} step {s} loss {hist[-1][1]:.3f} test acc {hist[-1][2]:.3f} {time.time() - t:.0f}s")
    return hist


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m eventpipe.training.direction_pilot",
                                description=__doc__.split("\n")[0])
    p.add_argument("channels", choices=("polarity", "halves"))
    p.add_argument("steps", type=int, nargs="?", default=125)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    run(args.channels, args.steps)
    return 0


if __name__ == "__main__":
    from eventpipe.errors import run_tool

    sys.exit(run_tool(main, "python -m eventpipe.training.direction_pilot"))
