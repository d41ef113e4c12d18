"""How often the folded model's top class agrees with the unfolded (exact) model's.

Run:  python benchmarks/fold_agreement.py [--quick]

Folding (``snn.compile.fold_model``; the ``cpu`` backend adds the event-driven fast path) computes
the same function as the definition, but in a different float32 order: a membrane that lands
within rounding of a threshold can fire in one and not the other, and an SNN carries that flip
forward through its membranes.  This script measures what that costs at the output, per step:

* **shipped model** (``snn/weights/meta_spikeformer_tiny_synthetic.pt``, what the runtime loads):
  seeded synthetic action streams (``eventpipe.synthetic.SyntheticStream``, 128x128 sensor, a
  class switch every 3 s), turned into the checkpoint's input by its recipe
  (``eventpipe.represent.apply``: 100 ms windows every 50 ms, log of pooled counts, 64x64), stepped frame by frame with carried state by the ``float`` backend (unfolded)
  and by the ``cpu`` backend (folded, fast path);
* **random calibrated models** (as ``benchmarks/model_step.py`` builds them: seeded random
  weights, BatchNorm statistics measured on the input, gamma 1.5 -> firing rates ~0.1; Bernoulli
  0.1 event frames, T = 8 steps from rest) of ``meta_spikeformer_hardvs_18m`` at 128-224 pixels.

Figures: per-step top-1 agreement (argmax of the per-step logits), clip top-1 agreement for the
random models (argmax of the mean over T, what ``model(x)`` returns), the fraction of spikes that
differ anywhere in the network, and the largest logit difference.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

import snn
from snn.backends import cpu

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model_step import CHECKPOINT, calibrate  # noqa: E402


def stream_frames(meta: dict, seed: int, seconds: float) -> torch.Tensor:
    """Model input ``[steps, 1, C, H, W]`` of one seeded synthetic stream, as the runtime sees it
    (the checkpoint's input recipe applied to every window of the stream)."""
    from eventpipe.represent import apply, recipe_from_checkpoint
    from eventpipe.synthetic import SyntheticStream

    recipe = recipe_from_checkpoint(meta)
    sensor = tuple((meta.get("extra") or {}).get("sensor_size") or (128, 128))
    packets = SyntheticStream(seed=seed, sensor_size=sensor, duration_s=seconds, packet_us=50_000)
    ev = np.concatenate([p.events for p in packets])
    stride = recipe.stride_us or recipe.window_us
    n = (int(seconds * 1e6) - recipe.window_us) // stride + 1
    return apply(recipe, ev, sensor, t0=0, n_windows=n)[:, None]  # [steps, 1, C, H, W]


def step_through(stepper, frames: torch.Tensor):
    """Per-step logits ``[steps, B, classes]`` and recorded spikes of a stepper over ``frames``."""
    outs, spikes, state = [], [], None
    with torch.no_grad():
        for x in frames:
            out, ctx = stepper.run(x[None], state, record_spikes=True)
            state = ctx.new
            outs.append(out[0])
            spikes.append(ctx.spikes)
    return torch.stack(outs), spikes


def compare(ref, ref_spikes, other, other_spikes) -> dict:
    same_top1 = (ref.argmax(-1) == other.argmax(-1)).float()
    differ = sum(int((a[k] != b[k]).sum()) for a, b in zip(ref_spikes, other_spikes) for k in a)
    total = sum(a[k].numel() for a in ref_spikes for k in a)
    return dict(steps=same_top1.numel(), agree=float(same_top1.mean()), spikes_differ=differ / total,
                max_logit=float((ref - other).abs().max()),
                clip_agree=bool(ref.mean(0).argmax(-1).eq(other.mean(0).argmax(-1)).all()))


def shipped(seeds, seconds, lines):
    model, meta = snn.load_checkpoint(CHECKPOINT)
    exact = snn.make_stepper(model, "float")
    fast = snn.make_stepper(model, "cpu")
    totals = {"cpu": [0, 0]}
    for seed in seeds:
        t0 = time.perf_counter()
        frames = stream_frames(meta, seed, seconds)
        ref, ref_s = step_through(exact, frames)
        for name, m in (("cpu", fast),):
            out, out_s = step_through(m, frames)
            r = compare(ref, ref_s, out, out_s)
            totals[name][0] += round(r["agree"] * r["steps"])
            totals[name][1] += r["steps"]
            line = (f"shipped tiny 64x64, stream seed {seed} ({seconds:.0f} s, {r['steps']} steps): {name} vs float "
                    f"top-1 {r['agree']:.2%}, spikes differing {r['spikes_differ']:.2e}, "
                    f"max |logit diff| {r['max_logit']:.1e} ({time.perf_counter() - t0:.0f} s)")
            print(line, flush=True)
            lines.append(line)
    for name, (a, n) in totals.items():
        line = f"shipped tiny 64x64, all streams: {name} vs float top-1 agreement {a}/{n} = {a / n:.2%}"
        print(line, flush=True)
        lines.append(line)


def random_models(sizes, seeds, lines, T=8, gamma=1.5):
    for size in sizes:
        agree_steps = agree_clips = n_steps = 0
        for seed in seeds:
            torch.manual_seed(seed)
            model = snn.create_model("meta_spikeformer_hardvs_18m")
            g = torch.Generator().manual_seed(seed + 1)
            frames = (torch.rand(T, 1, model.in_channels, size, size, generator=g) < 0.1).float()
            calibrate(model, frames, gamma)
            ref, ref_s = step_through(model, frames)
            out, out_s = step_through(cpu.build(model), frames)
            r = compare(ref, ref_s, out, out_s)
            agree_steps += round(r["agree"] * r["steps"])
            n_steps += r["steps"]
            agree_clips += r["clip_agree"]
            line = (f"random hardvs_18m {size}x{size}, seed {seed}: cpu vs float per-step top-1 {r['agree']:.0%} "
                    f"of {r['steps']}, clip top-1 {'same' if r['clip_agree'] else 'DIFFERENT'}, spikes differing "
                    f"{r['spikes_differ']:.2e}, max |logit diff| {r['max_logit']:.1e}")
            print(line, flush=True)
            lines.append(line)
        line = (f"random hardvs_18m {size}x{size}, {len(seeds)} models: per-step top-1 agreement "
                f"{agree_steps}/{n_steps} = {agree_steps / n_steps:.0%}, clip top-1 {agree_clips}/{len(seeds)}")
        print(line, flush=True)
        lines.append(line)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer streams, seeds and sizes")
    ap.add_argument("--only", choices=("shipped", "random"), default=None, help="run one part only")
    ap.add_argument("--streams", type=int, default=4, help="shipped model: synthetic streams (seeds 0..N-1)")
    ap.add_argument("--seconds", type=float, default=8.0, help="shipped model: seconds per stream")
    ap.add_argument("--models", type=int, default=3, help="random models per size (seeds 0..N-1)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 160, 192, 224], help="random models: input sizes")
    args = ap.parse_args()
    if args.quick:
        args.streams, args.seconds, args.models, args.sizes = 2, 4.0, 1, [128, 224]
    torch.set_num_threads(2)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, load average "
          f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs", flush=True)
    lines = []
    if args.only in (None, "shipped"):
        shipped(seeds=range(args.streams), seconds=args.seconds, lines=lines)
    if args.only in (None, "random"):
        random_models(sizes=args.sizes, seeds=range(args.models), lines=lines)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
