"""The fast lzf encoder (recorders/lzf_encode.py) against HDF5's own lzf filter (liblzf).

Independent truth: chunks we encode are written with ``write_direct_chunk`` into an
in-memory HDF5 file whose datasets declare HDF5's shuffle filter and h5py's lzf filter,
and plain h5py reads them back through that pipeline (liblzf decodes them).  Data shapes
are the ones an encoder gets wrong: constant, near-random, runs, values of few bits, and
lengths around the format's limits (32-byte literal runs, 264-byte references, the
8 KiB reference window) and the encoder's own (16-record SIMD blocks, the 4 KiB probe).
"""

from __future__ import annotations

import itertools

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventpipe.events import EVENT_DTYPE
from recorders.lzf import (
    RECORD_COLUMNS, ChunkEncoder, RecordChunkEncoder, out_size, shuffle_lzf_decode,
)
from recorders.lzf_encode import PROBE, REPROBE, SLACK, encode_planes, plane_stride

_names = itertools.count()


def _through_hdf5(chunks: list, dtype, chunk: int, n: int) -> np.ndarray:
    """Write stored chunks (bytes) directly, read the column back with plain h5py."""
    f = h5py.File(f"mem{next(_names)}.h5", "w", driver="core", backing_store=False)
    with f:
        ds = f.create_dataset("c", (n,), dtype=dtype, chunks=(chunk,), maxshape=(None,),
                              compression="lzf", shuffle=True)
        for i, data in enumerate(chunks):
            ds.id.write_direct_chunk((i * chunk,), bytes(data))
        return ds[:]


def _events(rng, n, shape):
    ev = np.zeros(n, EVENT_DTYPE)
    if shape == "constant":
        ev["x"], ev["y"], ev["t"], ev["p"] = 7, 300, 1 << 40, 1
    elif shape == "bytes":  # every byte of the record random: nothing to find
        ev = rng.integers(0, 256, n * 13).astype(np.uint8).view(EVENT_DTYPE)
    elif shape == "camera":  # 1280x720, sorted t, bursts of one row
        ev["x"] = rng.integers(0, 1280, n)
        ev["y"] = np.repeat(rng.integers(0, 720, n // 16 + 1), 16)[:n]
        ev["t"] = (1 << 33) + np.cumsum(rng.integers(0, 3, n))
        ev["p"] = rng.integers(0, 2, n)
    else:  # "extremes": signed t across zero, full-range coordinates
        ev["x"] = rng.choice([0, 1, 65535], n)
        ev["y"] = rng.integers(0, 4, n)
        ev["t"] = np.sort(rng.integers(-(1 << 62), 1 << 62, n))
        ev["p"] = 255
    return ev


def _record_round_trip(ev, chunk):
    enc = RecordChunkEncoder(chunk)
    stored = {name: [] for name in RECORD_COLUMNS}
    for i in range(0, len(ev), chunk):
        for name, data in zip(RECORD_COLUMNS, enc.encode(ev[i:i + chunk])):
            stored[name].append(bytes(data))
    for name in RECORD_COLUMNS:
        got = _through_hdf5(stored[name], ev.dtype[name], chunk, len(ev))
        np.testing.assert_array_equal(got, ev[name], err_msg=f"{name}, chunk {chunk}")
    return stored


@pytest.mark.parametrize("chunk", [1, 15, 16, 17, 33, 264, 265, 4097, 8193])
@pytest.mark.parametrize("shape", ["constant", "bytes", "camera", "extremes"])
def test_record_chunks_read_back_through_hdf5s_lzf_filter(chunk, shape):
    n = 2 * chunk + chunk // 3 + 1 if chunk > 1 else 5  # whole chunks and a partial one
    _record_round_trip(_events(np.random.default_rng(chunk), n, shape), chunk)


def test_record_chunks_of_a_long_camera_stream_and_their_size():
    """16,384-event chunks (the recorder's default) of a camera-like stream: exact, and
    the constant high bytes of t cost 3 bytes per 264 (distance-1 references)."""
    rng = np.random.default_rng(1)
    ev = _events(rng, 3 * 16384, "camera")
    stored = _record_round_trip(ev, 16384)
    t_bytes = sum(len(b) for b in stored["t"]) / len(ev)
    assert t_bytes < 1.5  # t0 and t1 vary; six planes of one byte are ~0.07 B/ev
    assert all(len(b) <= out_size(16384 * 8) - SLACK for b in stored["t"])


def test_column_chunks_around_format_boundaries():
    """Runs and literal stretches whose lengths sit on LZF's limits (32, 264, 8192)."""
    rng = np.random.default_rng(4)
    parts = []
    for k in (31, 32, 33, 263, 264, 265, 266, 8191, 8192, 8193):
        parts += [np.full(k, int(rng.integers(0, 256)), np.uint8),
                  rng.integers(0, 256, k).astype(np.uint8)]
    col = np.concatenate(parts + [parts[-1]])  # a repeat 8193 bytes back: too far
    for chunk in (len(col), 8192, 1000):
        enc = ChunkEncoder(chunk, np.uint8)
        stored = [bytes(enc.encode(col[i:i + chunk])) for i in range(0, len(col), chunk)]
        np.testing.assert_array_equal(_through_hdf5(stored, np.uint8, chunk, len(col)), col)


@pytest.mark.parametrize("shape", ["zeros", "random", "bits", "runs"])
def test_the_encoder_never_writes_past_its_output(shape):
    """Guard bytes after the output (and after SLACK) stay untouched; an output too
    small even for literal runs is -1, never a partial stream."""
    rng = np.random.default_rng(6)
    n = 5000
    src = {"zeros": np.zeros(n, np.uint8), "random": rng.integers(0, 256, n),
           "bits": rng.integers(0, 2, n),
           "runs": np.repeat(rng.integers(0, 256, n // 50), 50)}[shape].astype(np.uint8)
    planes = np.concatenate([src, np.zeros(SLACK, np.uint8)])
    htab = np.zeros(4096, np.int32)
    for room in (out_size(n), n + n // 32 + 33 + SLACK, n // 2 + SLACK, 40 + SLACK, SLACK):
        buf = np.full(room + 256, 0xA5, np.uint8)
        got = encode_planes(planes, 0, n, 1, n, buf[:room], htab, 1 << 20, np.zeros(1, np.int64), 0)
        assert (buf[room:] == 0xA5).all(), (shape, room)
        if got > 0:
            assert got <= room - SLACK
            np.testing.assert_array_equal(shuffle_lzf_decode(bytes(buf[:got]), np.uint8, n),
                                          src)
        else:
            assert got == -1 and room < n + n // 32 + 33 + SLACK, (shape, room)


def test_incompressible_planes_are_literal_runs_at_most_1_32_larger():
    rng = np.random.default_rng(8)
    ev = _events(rng, 4096, "bytes")
    for name, data in zip(RECORD_COLUMNS, RecordChunkEncoder(4096).encode(ev)):
        nbytes = 4096 * ev.dtype[name].itemsize
        assert len(data) <= nbytes + -(-nbytes // 32), name


def test_a_plane_given_up_stays_literal_for_reprobe_chunks_then_is_searched_again():
    """A plane whose stream is over GIVE_UP of its bytes after PROBE bytes (5 random
    values) is emitted as literal runs (n + n/32 bytes, hand-counted) in the REPROBE chunks
    after it, even when they would compress; the chunk after those is searched again.  A
    constant plane is a run whatever the state.  Every chunk reads back through h5py."""
    rng = np.random.default_rng(11)
    n = 2 * PROBE
    noisy = rng.integers(0, 5, n).astype(np.uint8)        # ~0.6 after the probe: given up
    pattern = np.resize(np.arange(37, dtype=np.uint8), n)  # a 37-byte cycle: tiny stream
    enc = ChunkEncoder(n, np.uint8)
    chunks = [noisy] + [pattern] * REPROBE + [np.full(n, 9, np.uint8), pattern, pattern]
    stored = [bytes(enc.encode(c)) for c in chunks]
    literal = n + n // 32
    assert len(stored[0]) > 0.55 * n
    assert [len(b) for b in stored[1:REPROBE + 1]] == [literal] * REPROBE
    assert len(stored[REPROBE + 1]) < 200          # constant: runs, state untouched
    assert len(stored[REPROBE + 2]) < 0.05 * n     # searched again
    assert len(stored[REPROBE + 3]) < 0.05 * n
    np.testing.assert_array_equal(_through_hdf5(stored, np.uint8, n, len(chunks) * n),
                                  np.concatenate(chunks))


def test_record_planes_keep_their_own_give_up_state():
    """Random low bytes of x and y are given up; p (bits) and the t planes keep being
    searched in the next chunk (each of the 13 planes has its own state)."""
    rng = np.random.default_rng(12)
    chunk = 2 * PROBE
    ev = _events(rng, 3 * chunk, "camera")
    enc = RecordChunkEncoder(chunk)
    stored = {name: [] for name in RECORD_COLUMNS}
    for i in range(0, len(ev), chunk):
        for name, data in zip(RECORD_COLUMNS, enc.encode(ev[i:i + chunk])):
            stored[name].append(bytes(data))
    assert enc._skip[0] > 0 and enc._skip[2] == 0  # x lo given up; y lo repeats (rows)
    assert enc._skip[12] == 0 and len(stored["p"][2]) < 0.45 * chunk
    for name in RECORD_COLUMNS:
        got = _through_hdf5(stored[name], ev.dtype[name], chunk, len(ev))
        np.testing.assert_array_equal(got, ev[name])


@pytest.mark.parametrize("gap", [8191, 8192, 8193, 8194])
def test_bit_planes_reference_at_most_8_kib_back(gap):
    """Planes of 0/1 bytes (p) go through the bit-array matcher: a pattern whose only
    earlier copy is ``gap`` bytes back (LZF reaches 8192) reads back exactly through h5py,
    and so do runs longer than the 56 bytes one 64-bit compare covers and than 264."""
    pattern = np.array([1, 0, 1, 1, 0, 0, 1, 1, 1, 0, 1], np.uint8)
    n = gap + 400
    col = np.zeros(n, np.uint8)
    col[100:111] = pattern
    col[100 + gap:111 + gap] = pattern
    col[200:200 + 57] = 1          # 57 ones: one past a 64-bit compare
    col[300:300 + 600] = 1 if gap < 8193 else 0
    enc = ChunkEncoder(n, np.uint8)
    stored = bytes(enc.encode(col))
    np.testing.assert_array_equal(_through_hdf5([stored], np.uint8, n, n), col)
    assert len(stored) < 0.05 * n


@pytest.mark.timeout(60)
@pytest.mark.parametrize("d", [8, 9, 55, 56, 57, 111, 112, 113, 168, 263, 264, 265])
def test_bit_plane_matches_of_every_length_around_the_56_byte_compares(d):
    """A 300-byte block of 0/1 bytes whose first 8 bytes (all ones) occur nowhere else in
    it, then the block again with byte ``d`` flipped: the copy's match is exactly ``d``
    bytes long (compared 56 bytes per word: a difference right after a whole word once
    made the compare loop spin forever).  Exact through h5py."""
    rng = np.random.default_rng(d)
    block = rng.integers(0, 2, 300).astype(np.uint8)
    block[:8] = 1
    block[8::7] = 0          # no other run of 8 ones
    copy = block.copy()
    if d < len(copy):
        copy[d] ^= 1
    col = np.concatenate([block, copy])
    stored = bytes(ChunkEncoder(len(col), np.uint8).encode(col))
    np.testing.assert_array_equal(_through_hdf5([stored], np.uint8, len(col), len(col)), col)


@pytest.mark.parametrize("n", [1, 7, 8, 9, 63, 64, 65, 1000, 4099])
def test_random_bit_planes_of_any_length(n):
    """Random 0/1 bytes of every length around the 8-byte packing: exact through h5py,
    and about 0.3 stored bytes per byte once the 256 keys have been seen (8-bit keys,
    matches of 8 or more bytes; a short plane pays that warm-up)."""
    rng = np.random.default_rng(n)
    col = rng.integers(0, 2, n).astype(np.uint8)
    stored = bytes(ChunkEncoder(n, np.uint8).encode(col))
    np.testing.assert_array_equal(_through_hdf5([stored], np.uint8, n, n), col)
    if n >= 4000:
        assert len(stored) < 0.36 * n


def test_hash_table_positions_wrap_without_stale_matches():
    """The int32 table is cleared when its base nears overflow; chunks encoded on both
    sides of that read back exactly."""
    enc = ChunkEncoder(4096, np.int64)
    enc._table.gbase = (1 << 30) - 3 * (4096 * 8 + (1 << 14))
    rng = np.random.default_rng(9)
    col = np.cumsum(rng.integers(0, 3, 4096 * 8)).astype(np.int64)
    stored = [bytes(enc.encode(col[i:i + 4096])) for i in range(0, len(col), 4096)]
    assert enc._table.gbase < 1 << 30
    np.testing.assert_array_equal(_through_hdf5(stored, np.int64, 4096, len(col)), col)


def test_plane_stride_is_never_a_multiple_of_4_kib():
    for chunk in (1, 16, 3776, 4096, 16384, 65536, 12345):
        ps = plane_stride(chunk)
        assert ps >= chunk and ps % 64 == 0 and ps % 4096 != 0, chunk


_dtypes = st.sampled_from([np.uint8, np.uint16, np.int64])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dtype=_dtypes, chunk=st.integers(1, 300), data=st.data())
def test_any_column_round_trips_through_hdf5(dtype, chunk, data):
    info = np.iinfo(dtype)
    n = data.draw(st.integers(1, 3 * chunk))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    kind = data.draw(st.sampled_from(["few bits", "full range", "sorted", "runs"]))
    if kind == "few bits":  # long minimum matches
        col = rng.integers(0, data.draw(st.sampled_from([1, 2, 4, 8, 9])), n)
    else:
        col = rng.integers(int(info.min), int(info.max), n, dtype=np.int64, endpoint=True) \
            if dtype == np.int64 else rng.integers(int(info.min), int(info.max) + 1, n)
    if kind == "sorted":
        col = np.sort(col)
    if kind == "runs":
        col = np.repeat(col, int(rng.integers(1, 40)))[:n]
    col = col.astype(dtype)
    enc = ChunkEncoder(chunk, dtype)
    stored = [bytes(enc.encode(col[i:i + chunk])) for i in range(0, len(col), chunk)]
    np.testing.assert_array_equal(_through_hdf5(stored, dtype, chunk, len(col)), col)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunk=st.integers(1, 200), seed=st.integers(0, 2**32 - 1),
       shape=st.sampled_from(["constant", "bytes", "camera", "extremes"]))
def test_any_record_chunks_round_trip_through_hdf5(chunk, seed, shape):
    rng = np.random.default_rng(seed)
    _record_round_trip(_events(rng, int(rng.integers(1, 3 * chunk + 1)), shape), chunk)
