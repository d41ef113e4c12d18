"""Our shuffle + lzf chunk encoder and chunk reader against libhdf5 and h5py's liblzf.

The independent truth is HDF5 itself: chunks we encode are written with
``write_direct_chunk`` into datasets whose pipeline is HDF5's shuffle filter and h5py's
lzf filter, and read back through that pipeline (h5py's bundled liblzf decodes them);
chunks HDF5 compressed itself are read by our decoder.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from recorders import EventRecorder, RecordingError, open_recording
from recorders.chunks import ChunkDamaged, ChunkReader
from recorders.lzf import ChunkEncoder, lzf_decode, shuffle_lzf_decode
from tests.recorders.conftest import random_events


def _columns(rng, n):
    """Data shapes an encoder must get right: constant, runs, ramps, random, extremes."""
    t = np.cumsum(rng.integers(0, 3, n)) + (1 << 40)
    return {
        "t sorted": t.astype(np.int64),
        "t negative": (-t).astype(np.int64),
        "int64 random": rng.integers(-(1 << 63), (1 << 63) - 1, n, dtype=np.int64),
        "uint16 random": rng.integers(0, 1 << 16, n).astype(np.uint16),
        "uint16 small": rng.integers(0, 640, n).astype(np.uint16),
        "uint16 runs": np.repeat(rng.integers(0, 480, n // 7 + 1), 7)[:n].astype(np.uint16),
        "uint8 bits": rng.integers(0, 2, n).astype(np.uint8),
        "uint8 constant": np.full(n, 1, np.uint8),
        "uint8 random": rng.integers(0, 256, n).astype(np.uint8),
        "uint8 period 3": np.tile(np.array([1, 2, 3], np.uint8), n // 3 + 1)[:n],
    }


@pytest.mark.parametrize("chunk", [1, 2, 3, 264, 265, 1000, 4096])
def test_direct_chunks_read_back_through_hdf5s_own_filters(tmp_path, chunk):
    rng = np.random.default_rng(chunk)
    n = chunk * 3 + chunk // 2  # whole chunks and a partial last one
    with h5py.File(tmp_path / "d.h5", "w", libver="latest") as f:
        for name, col in _columns(rng, n).items():
            ds = f.create_dataset(name, (n,), dtype=col.dtype, maxshape=(None,),
                                  chunks=(chunk,), compression="lzf", shuffle=True)
            enc = ChunkEncoder(chunk, col.dtype)
            for i in range(0, n, chunk):
                ds.id.write_direct_chunk((i,), enc.encode(col[i:i + chunk]))
    with h5py.File(tmp_path / "d.h5", "r") as f:
        for name, col in _columns(np.random.default_rng(chunk), n).items():
            np.testing.assert_array_equal(f[name][:], col, err_msg=name)


def test_a_run_is_one_literal_and_distance_1_references():
    """Hand-worked: 300 bytes of 7 -> literal (ctrl 0, 7), then a 264-byte reference
    (ctrl 0xE0 | 0, 264 - 9 = 255, distance - 1 = 0) and one of 35 bytes."""
    enc = ChunkEncoder(300, np.uint8)
    out = bytes(enc.encode(np.full(300, 7, np.uint8)))
    assert out == bytes([0x00, 7, 0xE0, 255, 0x00, 0xE0, 35 - 9, 0x00])
    np.testing.assert_array_equal(shuffle_lzf_decode(out, np.uint8, 300), np.full(300, 7))


def test_incompressible_chunk_is_still_valid_lzf_and_barely_larger():
    rng = np.random.default_rng(5)
    col = rng.integers(0, 256, 4096).astype(np.uint8)
    out = bytes(ChunkEncoder(4096, np.uint8).encode(col))
    assert len(out) <= 4096 + 4096 // 32 + 1
    np.testing.assert_array_equal(shuffle_lzf_decode(out, np.uint8, 4096), col)


def test_decoder_is_bounded_on_garbage():
    """Random streams never write past the output (Numba runs without bounds checks):
    the result is -1 or a length within the buffer, and the guard bytes stay intact."""
    rng = np.random.default_rng(11)
    for _ in range(2000):
        src = rng.integers(0, 256, int(rng.integers(1, 200))).astype(np.uint8)
        dst = np.zeros(96, np.uint8)
        dst[64:] = 0xA5
        n = lzf_decode(src, len(src), dst[:64])
        assert n == -1 or 0 <= n <= 64
        assert (dst[64:] == 0xA5).all()


def test_chunk_reader_reads_what_hdf5_compressed_itself(tmp_path):
    """Chunks written through HDF5's pipeline, including one its optional lzf filter could
    not shrink (stored with the filter-mask bit set), decoded by our reader."""
    rng = np.random.default_rng(2)
    n, c = 10_000, 1024
    cols = {"t": np.cumsum(rng.integers(0, 4, n)).astype(np.int64),
            "x": rng.integers(0, 640, n).astype(np.uint16)}
    cols["t"][2048:3072] = rng.integers(-(1 << 62), 1 << 62, 1024)  # incompressible
    with h5py.File(tmp_path / "h.h5", "w") as f:
        for name, col in cols.items():
            f.create_dataset(name, data=col, chunks=(c,), compression="lzf", shuffle=True)
    with h5py.File(tmp_path / "h.h5", "r") as f:
        assert f["t"].id.get_chunk_info_by_coord((2048,)).filter_mask == 0b10
        for name, col in cols.items():
            out = np.zeros((n, col.dtype.itemsize), np.uint8)
            ChunkReader(f[name], name).read_into(5, n, out[5:])
            np.testing.assert_array_equal(out[5:].reshape(-1).view(col.dtype), col[5:])


def test_a_damaged_chunk_is_a_typed_error_naming_file_and_column(tmp_path):
    path = tmp_path / "r.h5"
    with EventRecorder(path, (640, 480), chunk_events=1024) as rec:
        rec.write(random_events(4, 5000))
    with h5py.File(path, "r") as f:
        info = f["events/y"].id.get_chunk_info_by_coord((2048,))
    data = bytearray(path.read_bytes())
    data[info.byte_offset] = 0xE0  # a back-reference before the start of the chunk
    path.write_bytes(bytes(data))
    with open_recording(path) as rec:
        rec.events(0, 100)  # other chunks still read
        with pytest.raises(RecordingError, match=r"r\.h5, field 'events/y'.*position 2,048"):
            rec.events()


def test_columns_are_preallocated_while_written_and_exact_once_closed(tmp_path):
    path = tmp_path / "r.h5"
    ev = random_events(8, 70_000)
    rec = EventRecorder(path, (640, 480), chunk_events=1024, flush_every_us=None)
    rec.write(ev[:3000])
    rec.flush()
    with h5py.File(path, "r", swmr=True) as f:
        assert f["events/x"].shape[0] == 64 * 1024  # grown in steps of 64 chunks
    with open_recording(path) as r:
        np.testing.assert_array_equal(r.events(), ev[:3000])
    rec.write(ev[3000:])
    rec.close()
    with h5py.File(path, "r") as f:
        assert all(f[f"events/{k}"].shape == (70_000,) for k in "xytp")
        np.testing.assert_array_equal(f["events/t"][:], ev["t"])


def test_chunk_damaged_names_column_and_position():
    exc = ChunkDamaged("t", 4096, "bad")
    assert "'t'" in str(exc) and "4,096" in str(exc)
