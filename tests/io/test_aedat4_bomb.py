"""AEDAT4 files whose compressed packets inflate without bound (compression bombs).

A packet's size in the file bounds what is read, not what it decompresses to: zstd turns
~8 KiB into 256 MiB of zeros.  The file reader decompresses with the same limit as
``dv://`` (``MAX_PACKET``, 64 MiB): past it, the packet is an ``EventFormatError``
naming the file and the packet's offset, after at most that much output was made.
"""

from __future__ import annotations

import struct
import tracemalloc

import numpy as np
import pytest

from eventpipe.errors import EventFormatError
from eventpipe.io import iter_events, read_events
from eventpipe.io.aedat4 import MAX_PACKET, encode_aedat4
from tests.transport.test_dv import _bomb


def _events(n=2000, seed=0):
    from eventpipe.events import make_events
    rng = np.random.default_rng(seed)
    return make_events(rng.integers(0, 64, n), rng.integers(0, 48, n),
                       np.sort(rng.integers(0, 1_000_000, n)), rng.integers(0, 2, n))


@pytest.mark.parametrize("kind", ["zstd", "lz4"])
def test_a_packet_that_inflates_past_the_limit_is_a_typed_error(tmp_path, kind):
    ev = _events()
    good = encode_aedat4(ev, (64, 48), compression=kind.upper(), data_table=False)
    bomb = _bomb(kind, 4 * MAX_PACKET)
    assert len(bomb) < 2 * MAX_PACKET // 64       # small in the file
    path = tmp_path / f"bomb_{kind}.aedat4"
    path.write_bytes(good + struct.pack("<ii", 0, len(bomb)) + bomb)
    tracemalloc.start()
    try:
        with pytest.raises(EventFormatError, match=f"{MAX_PACKET:,}-byte packet limit") as ei:
            read_events(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert ei.value.path == str(path) and ei.value.offset == len(good)
    assert peak < 3 * MAX_PACKET                  # not the 256 MiB the packet claims
    got = []                                      # the events before the bomb come first
    with pytest.raises(EventFormatError, match="packet limit"):
        for chunk in iter_events(path):
            got.append(chunk)
    np.testing.assert_array_equal(np.concatenate(got), ev)


def test_a_data_table_that_inflates_past_the_limit_is_only_an_index(tmp_path):
    ev = _events()
    data = encode_aedat4(ev, (64, 48), compression="ZSTD")
    from eventpipe.io.aedat4 import Aedat4Reader

    path = tmp_path / "table.aedat4"
    path.write_bytes(data)
    dtp = Aedat4Reader(path).data_table_position
    path.write_bytes(data[:dtp] + _bomb("zstd", 4 * MAX_PACKET))
    np.testing.assert_array_equal(read_events(path), ev)   # the packet scan, as for damage
