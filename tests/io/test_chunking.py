"""rebatch: any blocks, any chunking -> exactly the concatenation, with the sizes promised."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from eventpipe.events import EVENT_DTYPE, make_events
from eventpipe.io.chunking import concat, rebatch


def _events(n, seed=0, backwards=False):
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.integers(0, 50, n)).astype(np.int64)
    if backwards and n > 3:
        t[n // 2] -= 30  # a timestamp stepping back, as in real EVT3 data
    return make_events(rng.integers(0, 640, n), rng.integers(0, 480, n), t, rng.integers(0, 2, n))


def _split(ev, cuts):
    cuts = sorted(set(c % (len(ev) + 1) for c in cuts))
    return [ev[a:b] for a, b in zip([0] + cuts, cuts + [len(ev)])]


@settings(max_examples=150, deadline=None, derandomize=True)
@given(n=st.integers(0, 400), cuts=st.lists(st.integers(0, 10_000), max_size=12),
       chunk_events=st.one_of(st.none(), st.integers(1, 300)),
       chunk_us=st.one_of(st.none(), st.integers(1, 5000)), backwards=st.booleans())
def test_rebatch_is_exact(n, cuts, chunk_events, chunk_us, backwards):
    ev = _events(n, seed=n, backwards=backwards)
    chunks = list(rebatch(_split(ev, cuts), chunk_events=chunk_events, chunk_us=chunk_us))
    out = concat(chunks)
    assert out.dtype == EVENT_DTYPE
    assert np.array_equal(out, ev)
    assert all(len(c) > 0 for c in chunks)
    if chunk_events is not None:
        assert all(len(c) <= chunk_events for c in chunks)
        if chunk_us is None:
            assert all(len(c) == chunk_events for c in chunks[:-1])


def test_chunk_us_windows_are_aligned_on_first_event():
    t = np.array([100, 150, 1099, 1100, 1101, 5000, 5001], dtype=np.int64)
    ev = make_events(np.zeros(7), np.zeros(7), t, np.ones(7))
    chunks = list(rebatch([ev[:2], ev[2:4], ev[4:]], chunk_us=1000))
    # windows [100,1100), [1100,2100), [4100,5100): the empty ones yield nothing
    assert [c["t"].tolist() for c in chunks] == [[100, 150, 1099], [1100, 1101], [5000, 5001]]


def test_backwards_timestamp_stays_in_its_window():
    t = np.array([0, 999, 1000, 998, 1500, 2000], dtype=np.int64)
    ev = make_events(np.zeros(6), np.zeros(6), t, np.zeros(6))
    chunks = list(rebatch([ev], chunk_us=1000))
    assert [c["t"].tolist() for c in chunks] == [[0, 999], [1000, 998, 1500], [2000]]


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_bad_chunk_sizes_are_rejected(bad):
    with pytest.raises(ValueError, match="positive integer"):
        list(rebatch([_events(5)], chunk_events=bad))


def test_make_events_checks_ranges():
    with pytest.raises(ValueError, match="'x' out of uint16"):
        make_events([70000], [0], [0], [1])
    with pytest.raises(ValueError, match="'p' must be 0"):
        make_events([1], [0], [0], [2])
    with pytest.raises(ValueError, match="shape"):
        make_events([1, 2], [0], [0], [1])


def test_time_jumping_back_starts_a_new_window():
    """One timestamp far ahead (bit 30 flipped) must not gather the rest into one chunk."""
    t = np.array([0, 500, 1000, (1 << 30) + 1200, 1300, 1400, 2600, 2700], dtype=np.int64)
    ev = make_events(np.zeros(8), np.zeros(8), t, np.zeros(8))
    chunks = list(rebatch([ev[:5], ev[5:]], chunk_us=1000))
    assert [c["t"].tolist() for c in chunks] == [[0, 500], [1000], [(1 << 30) + 1200],
                                                 [1300, 1400], [2600, 2700]]
