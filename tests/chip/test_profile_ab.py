"""benchmarks/chip_profile.py --ab: the executor and a variant stepped in interleaved rounds, per-op
minima for each, and a step whose results differ stops the comparison."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from snn.backends.chip.executor import Executor

from .programs import random_program

_SPEC = importlib.util.spec_from_file_location(
    "chip_profile", Path(__file__).resolve().parents[2] / "benchmarks" / "chip_profile.py")
chip_profile = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(chip_profile)  # it puts benchmarks/ on sys.path for its own `import chip`


def _frames(rng, prog):
    return np.stack([np.where(rng.random((1,) + prog.input_shape) < 0.4, rng.integers(0, 9, (1,) + prog.input_shape),
                              0) for _ in range(3)])


def test_ab_rounds_time_both_and_check_them_equal():
    rng = np.random.default_rng(8)
    prog = random_program(rng)

    class Unfused(Executor):
        FUSE_LIF = False

    a, b = Executor(prog), Unfused(prog)
    best, walls, stats = chip_profile.profile_rounds([a, b], _frames(rng, prog), repeats=2, rounds=3)
    assert len(best) == 2 and all(x.shape == (len(prog.ops),) and np.isfinite(x).all() for x in best)
    assert [len(w) for w in walls] == [2 * 3 + 2] * 2        # two warm-up steps, then rounds x repeats
    fused = [i for i, p in enumerate(a._prep) if p.get("fused")]
    assert fused and stats.counts[fused[0]].any()             # the fused LIF's counters are there

    class Wrong(Executor):
        def step(self, frame, state=None, **kw):
            logits, state, st = super().step(frame, state, **kw)
            return logits + 1, state, st

    with pytest.raises(SystemExit, match="differ at step 1"):
        chip_profile.profile_rounds([a, Wrong(prog)], _frames(rng, prog), repeats=2, rounds=2)


@pytest.mark.parametrize("text,says", [
    ("FUSE_LIF", "expected NAME=VALUE, got 'FUSE_LIF'"),
    ("nosuch=1", "the executor has no attribute 'nosuch'"),
    ("FUSE_LIF=maybe", "FUSE_LIF: 'maybe' is not a Python literal"),
    ("FUSE_LIF=(", "FUSE_LIF: '(' is not a Python literal")])
def test_bad_ab_is_a_usage_error_before_any_work(text, says):
    """A bad --ab was a SyntaxError / ValueError traceback after the workload was built."""
    import argparse

    with pytest.raises(argparse.ArgumentTypeError, match=says.replace("(", r"\(")):
        chip_profile._ab_attrs(text)
    assert chip_profile._ab_attrs("FUSE_LIF=False,ROW_LANES=32") == {"FUSE_LIF": False, "ROW_LANES": 32}
