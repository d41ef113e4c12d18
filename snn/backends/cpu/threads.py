"""numba's thread pool for the CPU fast path, kept in step with torch's intra-op thread count.

One :class:`ThreadSync` per built model (shared by its runners); no module-level state.
"""

from __future__ import annotations

import threading
from typing import Optional

import numba
import numpy as np
import torch
from numba import njit, prange


@njit(cache=True, nogil=True, error_model="numpy", parallel=True)
def _pool_warmup(a):  # pragma: no cover - jitted
    for i in prange(a.shape[0]):
        a[i] += 1.0


class ThreadSync:
    """Call it before a batch of kernels: sets numba's pool size for the calling thread to torch's
    intra-op thread count (capped by numba's maximum) and returns it.  ``fixed`` pins the count
    instead (e.g. 1: every kernel on the calling thread)."""

    def __init__(self, fixed: Optional[int] = None) -> None:
        if fixed is not None and (isinstance(fixed, bool) or not isinstance(fixed, int) or fixed < 1):
            raise ValueError(f"threads must be a positive int or None, got {fixed!r}")
        self.fixed = fixed
        self._started = False
        self._local = threading.local()

    def __reduce__(self):
        # copies (copy.deepcopy of a built model, pickling) start with a fresh per-thread cache
        return (ThreadSync, (self.fixed,))

    def _start_pool(self) -> None:
        # Starting numba's OpenMP pool (first parallel call) can reset the calling thread's OpenMP
        # thread count, which is also torch's intra-op thread count (seen: torch.set_num_threads(1)
        # silently became 2).  Start it here and put torch's setting back.
        n = torch.get_num_threads()
        _pool_warmup(np.zeros(8))
        if torch.get_num_threads() != n:
            torch.set_num_threads(n)
        self._started = True

    def __call__(self) -> int:
        if not self._started:
            self._start_pool()
        n = torch.get_num_threads() if self.fixed is None else self.fixed
        tl = self._local.__dict__
        if tl.get("torch") != n:
            m = max(1, min(n, numba.config.NUMBA_NUM_THREADS))
            if numba.get_num_threads() != m:
                numba.set_num_threads(m)
            tl["torch"], tl["numba"] = n, m
        return tl["numba"]
