"""Chip backend: executor step vs the float fast path, side by side in one run, and energy per label.

Run:  python benchmarks/chip.py [--quick] [--no-hardvs]

* shipped model (``snn/weights/meta_spikeformer_tiny_synthetic.pt``, 64x64): frames are the
  runtime's integer counts of a seeded synthetic stream (the chip reads them; the float model reads
  their normalisation), calibrated on synthetic training clips, for the profile the runtime takes
  (the one the checkpoint was snapped for: ``exact`` for the shipped model);
* hardvs_18m (128x128): random weights with BatchNorm calibrated as ``benchmarks/model_step.py``
  does (firing rates ~0.1), Bernoulli(0.1) count frames (seeded), input normalisation ``counts``;
* each figure: minimum (and median) wall time per step over repeats after warm-up, state carried
  (label by stepping); the float anchor is the ``cpu`` backend (folded, event-driven float32 fast
  path) at 1 and 2 torch/numba threads, its 8-step clip recompute on 2 threads the anchor of the
  1/20 goal; the executor on 1 and 2 numba threads; on a loaded machine the CPU time of the calling
  thread (1 thread each) is the steadier comparison;
* where the executor's time goes, per op kind and op: ``python benchmarks/chip_profile.py
  [--shipped] [--threads N]`` (``Executor.step(times=...)``);
* energy per label = one step's energy (a label per step): the Spike-driven Transformer papers'
  convention beside our exact counts, memory traffic apart (``snn/backends/chip/energy.py``).
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

import snn  # noqa: E402
import snn.chip  # noqa: E402
from snn.backends.chip.compile import normalise  # noqa: E402
from snn.backends.chip.energy import energy  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKPOINT = os.path.join(HERE, "..", "snn", "weights", "meta_spikeformer_tiny_synthetic.pt")
CLIP_T = 8


def fold_fast(model):
    """The float fast path: the ``cpu`` backend (folded model, event-driven float32 kernels)."""
    from snn.stepper import make_stepper

    return make_stepper(model, "cpu")


def timed(fn, repeats, warmup=2):
    """``(min wall ms, median wall ms, min CPU ms of the calling thread)`` per call."""
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.thread_time()
        fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.thread_time() - c)
    return min(wall) * 1e3, statistics.median(wall) * 1e3, min(cpu) * 1e3


def fmt(t):
    return f"{t[0]:7.2f} ms (median {t[1]:.2f})"


def float_step(model, frames):
    state = [None]
    i = [0]

    def one():
        with torch.no_grad():
            _, state[0] = model.step(frames[i[0] % len(frames)], state[0])
        i[0] += 1
    return one


def chip_step(ex, counts):
    state = [None]
    i = [0]
    stats = []

    def one():
        _, state[0], st = ex.step(counts[i[0] % len(counts)], state[0])
        stats.append(st)
        i[0] += 1
    return one, stats


def compare(tag, model, prog, counts, float_frames, repeats, clip_repeats, lines):
    fast = fold_fast(model)
    ex = snn.chip.Executor(prog)
    one_chip, stats = chip_step(ex, counts)
    t_chip = timed(one_chip, repeats)
    ex2 = snn.chip.Executor(prog, threads=2)
    one_chip2, _ = chip_step(ex2, counts)
    while ex2.thread_plan()["tuning"] > 0:                       # the thread plan, chosen by measurement
        one_chip2()
    plan = ex2.thread_plan()
    t_chip2 = timed(one_chip2, repeats)
    res = {}
    for n in (1, 2):
        torch.set_num_threads(n)
        res[n] = timed(float_step(fast, float_frames), repeats)
    torch.set_num_threads(2)
    clip = float_frames[:CLIP_T]                                 # [T, 1, C, H, W]: an 8-step clip from rest
    with torch.no_grad():
        t_clip = timed(lambda: fast(clip), clip_repeats, warmup=1)
    tot = stats[0]
    for st in stats[1:]:
        tot = snn.chip.Stats(tot.names, tot.kinds, tot.counts + st.counts)
    en = energy(prog, tot, batch=len(stats))
    paper = sum(v["paper_pj"] for v in en.values()) / 1e6
    exact = sum(v["exact_pj"] for v in en.values()) / 1e6
    memory = sum(v["memory_pj"] for v in en.values()) / 1e6
    t = {k: v / len(stats) for k, v in tot.total.items()}
    best, nbest = (t_chip, 1) if t_chip[0] <= t_chip2[0] else (t_chip2, 2)
    out = [
        f"{tag}: float fast path step, 1 thread          {fmt(res[1])}",
        f"{tag}: float fast path step, 2 threads         {fmt(res[2])}",
        f"{tag}: chip executor step, 1 thread            {fmt(t_chip)}",
        f"{tag}: chip executor step, 2 threads           {fmt(t_chip2)} ({plan['split']} of {plan['candidates']} "
        f"large ops split over the 2 threads, the rest on one: measured over the first {ex2.TUNE_STEPS} steps)",
        f"{tag}: executor / float fast path = {t_chip[0] / res[1][0]:.2f} (1 thread each), "
        f"{t_chip2[0] / res[2][0]:.2f} (2 threads each); executor 2 threads / 1 thread = "
        f"{t_chip2[0] / t_chip[0]:.2f} (goal < 1)",
        f"{tag}: CPU time per step on 1 thread (robust to load): executor {t_chip[2]:.2f} ms, float fast path "
        f"{res[1][2]:.2f} ms, ratio {t_chip[2] / res[1][2]:.2f}",
        f"{tag}: float {CLIP_T}-step clip recompute, 2 threads {fmt(t_clip)}",
        f"{tag}: label by stepping on the chip ({nbest} thread{'s' if nbest > 1 else ''}) = "
        f"1/{t_clip[0] / best[0]:.1f} of the float clip recompute (2 threads) (goal <= 1/20)",
        f"{tag}: per step: {t['ac']:.0f} accumulates, {t['mac']:.0f} MACs, {t['spikes']:.0f} spikes, "
        f"{t['weight_bytes'] / 1e6:.2f} MB of weights read, {t['saturations']:.0f} saturations",
        f"{tag}: energy per label: paper convention {paper:.2f} uJ, exact counts {exact:.2f} uJ, "
        f"memory traffic {memory:.2f} uJ (apart)",
    ]
    for line in out:
        print(line, flush=True)
    lines.extend(out)


def shipped(repeats, clip_repeats, lines):
    from eventpipe.runtime.chip_counts import checkpoint_channels, count_clips, count_stream

    model, meta = snn.load_checkpoint(CHECKPOINT)
    ch = checkpoint_channels(meta)                                # the input the model was trained on
    cal = count_clips(4, seed=0, split="train", channels=ch).transpose(1, 0, 2, 3, 4)
    from eventpipe.runtime.chip import resolve_profile

    # the profile the runtime takes: the one the checkpoint was snapped for (the shipped: exact)
    prog = snn.chip.compile(CHECKPOINT, profile=resolve_profile("auto", meta.get("extra")), calibration=[cal])
    counts, _ = count_stream(20000, seconds=3.0, channels=ch)
    counts = counts[:, None].astype(np.int32)                    # [N, 1, 2, 64, 64]
    float_frames = normalise(counts, prog.meta["encoding"])      # [N, 1, 2, 64, 64]
    compare(f"shipped tiny 64x64 ({prog.profile.name})", model, prog, counts, float_frames, repeats, clip_repeats,
            lines)


def hardvs(repeats, clip_repeats, lines, gamma=1.5):
    sys.path.insert(0, HERE)
    from model_step import calibrate

    torch.manual_seed(0)
    model = snn.create_model("meta_spikeformer_hardvs_18m")
    g = torch.Generator().manual_seed(1)
    frames = (torch.rand(CLIP_T, 1, model.in_channels, 128, 128, generator=g) < 0.1).float()
    calibrate(model, frames, gamma)
    counts = frames.numpy().astype(np.int32)                     # [T, 1, 2, 128, 128]
    t0 = time.perf_counter()
    prog = snn.chip.compile(model, input_size=(128, 128), encoding={"norm": "counts", "scale": 1.0, "clip": 255},
                            calibration=[counts])
    print(f"hardvs_18m: compiled in {time.perf_counter() - t0:.1f} s", flush=True)
    compare("hardvs_18m 128x128", model, prog, counts, frames, repeats, clip_repeats, lines)


def perturbed_float_agreement(model, counts, enc, rel=1e-3, seed=0):
    """Label agreement of the float model with itself under a relative weight noise ``rel``: how
    chaotic the per-step labels of a stream are (the floor any quantisation is up against)."""
    import copy

    other = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in other.parameters():
            p.mul_(1 + rel * torch.randn(p.shape, generator=g))
    s1 = s2 = None
    same = 0
    with torch.no_grad():
        for f in counts:
            x = normalise(f[None], enc)
            o1, s1 = model.step(x, s1)
            o2, s2 = other.step(x, s2)
            same += int(o1.argmax()) == int(o2.argmax())
    return same / len(counts)


def agreement(n_clips, stream_seconds, lines):
    """Top-1 agreement of chip and float labels on synthetic test clips and test streams."""
    from eventpipe.runtime.chip_counts import checkpoint_channels, count_clips, count_stream
    from snn.backends.chip.agreement import Agreement

    model, meta = snn.load_checkpoint(CHECKPOINT)
    ch = checkpoint_channels(meta)
    cal = count_clips(4, seed=0, split="train", channels=ch).transpose(1, 0, 2, 3, 4)
    prog = snn.chip.compile(CHECKPOINT, calibration=[cal])
    clips = count_clips(n_clips, seed=0, split="test", progress=True, channels=ch)
    a = Agreement(prog, model)
    a.clips([c[:, None] for c in clips])
    per = a.per_layer()
    out = [f"agreement: {n_clips} synthetic test clips (8 steps from rest, label = argmax of the mean logits): "
           f"chip = float on {a.top1:.4f} ({a.labels_same}/{a.labels})",
           f"agreement: per-layer spike agreement on the clips: min {min(per.values()):.4f} "
           f"({min(per, key=per.get)}), mean {np.mean(list(per.values())):.4f}"]
    b = Agreement(prog, model)
    floor = []
    for seed in (20000, 20001):
        counts, truth = count_stream(seed, seconds=stream_seconds, channels=ch)
        b.stream(counts)
        floor.append(perturbed_float_agreement(model, counts, prog.meta["encoding"]))
    per = b.per_layer()
    out += [f"agreement: 2 synthetic test streams x {stream_seconds:.0f} s ({b.labels} steps, state carried, a label "
            f"per step): chip = float on {b.top1:.4f}; the float model against itself with 0.1% weight noise: "
            f"{np.mean(floor):.4f}",
            f"agreement: per-layer spike agreement on the streams: min {min(per.values()):.4f} "
            f"({min(per, key=per.get)}), mean {np.mean(list(per.values())):.4f}"]
    for line in out:
        print(line, flush=True)
    lines.extend(out)
    return a, b


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    ap.add_argument("--no-hardvs", action="store_true", help="the shipped model only")
    ap.add_argument("--agreement", type=int, default=0, metavar="N",
                    help="only the chip/float label agreement, on N synthetic test clips and two test streams")
    args = ap.parse_args()
    if args.agreement:
        agreement(args.agreement, 20.0, [])
        return
    repeats, clip_repeats = (5, 2) if args.quick else (20, 5)
    torch.set_num_threads(2)
    print(f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at the start)", flush=True)
    lines = []
    shipped(repeats, clip_repeats, lines)
    if not args.no_hardvs:
        hardvs(repeats, clip_repeats, lines)
    print(f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores while measuring)", flush=True)


if __name__ == "__main__":
    main()
