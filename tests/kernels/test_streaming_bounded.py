"""StreamingBinner stays bounded whatever the timestamps: time jumps are discontinuities,
one call returns at most ``max_frames`` frames.

Truth: ``to_frames`` over the whole recording (every window, the empty ones across the
gap included); the streaming output must equal it with exactly the empty windows across
the gap left out."""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest

from eventpipe.events import make_events
from eventpipe.kernels import StreamingBinner, to_frames

HOUR_US = 3_600_000_000


def _segment(rng, n, t0, span, wh):
    t = np.sort(rng.integers(t0, t0 + span, n))
    return make_events(rng.integers(0, wh[0], n), rng.integers(0, wh[1], n), t,
                       rng.integers(0, 2, n))


def _drain(b, packets):
    out, marks = [], []
    for pk in packets:
        for frames, disc in b.iter_push(pk):
            out.append(frames)
            if disc:
                marks.append(sum(len(f) for f in out))
    out.append(b.flush())
    return np.concatenate(out), marks


@pytest.mark.parametrize("stride", [1000, 250])
@pytest.mark.parametrize("n_packets", [1, 5])
def test_gap_skips_exactly_the_empty_windows(stride, n_packets):
    rng = np.random.default_rng(7)
    wh, window = (12, 10), 1000
    a = _segment(rng, 300, 0, 20_000, wh)
    b_ = _segment(rng, 300, 80_000, 20_000, wh)  # a 60 ms gap
    ev = np.concatenate([a, b_])
    ref = to_frames(ev, wh, time_window=window, overlap=window - stride, include_incomplete=True)
    starts = ev["t"][0] + stride * np.arange(len(ref))
    keep = (starts <= a["t"][-1]) | (starts + window > b_["t"][0])
    binner = StreamingBinner(wh, window, stride, max_gap_us=10_000)
    got, marks = _drain(binner, np.array_split(ev, n_packets))
    assert binner.discontinuities == 1
    assert binner.windows_skipped == int((~keep).sum()) > 0
    assert not ref[~keep].any()  # what was skipped was empty
    np.testing.assert_array_equal(got, ref[keep])
    assert marks == [int(keep[:np.flatnonzero(~keep)[0]].sum())]  # the jump is marked where it is


def test_gap_below_the_bound_is_plain_to_frames():
    rng = np.random.default_rng(8)
    wh = (8, 8)
    ev = np.concatenate([_segment(rng, 100, 0, 5000, wh), _segment(rng, 100, 50_000, 5000, wh)])
    got, marks = _drain(StreamingBinner(wh, 1000, max_gap_us=100_000), [ev])
    np.testing.assert_array_equal(got, to_frames(ev, wh, time_window=1000,
                                                 include_incomplete=True))
    assert marks == []


def test_fixed_start_far_before_the_first_event_skips():
    b = StreamingBinner((4, 4), 100, start_time=0, max_gap_us=1000)
    out = b.push(make_events([1, 2], [1, 1], [HOUR_US + 50, HOUR_US + 150], [1, 1]))
    assert not b.pending
    assert out.shape[0] == 1 and out[0, 1, 1, 1] == 1  # the window [HOUR, HOUR+100)
    assert b.next_window == (HOUR_US + 100, HOUR_US + 200)  # still on the start's grid
    assert b.windows_skipped == HOUR_US // 100 and b.discontinuities == 1


@pytest.mark.parametrize("stride", [None, 10_000])
def test_one_hour_jump_allocates_nothing_proportional(stride):
    """The trial run's reproduction: valid traffic, then one event an hour ahead."""
    wh = (128, 128)
    b = StreamingBinner(wh, 50_000, stride)
    rng = np.random.default_rng(1)
    b.push(_segment(rng, 2000, 0, 200_000, wh))  # warm (compiles)
    jump = make_events([5], [5], [HOUR_US], [1])
    tracemalloc.start()
    t0 = time.perf_counter()
    chunks = list(b.iter_push(jump))
    after = _segment(rng, 2000, HOUR_US + 1, 200_000, wh)
    chunks += list(b.iter_push(after))
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    frame = 2 * 128 * 128 * 2
    assert peak < 100 * frame  # the output of the packets, not 72,000 empty frames (4.7 GB)
    assert elapsed < 5
    assert b.discontinuities == 1
    n_after = sum(len(f) for f, _ in chunks[1:])
    assert n_after >= 3  # windows keep closing after the jump: labels continue
    assert chunks[-1][0][-1].sum() > 0


def test_tiny_windows_return_at_most_max_frames():
    """``window_us=1``: 500k windows from 1000 events, in calls of at most max_frames."""
    wh = (16, 16)
    b = StreamingBinner(wh, 1, max_frames=1000, max_gap_us=None)
    ev = make_events(np.zeros(1000, int), np.zeros(1000, int), np.arange(1000) * 500,
                     np.ones(1000, int))
    sizes, total = [], 0
    for frames, _ in b.iter_push(ev):
        sizes.append(len(frames))
        total += int(frames.sum())
    assert max(sizes) <= 1000 and sum(sizes) == 999 * 500
    assert b._outbuf.shape[0] <= 1001  # never grew past the bound
    assert total == 999  # every closed window's event, once (the last is still open)
    b2 = StreamingBinner(wh, 1, max_frames=10)
    assert b2.push_bounded(ev).shape[0] == 10 and b2.pending
    with pytest.raises(RuntimeError, match="resume"):
        b2.push(ev)
    b3 = StreamingBinner(wh, 1, max_frames=10)  # push: every frame, in one array
    assert b3.push(ev).shape[0] == 999 * 500 and not b3.pending


def test_bad_bounds_are_rejected():
    with pytest.raises(ValueError, match="max_gap_us"):
        StreamingBinner((4, 4), 100, max_gap_us=-1)
    with pytest.raises(ValueError, match="max_frames"):
        StreamingBinner((4, 4), 100, max_frames=0)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("window, stride", [(2**63 - 1, None), (100, 2**63 - 1), (10**20, None)])
def test_windows_past_the_int64_time_range_are_refused(window, stride):
    """A window of 2^63 - 1 us overflowed the kernels' window end: ``push`` looped forever
    (``eventpipe view --window-us 9223372036854775807`` hung); past int64 it was an
    ``OverflowError``.  Both are refused, naming the bound."""
    with pytest.raises(ValueError, match="must be at most 1,000,000,000,000,000 us"):
        StreamingBinner((4, 4), window, stride)
    b = StreamingBinner((4, 4), 10**15)  # the longest one still bins
    ev = make_events([1, 2], [1, 1], [10, 10**12], [1, 0])
    assert b.push(ev).shape[0] == 0 and b.flush().sum() == 2


def test_last_closed_end_names_the_frames_before_a_jump():
    b = StreamingBinner((4, 4), 100, max_gap_us=1000)
    assert b.last_closed_end is None
    out = b.push_bounded(make_events([1, 1, 2], [1, 1, 1], [0, 150, HOUR_US], [1, 1, 1]))
    assert out.shape[0] == 2 and b.discontinuity and b.last_closed_end == 200
    out = b.resume()
    assert out.shape[0] == 0 and not b.pending and b.next_window == (HOUR_US, HOUR_US + 100)


@pytest.mark.parametrize("stride", [1000, 400])
@pytest.mark.parametrize("n_packets", [2, 6])
def test_sender_restart_back_in_time_starts_a_new_grid(stride, n_packets):
    """Time going back further than the bound (a restarted sender) is a discontinuity:
    the frames before it are ``to_frames`` of the first run, those after it ``to_frames``
    of the second, instead of every later event dropped as backwards."""
    rng = np.random.default_rng(9)
    wh, window = (10, 6), 1000
    a = _segment(rng, 400, 5_000_000, 30_000, wh)
    b_ = _segment(rng, 400, 0, 30_000, wh)
    packets = np.array_split(a, n_packets // 2) + np.array_split(b_, n_packets // 2)
    binner = StreamingBinner(wh, window, stride, max_gap_us=100_000)
    got, marks = _drain(binner, packets)
    kw = dict(time_window=window, overlap=window - stride, include_incomplete=True)
    # before the jump: every window starting at or before a's last event (an out-of-bounds
    # event far ahead makes to_frames compute them all), after it: b on its own grid
    far = make_events([wh[0]], [0], [a["t"][-1] + 10 * window], [1])
    ref_a = to_frames(np.concatenate([a, far]), wh, **kw)
    ref_a = ref_a[:int((a["t"][-1] - a["t"][0]) // stride) + 1]
    ref_b = to_frames(b_, wh, **kw)
    assert marks == [len(ref_a)] and binner.discontinuities == 1
    np.testing.assert_array_equal(got, np.concatenate([ref_a, ref_b]))
    assert binner.stats.dropped_backwards == 0


def test_one_damaged_timestamp_in_file_chunks():
    """Bit 30 flipped in one timestamp (the trial run's .dat), in the chunks a file source
    makes (``rebatch`` splits where time jumps back): two discontinuities (ahead, then
    back) and every other event still binned on the original grid's times."""
    from eventpipe.io.chunking import rebatch

    rng = np.random.default_rng(10)
    wh = (8, 8)
    ev = _segment(rng, 1000, 0, 100_000, wh)
    bad = ev.copy()
    bad["t"][500] |= 1 << 30
    b = StreamingBinner(wh, 10_000, max_gap_us=1_000_000)
    got, marks = _drain(b, list(rebatch([bad], chunk_us=10_000)))
    assert b.discontinuities == 2 and len(marks) == 2
    assert b.stats.dropped_backwards == 0 and b.stats.binned == 1000
    assert int(got.sum()) == 1000  # every event in exactly one window
    before = to_frames(np.concatenate([ev[:500], make_events([8], [0], [ev["t"][499] + 100_000],
                                                             [1])]), wh, time_window=10_000)
    n0 = int((ev["t"][499] - ev["t"][0]) // 10_000) + 1
    np.testing.assert_array_equal(got[:n0], before[:n0])


def test_time_back_inside_a_packet_is_dropped_and_counted():
    """Inside one packet, events far behind are dropped as backwards (counted); the next
    packet that starts far behind is the discontinuity."""
    b = StreamingBinner((4, 4), 100, max_gap_us=1000)
    list(b.iter_push(make_events([1, 1, 1], [1, 1, 1], [0, 50_000, 10], [1, 1, 1])))
    assert b.stats.dropped_backwards == 1 and b.discontinuities == 1
    frames, disc = next(b.iter_push(make_events([2], [2], [20], [1])))
    assert disc and b.discontinuities == 2  # ahead (50 ms), then back


def test_halves_are_not_paired_across_a_jump():
    """channels='halves': a first half left open at a time jump is closed with a silent
    second half (as at the end of a stream), not paired with a half from after the jump."""
    from eventpipe.represent import InputRecipe
    from eventpipe.represent.stream import StreamingInput

    r = InputRecipe(size=(4, 4), window_us=100, channels="halves")
    s = StreamingInput(r, (4, 4), max_gap_us=1000)
    counts, ends = s.push(make_events([1, 2, 3], [1, 1, 1], [0, 30, HOUR_US], [1, 0, 1]))
    assert s.jumped and ends == [100] and counts.shape == (1, 2, 4, 4)
    assert counts[0, 0].sum() == 2 and counts[0, 1].sum() == 0  # first half, silence
    assert s.pending
    counts, ends = s.more()
    assert not s.pending and ends == []
    counts, ends = s.push(make_events([1, 1], [1, 1], [HOUR_US + 60, HOUR_US + 110], [1, 1]))
    assert ends == [HOUR_US + 100]  # [HOUR, HOUR+100): halves from after the jump only
    assert counts[0, 0].sum() == 1 and counts[0, 1].sum() == 1


@pytest.mark.parametrize("max_gap_us", [0, 500, 1000])
def test_the_gap_bound_is_at_least_one_window(max_gap_us):
    """docs/runtime.md: a jump of more than `window.max_gap_us` "(default 1 s; at least one
    window)" is a discontinuity: a bound below the window acts as the window (a jump of one
    window is not a discontinuity, one microsecond more is)."""
    for dt, jumps in ((900, 0), (1000, 0), (1001, 1)):
        b = StreamingBinner((4, 4), 1000, max_gap_us=max_gap_us)
        b.push(make_events([1], [1], [0], [1]))
        b.push(make_events([1], [1], [dt], [1]))
        assert b.discontinuities == jumps, dt
    b = StreamingBinner((4, 4), 1000, max_gap_us=2000)
    b.push(make_events([1], [1], [0], [1]))
    b.push(make_events([1], [1], [1500], [1]))
    assert b.discontinuities == 0  # a bound above the window is the bound
