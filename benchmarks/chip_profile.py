"""Where the chip executor's step time goes: wall time per op, grouped by op kind.

Run:  python benchmarks/chip_profile.py [--size 128] [--threads 1] [--repeats 10] [--top 15]
      python benchmarks/chip_profile.py --ab FUSE_LIF=False,ROW_LANES=32 [--rounds 6]

The workload is ``benchmarks/chip.py``'s hardvs_18m one (random weights, BatchNorm calibrated to
firing rates ~0.1, Bernoulli(0.1) count frames, seeded; ``--shipped``: the shipped model on a
synthetic stream).  Each op is timed around its kernel call (``Executor.step(times=...)``), the
minimum over repeats after warm-up, state carried; kinds: ``spike conv`` (dense, on spikes),
``graded conv`` (the first layer and the SepConv pointwise convs: MACs), ``depthwise``, ``lif``,
``attn``, ``input``, ``pool``.  On a loaded machine compare shares, not absolute times.

``--ab NAME=VALUE[,NAME=VALUE...]`` compares the executor as it is (``A``) with one whose class
attributes ``NAME`` are set to ``VALUE`` (``B``; Python literals, e.g. ``FUSE_LIF=False,ROW_LANES=32``)
in this process: rounds of
``--repeats`` steps of each, interleaved, the same program and frames, each op's minimum over all
rounds; every step's logits, membranes and counters must be equal.  A LIF fused into its conv
shows as 0 (its time is the conv's).
"""

from __future__ import annotations

import argparse
import ast
import collections
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import chip  # noqa: E402  (benchmarks/chip.py)
import snn.chip  # noqa: E402


def workload(size, shipped):
    if shipped:
        from eventpipe.runtime.chip_counts import checkpoint_channels, count_clips, count_stream
        model, meta = snn.load_checkpoint(chip.CHECKPOINT)
        ch = checkpoint_channels(meta)
        cal = count_clips(4, seed=0, split="train", channels=ch).transpose(1, 0, 2, 3, 4)
        prog = snn.chip.compile(chip.CHECKPOINT, calibration=[cal])
        counts, _ = count_stream(20000, seconds=3.0, channels=ch)
        return prog, counts[:, None].astype(np.int32)
    import torch
    from model_step import calibrate
    torch.manual_seed(0)
    model = snn.create_model("meta_spikeformer_hardvs_18m")
    g = torch.Generator().manual_seed(1)
    frames = (torch.rand(chip.CLIP_T, 1, model.in_channels, size, size, generator=g) < 0.1).float()
    calibrate(model, frames, 1.5)
    counts = frames.numpy().astype(np.int32)
    prog = snn.chip.compile(model, input_size=(size, size), encoding={"norm": "counts", "scale": 1.0, "clip": 255},
                            calibration=[counts])
    return prog, counts


def kind_of(op, prep):
    if op.kind != "conv":
        return op.kind
    if "dw" in prep:
        return "depthwise"
    return "spike conv" if prep["spike"] else "graded conv"


def profile_rounds(executors, counts, repeats, rounds):
    """Per-op minima (CPU time on one thread, wall time on several) of each executor, stepped in
    interleaved rounds of ``repeats`` steps after two warm-up steps, state carried per executor;
    the executors' results must agree step by step.  Returns ``(minima per executor, walls, stats)``."""
    n = len(executors[0].program.ops)
    best = [np.full(n, np.inf) for _ in executors]
    walls = [[] for _ in executors]
    states = [None] * len(executors)
    step = 0
    for rnd in range(rounds):
        for r in range(repeats + (2 if rnd == 0 else 0)):
            out = []
            for j, ex in enumerate(executors):
                times = np.zeros(n)
                t0 = time.perf_counter()
                logits, states[j], stats = ex.step(counts[step % len(counts)], states[j], times=times)
                walls[j].append(time.perf_counter() - t0)
                out.append((logits, states[j], stats))
                if rnd > 0 or r >= 2:
                    best[j] = np.minimum(best[j], times)
            step += 1
            for logits, st, stats in out[1:]:
                if not (np.array_equal(logits, out[0][0]) and np.array_equal(stats.counts, out[0][2].counts)
                        and all(np.array_equal(st[k], out[0][1][k]) for k in st)):
                    raise SystemExit(f"A and B differ at step {step}")
    return best, walls, out[0][2]


def print_ab(prog, kinds, best, walls, threads, attr, top):
    load = os.getloadavg()[0]
    print(f"A/B, {threads} thread{'s' if threads > 1 else ''}, load {load:.1f}: A = the executor, B = {attr}; "
          f"results and counters equal on every step")
    for name, b, w in zip("AB", best, walls):
        print(f"  {name}: step min wall {min(w) * 1e3:.2f} ms; sum of per-op minima {b.sum() * 1e3:.2f} ms")
    for k in sorted(set(kinds), key=lambda k: -sum(t for kk, t in zip(kinds, best[0]) if kk == k)):
        ta, tb = (sum(t for kk, t in zip(kinds, b) if kk == k) for b in best)
        print(f"  {k:12s} A {ta * 1e3:7.2f} ms  B {tb * 1e3:7.2f} ms  B/A {tb / max(ta, 1e-12):.2f}")
    d = best[1] - best[0]
    print("ops that changed most (B - A):")
    for i in np.argsort(-np.abs(d))[:top]:
        print(f"  {d[i] * 1e3:+7.3f} ms  A {best[0][i] * 1e3:6.3f}  B {best[1][i] * 1e3:6.3f}  {kinds[i]:11s} {prog.ops[i].name}")


def _ab_attrs(text: str) -> dict:
    """``--ab NAME=VALUE[,...]``: executor class attributes and Python literals, checked before the
    workload is built (a bad one is one usage line)."""
    attrs = {}
    for item in text.split(","):
        name, eq, value = item.partition("=")
        if not eq:
            raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {item!r}")
        if not hasattr(snn.chip.Executor, name):
            raise argparse.ArgumentTypeError(f"the executor has no attribute {name!r}")
        try:
            attrs[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise argparse.ArgumentTypeError(f"{name}: {value!r} is not a Python literal "
                                             "(True, 16, 'x')") from None
    return attrs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--shipped", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--cache", default="", help="save/load the compiled program here (npz)")
    ap.add_argument("--ab", type=_ab_attrs, default={}, metavar="NAME=VALUE[,...]",
                    help="compare with an executor whose class attributes NAME are VALUE (interleaved rounds)")
    ap.add_argument("--rounds", type=int, default=6, help="--ab: interleaved rounds")
    args = ap.parse_args()
    if args.cache and os.path.exists(args.cache):
        prog = snn.chip.Program.load(args.cache)
        counts = np.load(args.cache + ".counts.npy")
    else:
        prog, counts = workload(args.size, args.shipped)
        if args.cache:
            prog.save(args.cache)
            np.save(args.cache + ".counts.npy", counts)
    ex = snn.chip.Executor(prog, threads=args.threads)
    if args.ab:
        ex_b = type("ExecutorB", (snn.chip.Executor,), args.ab)(prog, threads=args.threads)
        best, walls, _ = profile_rounds([ex, ex_b], counts, args.repeats, args.rounds)
        kinds = [kind_of(op, p) for op, p in zip(prog.ops, ex._prep)]
        print_ab(prog, kinds, best, walls, args.threads, args.ab, args.top)
        return
    n = len(prog.ops)
    best = np.full(n, np.inf)
    state = None
    walls = []
    for r in range(args.repeats + 2):
        times = np.zeros(n)
        t0 = time.perf_counter()
        _, state, stats = ex.step(counts[r % len(counts)], state, times=times)
        walls.append(time.perf_counter() - t0)
        if r >= 2:
            best = np.minimum(best, times)
    kinds = [kind_of(op, p) for op, p in zip(prog.ops, ex._prep)]
    by = collections.defaultdict(float)
    for k, t in zip(kinds, best):
        by[k] += t
    total = best.sum()
    print(f"step: min wall {min(walls[2:]) * 1e3:.2f} ms; sum of per-op minima {total * 1e3:.2f} ms "
          f"({args.threads} thread{'s' if args.threads > 1 else ''}; load {os.getloadavg()[0]:.1f})")
    for k, t in sorted(by.items(), key=lambda kv: -kv[1]):
        print(f"  {k:12s} {t * 1e3:8.2f} ms  {100 * t / total:5.1f}%")
    print(f"top {args.top} ops:")
    cnt = stats.counts
    from snn.backends.chip.stats import IDX
    for i in np.argsort(-best)[:args.top]:
        op = prog.ops[i]
        c, h, w = prog.buffers[op.dst]
        src = prog.buffers.get(op.src)
        extra = ""
        if op.kind == "conv":
            extra = f"k{op.attrs['kernel']} s{op.attrs['stride']} g{op.attrs['groups']} in {src} "
            extra += f"ac {cnt[i, IDX['ac']]} mac {cnt[i, IDX['mac']]}"
        elif op.kind == "lif":
            extra = f"spikes {cnt[i, IDX['spikes']]} / {c * h * w}"
        print(f"  {best[i] * 1e3:7.3f} ms  {kinds[i]:11s} {op.name:40s} out {(c, h, w)} {extra}")


if __name__ == "__main__":
    main()
