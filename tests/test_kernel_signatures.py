"""Every numba kernel compiles once per array layout, not once per way its index is written.

A parallel kernel that calls a helper both from its serial branch (``part(.., 0, 1)``: numba types
the literals as ``Literal[int](0)`` and again as ``int64``) and from a ``prange`` body (the loop
index is ``uint64``) compiles that helper three times; for the CPU fast path's ``_gather_part``
that was ~19 s of CPU of a first ``eventpipe run`` (``benchmarks/first_run.py`` measures the
whole first run; docs/runtime.md).  Here a fresh process with an
empty numba cache calls the CPU fast path's kernels on one and two threads and steps random chip
programs on one and two threads (~60-80 s of CPU: everything compiles), then checks that no
dispatcher of ours holds two signatures that differ only in integer scalars.  A deliberately bad
kernel in the same process must be flagged, so the check itself can fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import json, sys
import numpy as np
import numba
from numba import njit, prange, types

@njit
def _bad_part(a, blk, nblk):
    for i in range(blk, a.size, nblk):
        a[i] += 1

@njit(parallel=True)
def _bad(a, nth):
    if nth <= 1:
        _bad_part(a, 0, 1)
    else:
        for b in prange(nth):
            _bad_part(a, b, nth)

_bad(np.zeros(8), 1); _bad(np.zeros(8), 2)

import torch
torch.manual_seed(0)
from snn.backends.cpu import kernels, dense_kernels
from snn.backends.cpu import layout
from snn.backends.cpu import runners as rn

# the CPU fast path's kernels, serial and parallel branches (threads 1 and 2)
layout.SERIAL_GATHER = 0
rng = np.random.default_rng(0)
conv = torch.nn.Conv2d(11, 20, 3, 1, 1)
g = layout.Gather(conv, 1, 1)
T, B, Hh, Ww = 1, 2, 9, 7
sp = (rng.random((T, B, Hh * Ww, 11)) < 0.3).astype(np.float32)
nb = -(-11 // g.cs)
idx = np.empty((T, B, Hh * Ww, 11), np.int16)
off = np.empty((T, B, Hh * Ww, nb + 1), np.int32)
v = np.zeros((B, Hh * Ww, 11), np.float32)
for nth in (1, 2):
    kernels.lif_csr(np.ascontiguousarray(2 * sp), v, np.empty_like(v), np.float32(2), np.float32(1), False,
                    True, g.cs, idx, off, layout.no_f32(), False, nth)
    rn.run_gather(g, layout.Spikes(idx, off, Hh, Ww, g.cs), T, B, nth=nth)
    xd = rng.random((1, 8, 8, 16)).astype(np.float32)
    dense_kernels.depthwise(xd, rng.random((3, 3, 16)).astype(np.float32), np.zeros((1, 8, 8, 16), np.float32),
                            False, nth)

sys.path.insert(0, "tests")
from chip.programs import random_program
from snn.backends.chip.executor import Executor
for seed, kw in ((1, dict()), (2, dict(accumulator_bits=32))):
    r = np.random.default_rng(seed)
    prog = random_program(r, **kw)
    for threads in (1, 2):
        ex = Executor(prog, threads=threads, parallel_min=0, tune=False)
        frame = np.where(r.random((2,) + prog.input_shape) < 0.4, r.integers(0, 9, (2,) + prog.input_shape), 0)
        ex.step(frame)

INT = (types.Integer, types.IntegerLiteral, types.BooleanLiteral)

def norm(sig):
    return tuple("int" if isinstance(a, INT) else str(a) for a in sig)

dups = {}
for mod in list(sys.modules.values()):
    name = getattr(mod, "__name__", "")
    if not (name.startswith(("snn.", "eventpipe.")) or name == "__main__"):
        continue
    for attr, obj in list(vars(mod).items()):
        if isinstance(obj, numba.core.registry.CPUDispatcher) and obj.__module__ == name:
            sigs = obj.signatures
            seen = {}
            for s in sigs:
                seen.setdefault(norm(s), []).append(str(s))
            bad = [v for v in seen.values() if len(v) > 1]
            if bad:
                dups[f"{name}.{attr}"] = bad
print("RESULT " + json.dumps(dups))
"""


@pytest.mark.timeout(600)
def test_no_kernel_compiles_twice_for_its_integer_arguments(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba"), NUMBA_NUM_THREADS="2",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=590)
    assert res.returncode == 0, res.stderr[-3000:]
    line = [ln for ln in res.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    dups = json.loads(line[len("RESULT "):])
    # the control: the bad pattern in the script itself is caught (the check can fail)
    assert "__main__._bad_part" in dups, dups
    del dups["__main__._bad_part"]
    assert dups == {}, "kernels compiled more than once for integer arguments alone:\n" + json.dumps(dups, indent=1)
