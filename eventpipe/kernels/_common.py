"""Shared pieces of the kernels: sensor/polarity parsing, the time policy, stats.

Time policy (used identically by every kernel and by :class:`StreamingBinner`):
events are processed in array order while keeping the running maximum
timestamp ``t_max``.  An event with ``t < t_max`` is *clamped* to ``t_max`` when
``t_max - t <= time_tolerance_us`` (counted in ``clamped``), otherwise it is
*dropped* (counted in ``dropped_backwards``); dropped events never move
``t_max``.  Because the rule only depends on the running maximum, the result
does not depend on how a recording is split into packets.
"""

from __future__ import annotations

import dataclasses
import threading
import warnings
from contextlib import contextmanager

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from eventpipe.events import EVENT_DTYPE, SensorSizeWarning, as_events, check_sensor_size

#: default tolerance for timestamps that step backwards (µs); EVT 3.0 TIME_LOW
#: jitter is a few µs, so 1 ms is generous while still rejecting real garbage.
I64_MIN = np.iinfo(np.int64).min  # "no timestamp yet" for running maxima

DEFAULT_TIME_TOLERANCE_US = 1000

# indices into the int64 counter arrays the kernels fill
C_IN, C_BINNED, C_OOB, C_CLAMPED, C_BACK, C_RANGE = range(6)
N_COUNTERS = 6


# what time_policy says of one event
T_OK, T_CLAMPED, T_BACK = 0, 1, 2


@numba.njit(cache=True, nogil=True, inline="always")
def time_policy(ti, runmax, tol):
    """The time policy for one event with timestamp ``ti`` after the running maximum ``runmax``:
    returns ``(time to use, new running maximum, status)``.  In order (``ti >= runmax``): kept
    as it is (``T_OK``); backwards by at most ``tol``: clamped to ``runmax`` (``T_CLAMPED``);
    further back: dropped (``T_BACK``).  The kernels that bin the usual case at full speed
    (``frames._bin_window``, the streaming windower) apply the same rules inline."""
    if ti >= runmax:
        return ti, ti, T_OK
    if runmax - ti <= tol:
        return runmax, runmax, T_CLAMPED
    return ti, runmax, T_BACK


@numba.njit(cache=True, nogil=True, inline="always")
def add_counts(counters, n_in, n_oob, n_clamp, n_back, n_range):
    """Add one kernel call's tallies to ``counters``; the binned count is what was not dropped."""
    counters[C_IN] += n_in
    counters[C_BINNED] += n_in - n_back - n_oob - n_range
    counters[C_OOB] += n_oob
    counters[C_CLAMPED] += n_clamp
    counters[C_BACK] += n_back
    counters[C_RANGE] += n_range


#: how far ahead of the event being binned the kernels prefetch the input (bytes)
PREFETCH_BYTES = 4096


@intrinsic
def prefetch_ahead(typingctx, arr, i):
    """Hint the CPU to fetch the input ``PREFETCH_BYTES`` past element ``i`` of the 1-D
    ``arr`` (``llvm.prefetch``: read, keep in all cache levels).  A hint only: it never
    faults, also past the end of the array (the address is computed as an integer).

    Why: the binning loops read the events once, in order, at ~1 ns per event from cache,
    but on this machine (a VM) the hardware prefetcher does not keep a scalar loop fed:
    from memory the same loop took ~3x as long.  Fetching 4 KiB ahead (dvs128-sparse,
    3 M events) took the bare scatter from 6.3 to 3.4 ms."""
    sig = types.void(arr, i)

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        stride = cgutils.unpack_tuple(builder, ary.strides, 1)[0]
        i64 = ir.IntType(64)
        idx = context.cast(builder, args[1], signature.args[1], types.int64)
        addr = builder.add(builder.ptrtoint(ary.data, i64),
                           builder.add(builder.mul(idx, stride), ir.Constant(i64, PREFETCH_BYTES)))
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), "llvm.prefetch.p0i8")
        builder.call(fn, [builder.inttoptr(addr, i8p), ir.Constant(i32, 0), ir.Constant(i32, 3),
                          ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


@dataclasses.dataclass
class BinStats:
    """What a kernel did with its input events.

    ``events_in``: events seen; ``binned``: events that landed in at least one
    window; ``out_of_bounds``: dropped for ``x >= W`` or ``y >= H``;
    ``clamped``: backwards timestamps clamped to the running maximum;
    ``dropped_backwards``: backwards by more than the tolerance, dropped;
    ``out_of_range``: outside every window (before the start, in a gap between
    strided windows, or after the last window).
    """

    events_in: int = 0
    binned: int = 0
    out_of_bounds: int = 0
    clamped: int = 0
    dropped_backwards: int = 0
    out_of_range: int = 0

    def add_counters(self, c: np.ndarray) -> None:
        c = np.asarray(c).reshape(-1, N_COUNTERS).sum(axis=0)
        self.events_in += int(c[C_IN])
        self.binned += int(c[C_BINNED])
        self.out_of_bounds += int(c[C_OOB])
        self.clamped += int(c[C_CLAMPED])
        self.dropped_backwards += int(c[C_BACK])
        self.out_of_range += int(c[C_RANGE])

    @property
    def dropped(self) -> int:
        return self.out_of_bounds + self.dropped_backwards + self.out_of_range


def warn_if_swapped(x, y, W: int, H: int, n_oob: int, n: int, stacklevel: int = 3) -> None:
    """:class:`SensorSizeWarning` when at least 1% (and at least 16) of the events were out of
    bounds and all of them would fit in ``(H, W)``: ``sensor_size`` given as (H, W) by mistake.
    Costs a pass over x and y only in that case."""
    if n_oob < 16 or W == H or n_oob * 100 < n:
        return
    if x.min() < 0 or y.min() < 0 or int(x.max()) >= H or int(y.max()) >= W:
        return
    warnings.warn(SensorSizeWarning(
        f"{n_oob:,} of {n:,} events are out of bounds for sensor_size (W, H) = ({W}, {H}) and "
        f"dropped, but all would fit in ({H}, {W}): are W and H swapped? (sizes are (W, H))"),
        stacklevel=stacklevel)


def sensor_wh(sensor_size) -> tuple[int, int]:
    """Accept ``(W, H)`` or tonic's ``(W, H, P)``; return ``(W, H)``."""
    if sensor_size is not None and len(sensor_size) == 3:
        sensor_size = tuple(sensor_size)[:2]
    return check_sensor_size(sensor_size)


def n_polarities(sensor_size, polarities) -> int:
    """Polarity channels: ``polarities`` if given, else P of a 3-tuple, else 2."""
    if polarities is None:
        polarities = sensor_size[2] if sensor_size is not None and len(sensor_size) == 3 else 2
    polarities = int(polarities)
    if polarities not in (1, 2):
        raise ValueError(f"polarities must be 1 (merged) or 2 (OFF, ON), got {polarities}")
    return polarities


def as_event_array(events) -> np.ndarray:
    """Our dtype, or any structured array with x, y, t, p (converted, not mutated)."""
    if isinstance(events, np.ndarray) and events.dtype == EVENT_DTYPE:
        return events
    return as_events(events)


#: field dtypes the kernels are compiled for, beside ``EVENT_DTYPE``'s: tonic's arrays
#: (``int16``/``int64`` x, y; ``bool``/``int`` p, 0/1 or -1/1) are read as they are
KERNEL_XY = frozenset(np.dtype(d) for d in ("i2", "i4", "i8", "u2", "u4"))
KERNEL_P = frozenset(np.dtype(d) for d in ("?", "i1", "u1", "i2", "i4", "i8"))
KERNEL_T = frozenset(np.dtype(d) for d in ("i8", "f8"))


def kernel_events(events) -> np.ndarray:
    """Events as the binning kernels read them, without a copy where possible.

    ``EVENT_DTYPE``, or any 1-D structured array whose ``x``, ``y`` (int16/int32/int64/
    uint16/uint32), ``t`` (int64 µs, or float64 µs) and ``p`` (bool, int8/16/32/64,
    uint8) have native byte order, is returned as it is (tonic's arrays included); the
    kernels then count a negative coordinate as out of bounds and take ``p > 0`` as ON
    (so 0/1, -1/1 and bool all work).  Anything else is converted (:func:`as_events`)."""
    if isinstance(events, np.ndarray):
        dt = events.dtype
        if dt == EVENT_DTYPE:
            return events
        names = dt.names or ()
        if (events.ndim == 1 and all(f in names for f in "xytp")
                and dt["x"] in KERNEL_XY and dt["y"] in KERNEL_XY
                and dt["p"] in KERNEL_P and dt["t"] in KERNEL_T
                and all(dt[f].isnative for f in "xytp")):
            return events
    return as_events(events)


def fields(events: np.ndarray):
    """Zero-copy views of the four fields (strided, no allocation)."""
    return events["x"], events["y"], events["t"], events["p"]


def saturation_value(dtype, clip=None, binary=False):
    """The value counts saturate at, as a scalar of ``dtype``."""
    dtype = np.dtype(dtype)
    if binary:
        clip = 1 if clip is None else min(int(clip), 1)
    if dtype.kind in "iu":
        top = np.iinfo(dtype).max
        if clip is not None:
            top = min(top, int(clip))
        return dtype.type(top)
    if dtype.kind == "f":
        return dtype.type(np.inf if clip is None else clip)
    if dtype.kind == "b":
        raise ValueError("use binary=True with an integer dtype instead of dtype=bool")
    raise ValueError(f"unsupported output dtype {dtype}")


def check_out(out, shape, dtype, zero=True) -> np.ndarray:
    """Return a zeroed C-contiguous output of ``shape``: ``out`` reused or a new one.

    ``zero=False`` leaves a caller's ``out`` as it is, for kernels that zero each frame
    right before filling it (then the frame is in cache when the events land)."""
    if out is None:
        return np.zeros(shape, dtype=dtype)
    if tuple(out.shape) != tuple(shape):
        raise ValueError(f"out has shape {out.shape}, expected {shape}")
    if out.dtype != np.dtype(dtype):
        raise ValueError(f"out has dtype {out.dtype}, expected {np.dtype(dtype)}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError("out must be a writeable C-contiguous array")
    if zero:
        out.fill(0)
    return out


_threads_lock = threading.Lock()


@contextmanager
def numba_threads(n: int | None):
    """Run a block with ``numba.set_num_threads(n)`` (clamped to the pool size)."""
    if n is None:
        yield numba.get_num_threads()
        return
    n = max(1, min(int(n), numba.config.NUMBA_NUM_THREADS))
    with _threads_lock:
        old = numba.get_num_threads()
        numba.set_num_threads(n)
        try:
            yield n
        finally:
            numba.set_num_threads(old)
