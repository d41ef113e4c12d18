"""The runtime's promises, pinned on a controllable source, a gated model and a fake clock.

What ``eventpipe.runtime.pipeline`` promises (its module docstring, docs/runtime):

- files block when the frame queue is full, live sources drop the *oldest* frame and count it;
- a step takes at most one frame per stream and at most ``max_batch`` streams;
- a stream silent for longer than ``idle_reset_s`` has its membranes and label state reset
  (that stream only) and the reset is counted;
- ``metrics.frames`` counts frames, ``metrics.steps`` model steps.

The truth here is what the test itself fed: which windows it closed for which stream,
and which membranes the model received.  No timing is measured; every wait is on a
condition with a timeout.
"""

from __future__ import annotations

import queue
import threading
import types

import numpy as np
import pytest
import torch

from eventpipe.events import make_events
from eventpipe.runtime.config import load_run_config
from eventpipe.runtime.pipeline import FrameQueue, Pipeline
from eventpipe.runtime.metrics import Metrics
from snn.neurons import LIFState

WINDOW_US = 1000
SIZE = (8, 8)
CLASSES = ["a", "b", "c"]


class FakeClock:
    def __init__(self, t: float = 100.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


class FakeSource:
    """Batches are handed over one by one by the test; ``policy`` says live or file."""

    def __init__(self, policy: str):
        self.policy = policy
        self.live = policy == "drop_oldest"  # a live source drops, a file blocks
        self.sensor_size = SIZE
        self.done = False
        self.q: queue.Queue = queue.Queue()

    def start(self):
        return self

    def drop_advice(self):
        return []  # this source never drops events itself

    def read(self, timeout=None):
        try:
            return self.q.get(timeout=timeout)
        except queue.Empty:
            return None

    def window(self, stream: int, k: int, n: int = 1):
        """``n`` events at ``t = k`` windows: they close window ``k - 1`` of ``stream``
        and open window ``k`` with ``n`` events in it."""
        ev = make_events(np.arange(n) % SIZE[0], [k % SIZE[1]] * n, [k * WINDOW_US] * n, [1] * n)
        self.q.put(types.SimpleNamespace(stream_id=stream, events=ev, t_arrival=0.0, truth=None))


class CountingModel(torch.nn.Module):
    """A Stepper whose membrane is the number of steps a stream has taken.

    Every call is logged as ``(batch size, membranes received)`` (``None``: at rest).  With
    ``gate`` set, a call waits for it to be released, so the test can queue frames behind it.
    """

    def __init__(self):
        super().__init__()
        self.calls: list[tuple[int, list | None]] = []
        self.gate: threading.Event | None = None
        self.entered = threading.Event()

    def step(self, x, state):
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(120), "gate never released"
        b = x.shape[0]
        prev = None if state is None else state["m"].v[:, 0].tolist()
        self.calls.append((b, prev))
        v = torch.ones(b, 1) if state is None else state["m"].v + 1
        logits = torch.zeros(b, len(CLASSES))
        logits[:, 0] = x.flatten(1).sum(1)  # the number of events in the frame
        return logits, {"m": LIFState(v)}


def wait_until(cond, timeout=120.0):  # a bound (cold Numba caches compile first), not a sleep
    ev = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if cond():
            return
        ev.wait(0.01)
    raise AssertionError("condition not reached in time")


def make_pipeline(policy, clock=None, **over):
    cfg = load_run_config(None, [f"{k}={v}" for k, v in over.items()])
    cfg.sinks.console = False
    cfg.model.threads = 1
    cfg.window.timeout_s = None  # windows close on event time only
    src = FakeSource(policy)
    model = CountingModel()
    loaded = types.SimpleNamespace(model=model, class_names=CLASSES)
    labels: list[dict] = []
    sink = types.SimpleNamespace(human=False, got=[])
    sink.write = sink.got.append
    kw = {} if clock is None else {"clock": clock}
    pipe = Pipeline(cfg, src, loaded, [sink], input_size=SIZE, window_us=WINDOW_US,
                    on_label=labels.append, **kw)
    return pipe, src, model, labels, sink


def finish(pipe, src):
    src.done = True
    pipe.stop()
    pipe.wait(120)


# -- FrameQueue: the policies on their own ------------------------------------------------

def _item(stream, seq):
    return types.SimpleNamespace(stream=stream, seq=seq)


def test_drop_oldest_queue_keeps_the_newest_maxlen_and_counts_each_drop():
    m = Metrics()
    q = FrameQueue(3, drop_oldest=True, metrics=m)
    stop = threading.Event()
    for s in range(7):
        q.put(_item(0, s), stop)
    assert [it.seq for it in q.items] == [4, 5, 6]
    assert m.frames_dropped == 4


def test_blocking_queue_holds_exactly_maxlen_then_blocks_without_dropping():
    m = Metrics()
    q = FrameQueue(3, drop_oldest=False, metrics=m)
    stop = threading.Event()
    for s in range(3):
        q.put(_item(s, s), stop)  # returns at once: room for exactly 3
    done = threading.Event()
    t = threading.Thread(target=lambda: (q.put(_item(9, 3), stop), done.set()), daemon=True)
    t.start()
    assert not done.wait(0.3), "a 4th put into a queue of 3 must block"
    assert len(q.items) == 3 and m.frames_dropped == 0
    assert [it.seq for it in q.take_ready(1, timeout=1.0)] == [0]  # makes room
    assert done.wait(5), "put did not resume when room was made"
    assert [it.seq for it in q.items] == [1, 2, 3] and m.frames_dropped == 0


def test_a_blocked_put_gives_up_on_stop():
    q = FrameQueue(1, drop_oldest=False, metrics=Metrics())
    stop = threading.Event()
    q.put(_item(0, 0), stop)
    t = threading.Thread(target=q.put, args=(_item(0, 1), stop), daemon=True)
    t.start()
    stop.set()
    t.join(5)
    assert not t.is_alive() and [it.seq for it in q.items] == [0]


def test_take_ready_takes_one_frame_per_stream_and_at_most_max_streams_in_order():
    q = FrameQueue(100, drop_oldest=False, metrics=Metrics())
    stop = threading.Event()
    order = [(1, 0), (2, 0), (1, 1), (3, 0), (4, 0), (2, 1), (5, 0)]
    for s, k in order:
        q.put(_item(s, k), stop)
    got = q.take_ready(3, timeout=0.1)
    assert [(it.stream, it.seq) for it in got] == [(1, 0), (2, 0), (3, 0)]
    # the rest keep their arrival order
    assert [(it.stream, it.seq) for it in q.items] == [(1, 1), (4, 0), (2, 1), (5, 0)]
    assert [(it.stream, it.seq) for it in q.take_ready(4, timeout=0.1)] == \
        [(1, 1), (4, 0), (2, 1), (5, 0)]
    assert q.take_ready(4, timeout=0.01) == []


# -- the pipeline around it ---------------------------------------------------------------

def _block_first_step(pipe, src, model):
    """Stream 0 closes one window and enters the model, which waits on the gate."""
    model.gate = threading.Event()
    pipe.start()
    src.window(0, 0)
    src.window(0, 1)   # closes window 0 of stream 0
    assert model.entered.wait(120)


@pytest.mark.parametrize("max_batch", [1, 2, 3])
def test_a_step_takes_at_most_max_batch_streams_and_frames_count_frames(max_batch):
    pipe, src, model, labels, _ = make_pipeline("block", **{"runtime.max_batch": max_batch,
                                                            "decoder.emit_every": 1})
    _block_first_step(pipe, src, model)
    for s in (1, 2, 3, 4):       # four more streams close a window while the model is busy
        src.window(s, 0)
        src.window(s, 1)
    wait_until(lambda: len(pipe.frames.items) == 4)
    model.gate.set()
    wait_until(lambda: pipe.metrics.frames == 5)
    sizes = [b for b, _ in model.calls]
    steps, n_labels = pipe.metrics.steps, len(labels)
    finish(pipe, src)  # (flushes the open windows: more steps)
    expect = [1] + [max_batch] * (4 // max_batch) + ([4 % max_batch] if 4 % max_batch else [])
    assert sizes == expect
    assert steps == len(expect) and n_labels == 5
    assert pipe.metrics.labels == len(labels)  # after the flush too: every label counted


def test_live_source_drops_the_oldest_frames_and_counts_them():
    pipe, src, model, labels, _ = make_pipeline("drop_oldest", **{"runtime.frame_queue": 2,
                                                                  "decoder.emit_every": 1})
    _block_first_step(pipe, src, model)
    for k in range(1, 7):        # stream 5 closes windows 0..5 while the model is busy
        src.window(5, k)
    src.window(0, 2)             # stream 0: window 1
    wait_until(lambda: pipe.metrics.events_in == 9)
    model.gate.set()
    wait_until(lambda: pipe.metrics.frames == 3)
    stepped = [(m["stream"], m["t_us"]) for m in labels]
    finish(pipe, src)
    # stream 5's first event opens its windows at 1000 us: windows ending 2000..6000 and
    # stream 0's ending 2000 went into a queue of 2 with none taken: the 4 oldest dropped
    assert stepped == [(0, 1 * WINDOW_US), (5, 6 * WINDOW_US), (0, 2 * WINDOW_US)]
    assert pipe.metrics.frames_dropped == 4
    assert pipe.summary()["frames_dropped"] == 4


def test_file_source_blocks_instead_of_dropping_and_steps_every_frame():
    pipe, src, model, labels, _ = make_pipeline("block", **{"runtime.frame_queue": 2,
                                                            "decoder.emit_every": 1})
    _block_first_step(pipe, src, model)
    for k in range(1, 7):
        src.window(5, k)
    wait_until(lambda: len(pipe.frames.items) == 2)
    assert not src.q.empty() or pipe.metrics.events_in < 7  # ingest is held back
    model.gate.set()
    wait_until(lambda: pipe.metrics.frames == 6)
    stepped = [m["t_us"] for m in labels if m["stream"] == 5]
    finish(pipe, src)
    assert pipe.metrics.frames_dropped == 0
    assert stepped == [k * WINDOW_US for k in range(2, 7)]


def test_idle_reset_resets_exactly_the_silent_stream_and_counts_it():
    clock = FakeClock(100.0)
    pipe, src, model, labels, _ = make_pipeline("block", clock=clock,
                                                **{"runtime.idle_reset_s": 10.0,
                                                   "runtime.metrics_every_s": 0,
                                                   "decoder.emit_every": 1})
    pipe.start()
    for s in (1, 2):
        src.window(s, 0)
        src.window(s, 1)
    wait_until(lambda: pipe.metrics.frames == 2)      # both seen at t=100
    clock.t = 105.0
    src.window(2, 2)
    wait_until(lambda: pipe.metrics.frames == 3)      # stream 2 seen at t=105
    clock.t = 110.0                                   # stream 1 silent exactly 10 s: kept
    assert not _resets_within(pipe, 0.3)
    clock.t = 110.5                                   # stream 1 silent 10.5 s > 10: reset
    wait_until(lambda: pipe.metrics.streams_reset == 1)
    clock.t = 115.0                                   # stream 2 silent exactly 10 s: kept
    assert not _resets_within(pipe, 0.3, already=1)
    assert pipe.metrics.streams_reset == 1
    n = len(model.calls)
    src.window(1, 2)
    wait_until(lambda: len(model.calls) == n + 1)
    src.window(2, 3)
    wait_until(lambda: len(model.calls) == n + 2)
    finish(pipe, src)
    # stream 1 starts from rest again (membranes reset); stream 2 keeps its 2 steps
    assert model.calls[n] == (1, None)
    assert model.calls[n + 1] == (1, [2.0])
    assert pipe.metrics.streams_reset == 1


def _resets_within(pipe, seconds, already=0):
    ev = threading.Event()
    for _ in range(int(seconds / 0.01)):
        if pipe.metrics.streams_reset > already:
            return True
        ev.wait(0.01)
    return False


def test_a_silent_stream_gets_its_last_window_closed_then_stays_quiet_and_is_reset():
    """docs/runtime.md: "a window holding events is also closed after `window.timeout_s` of
    wall-clock silence, and a stream with nothing new stays quiet", and "A stream with no
    frame for `runtime.idle_reset_s` has its membranes and label state reset".  The binner's
    timeout runs on the real clock (50 ms here), the idle reset on the fake one.  (The binner
    alone closes one more empty window at each further timeout; `StreamingInput` polls it
    only when something arrived since its last window.)"""
    clock = FakeClock(100.0)
    pipe, src, model, _, _ = make_pipeline("drop_oldest", clock=clock,
                                           **{"runtime.idle_reset_s": 10.0,
                                              "runtime.metrics_every_s": 0})
    pipe.cfg.window.timeout_s = 0.05
    pipe.start()
    src.window(1, 0, n=3)                      # window 0 of stream 1 holds 3 events
    wait_until(lambda: pipe.metrics.frames == 1)  # closed by the timeout alone
    assert model.calls == [(1, None)]
    quiet = threading.Event()
    assert not quiet.wait(0.6)                 # 12 timeouts of silence: no empty frames
    assert pipe.metrics.frames == 1 and pipe.metrics.streams_reset == 0
    clock.t = 110.5                            # silent for more than idle_reset_s
    wait_until(lambda: pipe.metrics.streams_reset == 1)
    src.window(1, 1)
    wait_until(lambda: pipe.metrics.frames == 2)  # its window 1 (timeout): from rest
    finish(pipe, src)
    assert model.calls[1] == (1, None)


def test_idle_reset_off_never_resets():
    clock = FakeClock(0.0)
    pipe, src, model, _, _ = make_pipeline("block", clock=clock, **{"runtime.idle_reset_s": 0})
    pipe.start()
    src.window(1, 0)
    src.window(1, 1)
    wait_until(lambda: pipe.metrics.frames == 1)
    clock.t = 1e6
    assert not _resets_within(pipe, 0.3)
    src.window(1, 2)
    wait_until(lambda: len(model.calls) == 2)
    finish(pipe, src)
    assert model.calls[1] == (1, [1.0])


def test_decoder_state_is_reset_with_the_stream():
    """After an idle reset the decoder starts again from the raw probabilities (no EMA
    memory): the first label after the reset carries the un-smoothed score."""
    clock = FakeClock(0.0)
    pipe, src, model, labels, _ = make_pipeline("block", clock=clock,
                                                **{"runtime.idle_reset_s": 1.0,
                                                   "decoder.ema": 0.9,
                                                   "decoder.emit_every": 1})
    pipe.start()
    src.window(1, 0, n=1)
    src.window(1, 1, n=3)        # window 0 holds 1 event: logits (1, 0, 0)
    wait_until(lambda: pipe.metrics.frames == 1)
    clock.t = 5.0
    wait_until(lambda: pipe.metrics.streams_reset == 1)
    src.window(1, 2)             # window 1 holds 3 events: logits (3, 0, 0)
    wait_until(lambda: pipe.metrics.frames == 2)
    scores = [m["score"] for m in labels]
    finish(pipe, src)
    p1, p3 = (np.exp(k) / (np.exp(k) + 2) for k in (1.0, 3.0))
    # without the reset the second score would be 0.9 * p1 + 0.1 * p3
    assert scores == pytest.approx([p1, p3], abs=1e-9)


def test_periodic_metrics_follow_the_clock():
    clock = FakeClock(0.0)
    pipe, src, model, _, sink = make_pipeline("block", clock=clock,
                                              **{"runtime.metrics_every_s": 5.0,
                                                 "runtime.idle_reset_s": 0})
    pipe.start()
    src.window(1, 0)
    src.window(1, 1)
    wait_until(lambda: pipe.metrics.frames == 1)
    assert not [m for m in sink.got if m.get("type") == "metrics"]   # 0 s < 5 s
    clock.t = 5.0
    src.window(1, 2)
    wait_until(lambda: pipe.metrics.frames == 2)
    finish(pipe, src)
    mets = [m for m in sink.got if m.get("type") == "metrics"]
    assert len(mets) == 1 and mets[0]["frames"] == 2


def test_warm_up_leaves_no_state():
    pipe, src, model, labels, _ = make_pipeline("block")
    pipe.warm_up()
    assert len(model.calls) == 1 and model.calls[0][1] is None  # one step, from rest
    assert pipe.session.states == {} and labels == []           # its state discarded


def test_stop_without_drain_steps_nothing_more():
    pipe, src, model, labels, _ = make_pipeline("block", **{"decoder.emit_every": 1})
    _block_first_step(pipe, src, model)
    for k in range(1, 5):
        src.window(5, k)
    wait_until(lambda: len(pipe.frames.items) == 3)
    pipe.stop(drain=False)
    model.gate.set()
    src.done = True
    pipe.wait(120)
    assert len(model.calls) == 1 and [m["stream"] for m in labels] == [0]


def test_stop_with_drain_steps_what_was_read():
    pipe, src, model, labels, _ = make_pipeline("block", **{"decoder.emit_every": 1})
    _block_first_step(pipe, src, model)
    for k in range(1, 5):
        src.window(5, k)
    wait_until(lambda: len(pipe.frames.items) == 3)
    pipe.stop(drain=True)
    model.gate.set()
    src.done = True
    pipe.wait(120)
    # the 3 queued windows of stream 5, then the flushed open windows of both streams
    assert [m["t_us"] for m in labels if m["stream"] == 5][:3] == [2000, 3000, 4000]
