"""Chunks shared between the calling thread and helper threads, with no barrier.

A parallel time-window call cuts its windows into chunks (``_chunkplan.chunks``).  The calling
thread and ``threads - 1`` helper threads (Python threads, each running a ``nogil`` Numba
loop) take chunks from one shared counter with an atomic fetch-and-add until none is left.
The call then waits only for the chunks a helper has taken: a helper that has not started
yet (its core busy with another process, or it is still binning another call's chunks)
takes nothing, and the calling thread does its share.  An OpenMP-style parallel region
(``numba.prange``) instead ends at a barrier that every thread of the team must reach, so
one thread that the OS scheduler runs late holds up the whole call, even when it gets no
work: on a loaded 2-core machine that made two threads slower than one.

The helpers are started at the first parallel call (never at import), are daemon threads
and take jobs from one queue; a forked child starts its own.
"""

from __future__ import annotations

import os
import queue
import threading

import numba
from numba import njit, types
from numba.extending import intrinsic


@intrinsic
def fetch_add(typingctx, arr, v):
    """``old = arr[0]; arr[0] += v; return old`` as one atomic (sequentially consistent)
    operation on a 1-D int64 array."""
    if not (isinstance(arr, types.Array) and arr.dtype == types.int64):
        return None
    sig = types.int64(arr, v)

    def codegen(context, builder, signature, args):
        a = context.make_array(signature.args[0])(context, builder, args[0])
        val = context.cast(builder, args[1], signature.args[1], types.int64)
        return builder.atomic_rmw("add", a.data, val, "seq_cst")

    return sig, codegen


@njit(cache=True, nogil=True)
def claim(counter):
    """The next chunk index (atomic): every index is handed out once."""
    return fetch_add(counter, 1)


class _Call:
    """One parallel call: its work (dropped when the call returns, so that a helper that
    starts later holds none of the caller's arrays), how many chunks are done, and how many
    helpers are running it; the caller waits on it."""

    __slots__ = ("cond", "work", "done", "active", "error")

    def __init__(self, work):
        self.cond = threading.Condition()
        self.work = work
        self.done = 0
        self.active = 0
        self.error = None

    def start(self):
        """The work for a helper that starts now, or None once the call has returned."""
        with self.cond:
            if self.work is not None:
                self.active += 1
            return self.work

    def add(self, k: int, error: BaseException | None = None) -> None:
        with self.cond:
            self.done += k
            self.active -= 1
            if error is not None and self.error is None:
                self.error = error
            self.cond.notify_all()


def _helper_main(jobs: queue.SimpleQueue) -> None:
    while True:
        call, wid = jobs.get()
        work = call.start()
        if work is not None:
            try:
                k = work(wid)
            except BaseException as exc:  # (a Numba loop does not raise; never hang the caller)
                work = None
                call.add(0, exc)
            else:
                work = None
                call.add(k)
        del call, work  # (hold none of the caller's arrays while waiting for the next job)


class _Team:
    """Helper threads of this process, started on demand; one job queue."""

    def __init__(self):
        self.pid = os.getpid()
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.threads: list[threading.Thread] = []
        self.lock = threading.Lock()

    def ensure(self, n: int) -> None:
        with self.lock:
            while len(self.threads) < n:
                th = threading.Thread(target=_helper_main, args=(self.jobs,), daemon=True,
                                      name=f"eventpipe-binning-{len(self.threads) + 1}")
                th.start()
                self.threads.append(th)


_team_lock = threading.Lock()
_team: _Team | None = None


def team() -> _Team:
    """This process's helper team (a new one after ``fork``: threads are not inherited)."""
    global _team
    with _team_lock:
        if _team is None or _team.pid != os.getpid():
            _team = _Team()
        return _team


def max_threads() -> int:
    """The most threads a call uses: Numba's thread count (``NUMBA_NUM_THREADS``, by default
    the number of cores)."""
    return int(numba.config.NUMBA_NUM_THREADS)


def run_chunks(work, nthreads: int, nchunks: int) -> None:
    """Run ``work(wid)`` on the calling thread (``wid = 0``) and on ``nthreads - 1`` helpers
    (``wid = 1..``); each returns how many chunks it took from the shared counter (which must
    run out at ``nchunks``).  Returns when all ``nchunks`` are done and no helper is still
    inside ``work`` (one that started finds the counter run out and stops); a helper that has
    not started by then never runs ``work`` and holds none of its arrays."""
    call = _Call(work)
    helpers = min(int(nthreads), max_threads()) - 1
    if helpers > 0:
        t = team()
        t.ensure(helpers)
        for wid in range(1, helpers + 1):
            t.jobs.put((call, wid))
    try:
        mine = work(0)
    except BaseException as exc:
        with call.cond:
            call.work = None
        raise exc
    with call.cond:
        call.done += mine
        call.cond.wait_for(lambda: call.done >= nchunks or call.error is not None)
        call.work = None
        call.cond.wait_for(lambda: call.active == 0)
        if call.error is not None:
            raise RuntimeError("a binning helper thread failed") from call.error


#: the default ``threads=None`` uses one thread for a call whose work (events + output
#: bytes / 8) is below this (about 1-2 ms of one thread's binning here): a two-thread call
#: that gains nothing costs 0.1-0.3 ms more than one thread, and a helper the OS runs late
#: can only hold up a chunk it has taken
PARALLEL_MIN_WORK = 500_000


def plan_threads(threads, n_events: int, out_bytes: int) -> int:
    """Threads for one call: ``threads`` as given (at least 1, at most :func:`max_threads`);
    ``None`` (the default): ``numba.get_num_threads()`` (all cores unless
    ``NUMBA_NUM_THREADS`` or ``numba.set_num_threads`` says otherwise), or 1 when the work,
    ``n_events + out_bytes // 8``, is below :data:`PARALLEL_MIN_WORK`."""
    if threads is None:
        if int(n_events) + int(out_bytes) // 8 < PARALLEL_MIN_WORK:
            return 1
        threads = numba.get_num_threads()
    return max(1, min(int(threads), max_threads()))
