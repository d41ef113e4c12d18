"""Pictures of the synthetic classes: ``python -m eventpipe.synthetic.preview OUT.png``.

Each class shows the clip's middle frame above its accumulated events (ON
red, OFF blue, later events stronger).  Needs matplotlib only for the grid
labels; the tiles are plain numpy.
"""

from __future__ import annotations

import argparse

import numpy as np

from eventpipe.synthetic.actors import CLASS_NAMES
from eventpipe.synthetic.clips import make_clip, render_clip


def event_image(events: np.ndarray, sensor_size) -> np.ndarray:
    """RGB float image: ON events red, OFF blue, weighted by recency (0.3 .. 1)."""
    w, h = sensor_size
    img = np.ones((h, w, 3), np.float32)
    if len(events) == 0:
        return img
    t = events["t"].astype(np.float64)
    age = 0.3 + 0.7 * (t - t.min()) / max(t.max() - t.min(), 1.0)
    for pol, chans in ((1, (1, 2)), (0, (0, 1))):
        m = events["p"] == pol
        acc = np.zeros((h, w), np.float32)
        np.add.at(acc, (events["y"][m], events["x"][m]), age[m])
        scale = np.percentile(acc[acc > 0], 95) if np.any(acc > 0) else 1.0
        shade = np.clip(acc / scale, 0, 1)
        for c in chans:  # remove green+blue for red (ON), red+green for blue (OFF)
            img[:, :, c] -= shade
    return np.clip(img, 0, 1)


def save_grid(path, seed: int = 0, sensor_size=(128, 128), duration_us: int = 500_000) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(CLASS_NAMES)
    cols = 6
    rows = 2 * ((n + cols - 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.0 * cols, 2.1 * rows))
    for k, name in enumerate(CLASS_NAMES):
        r, c = 2 * (k // cols), k % cols
        frames = render_clip(name, seed + k, sensor_size, duration_us)
        ev = make_clip(name, seed + k, sensor_size, duration_us)
        axes[r, c].imshow(frames[len(frames) // 2], cmap="gray", vmin=0, vmax=255)
        axes[r, c].set_title(name, fontsize=9)
        axes[r + 1, c].imshow(event_image(ev, sensor_size))
        axes[r + 1, c].set_title(f"{len(ev)} events", fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"synthetic classes: middle frame and {duration_us // 1000} ms of events "
                 "(ON red, OFF blue, newer stronger)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="output PNG path")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--duration-ms", type=int, default=500)
    args = ap.parse_args(argv)
    save_grid(args.out, args.seed, duration_us=args.duration_ms * 1000)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
