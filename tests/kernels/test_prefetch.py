"""The binning loops prefetch the input ``PREFETCH_BYTES`` ahead of the event they bin
(``_common.prefetch_ahead``).  A prefetch is a hint: reading past the end of the events
must never fault.  Here the events end exactly where the readable memory ends (the next
page is ``PROT_NONE``), so every prefetch near the end points into a guard page; the
frames and counters must still equal tonic's ``to_frame_numpy`` on a copy and the
hand-worked counts.

The events are hand-made to cross the cases the loop handles near the end: events exactly
on window edges, an empty window (a gap), an out-of-bounds event, and one backwards beyond
the tolerance (dropped).
"""

from __future__ import annotations

import ctypes
import mmap
import sys

import numpy as np
import pytest
from tonic.functional import to_frame_numpy

from eventpipe.events import EVENT_DTYPE, make_events
from eventpipe.kernels import StreamingBinner, to_frames
from eventpipe.kernels._common import PREFETCH_BYTES

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mprotect guard page")

TONIC_STRUCT = np.dtype([("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "?")])
W, H, WINDOW = 8, 6, 100


def events() -> np.ndarray:
    """~600 in-order events over 10 windows of 100 us, then the hand-made cases at the end."""
    rng = np.random.default_rng(7)
    n = 600
    t = np.sort(rng.integers(0, 700, n))
    t[:5] = [0, 100, 100, 200, 299]  # exactly on window edges (an edge opens its window)
    t = np.sort(t)
    head = make_events(rng.integers(0, W, n), rng.integers(0, H, n), t, rng.integers(0, 2, n))
    # after a gap (windows 7 and 8 empty): two events on the edge 900, one out of bounds
    # (x = W), one just before the edge 1000, one 2000 us back (dropped: beyond the 1000 us
    # tolerance), and the last exactly on 1000 (after tonic's last window)
    tail = make_events([1, 2, W, 4, 5, 6], [1, 2, 3, 4, 5, 5],
                       [900, 900, 950, 999, 999 - 2000, 1000], [1, 0, 1, 0, 1, 1])
    return np.concatenate([head, tail])


def at_guard_page(ev: np.ndarray):
    """A copy of ``ev`` whose last byte is the last readable byte before a PROT_NONE page.
    Returns (array, the mmap keeping it alive)."""
    page = mmap.PAGESIZE
    size = -(-ev.nbytes // page) * page + page
    m = mmap.mmap(-1, size + page, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    base = ctypes.addressof(ctypes.c_char.from_buffer(m))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    if libc.mprotect(ctypes.c_void_p(base + size), page, 0) != 0:
        pytest.skip(f"mprotect failed: errno {ctypes.get_errno()}")
    arr = np.frombuffer(m, dtype=ev.dtype, count=len(ev), offset=size - ev.nbytes)
    arr[:] = ev  # (the buffer is writeable; the kernels only read it)
    assert arr.ctypes.data + arr.nbytes == base + size
    return arr, m


@pytest.mark.parametrize("dtype", [EVENT_DTYPE, TONIC_STRUCT], ids=["contract", "tonic-struct"])
@pytest.mark.parametrize("threads", [1, 2])
def test_binning_at_a_guard_page_equals_tonic(dtype, threads):
    assert PREFETCH_BYTES >= mmap.PAGESIZE  # so the prefetches near the end do hit the guard
    ev = events()
    src = np.empty(len(ev), dtype)
    for f in "xytp":
        src[f] = ev[f]
    guarded, m = at_guard_page(src)
    frames, stats = to_frames(guarded, (W, H), time_window=WINDOW, threads=threads,
                              return_stats=True)
    b = StreamingBinner((W, H), WINDOW)  # the streaming windower runs the same loop
    streamed = np.concatenate([b.push(guarded), b.flush()])
    del guarded, b
    m.close()
    # truth: tonic on the same events less the two it cannot take (out of bounds: IndexError;
    # backwards: its searchsorted assumes sorted times); t = 1000 stays, outside its windows
    keep = np.ones(len(src), bool)
    keep[[-4, -2]] = False
    theirs = to_frame_numpy(src[keep].copy(), (W, H, 2), time_window=WINDOW)
    assert frames.dtype == np.int16 and frames.shape == (10, 2, H, W)
    np.testing.assert_array_equal(frames, theirs)
    assert frames[7:9].sum() == 0 and frames[9].sum() == 3  # the gap; 900, 900 and 999
    assert (stats.events_in, stats.binned, stats.out_of_bounds, stats.dropped_backwards,
            stats.out_of_range) == (len(src), len(src) - 3, 1, 1, 1)
    np.testing.assert_array_equal(streamed[:10], theirs)
    assert len(streamed) == 11 and streamed[10].sum() == 1  # the last event, in window 10


def test_the_guard_page_really_faults():
    """The setup above is a real test: a plain read one byte past the events crashes."""
    import signal
    import subprocess
    from pathlib import Path

    code = ("import ctypes\n"
            "from tests.kernels.test_prefetch import at_guard_page, events\n"
            "arr, m = at_guard_page(events())\n"
            "ctypes.string_at(arr.ctypes.data + arr.nbytes - 1, 1)\n"  # the last byte: fine
            "print('last byte read', flush=True)\n"
            "ctypes.string_at(arr.ctypes.data + arr.nbytes, 1)\n")  # the guard page
    root = Path(__file__).resolve().parents[2]
    r = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                       timeout=60, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})
    assert "last byte read" in r.stdout, r.stderr
    assert r.returncode == -signal.SIGSEGV, (r.returncode, r.stderr)
