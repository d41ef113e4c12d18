"""OpenMP wait policy and a model step: libgomp's default spin and a bounded spin against PASSIVE.

The ``eventpipe`` command sets ``OMP_WAIT_POLICY=PASSIVE`` (docs/runtime.md, Threads); this
measures what that and the alternatives do to a model step.  Each variant runs in its own child
process (libgomp reads the variables once, when torch loads):

- ``PASSIVE`` (the anchor: what ``eventpipe`` sets);
- ``spin``: the variables unset, libgomp's default (workers poll 300,000 times, then sleep);
- ``PASSIVE + GOMP_SPINCOUNT=30000``: a bounded spin.

The child builds ``meta_spikeformer_hardvs_18m`` at 128x128 on the cpu fast path exactly as
``benchmarks/model_step.py`` does (seeded random weights, BatchNorm calibrated on Bernoulli
frames), 2 torch threads, and times ``--steps`` steps after 2 warm-up steps.  Two conditions:
``as found`` (whatever else the machine runs: its load average is printed) and ``busy core``
(this script also runs one pure-Python busy loop for the variant's duration, another process
competing for a core).  Printed per condition and variant: the minimum and median step and
the median's ratio to PASSIVE's in the same condition (> 1: slower than PASSIVE); the figure
is each variant's worst (largest) ratio over the conditions.

    python benchmarks/wait_policy.py [--steps 10] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._args import at_least  # noqa: E402

HERE = Path(__file__).resolve()
VARIANTS = {
    "PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "spin": {},
    "PASSIVE + GOMP_SPINCOUNT=30000": {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "30000"},
}
BUSY = "while True:\n    pass\n"


def child(steps: int) -> None:
    """Time the steps; print one JSON line {min_ms, median_ms}."""
    if "OMP_WAIT_POLICY" not in os.environ:
        sys.argv.append("--spin")  # model_step leaves libgomp's default when it sees --spin
    import torch

    import snn
    from benchmarks.model_step import CLIP_T, calibrate, step_timing
    from snn.backends import cpu

    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = snn.create_model("meta_spikeformer_hardvs_18m")
    g = torch.Generator().manual_seed(1)
    frames = (torch.rand(CLIP_T, 1, model.in_channels, 128, 128, generator=g) < 0.1).float()
    calibrate(model, frames)
    folded = cpu.build(model)
    with torch.no_grad():
        t = step_timing(folded, frames, steps)
    print(json.dumps({"min_ms": t.min, "median_ms": t.med}))


def run_variant(env_vars: dict, steps: int, busy: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(env_vars)
    hog = subprocess.Popen([sys.executable, "-c", BUSY]) if busy else None
    try:
        proc = subprocess.run([sys.executable, str(HERE), "--child", str(steps)], env=env,
                              capture_output=True, text=True, timeout=600)
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
    if proc.returncode != 0:
        raise SystemExit(f"wait_policy.py: the child failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        child(int(argv[1]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=at_least(1), default=10, help="timed steps (default 10)")
    ap.add_argument("--quick", action="store_true", help="3 steps")
    args = ap.parse_args(argv)
    steps = min(args.steps, 3) if args.quick else args.steps
    print(f"wait_policy benchmark ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}): "
          f"hardvs_18m 128x128 folded fast path, 2 threads, {steps} steps per variant; load "
          f"average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; anchor: PASSIVE",
          flush=True)
    worst: dict[str, float] = {}
    for condition, busy in (("as found", False), ("busy core", True)):
        got = {name: run_variant(env, steps, busy) for name, env in VARIANTS.items()}
        base = got["PASSIVE"]["median_ms"]
        for name, t in got.items():
            r = t["median_ms"] / base
            if name != "PASSIVE":
                worst[name] = max(worst.get(name, r), r)
            print(f"step  {condition:<9} {name:<31} min {t['min_ms']:6.1f} ms  median "
                  f"{t['median_ms']:6.1f} ms  x{r:4.2f} of PASSIVE (load average "
                  f"{os.getloadavg()[0]:.1f})", flush=True)
    print("worst  " + "; ".join(f"{k} x{v:.2f} of PASSIVE" for k, v in worst.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
