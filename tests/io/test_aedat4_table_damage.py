"""AEDAT4 ``read_events`` with a damaged data table: the table is only an index.

The trial run (issue 15) damaged one byte of the FileDataTable and got a MemoryError
(a 29 PiB allocation) or a plain ValueError from ``read_events``.  The events are all
still in the packets: the reader must notice that the table does not fit the file and
fall back to the packet scan, returning exactly the events of the undamaged file.
"""

from __future__ import annotations

import numpy as np
import pytest

from eventpipe.io import read_events
from eventpipe.io.aedat4 import Aedat4Reader, encode_aedat4
from eventpipe.io.flatbuffers import build_data_table
from tests.conftest import expected_events, sample_path


def _events(n=3000, seed=0):
    from eventpipe.events import make_events
    rng = np.random.default_rng(seed)
    return make_events(rng.integers(0, 64, n), rng.integers(0, 48, n),
                       np.sort(rng.integers(0, 1_000_000, n)), rng.integers(0, 2, n))


def _with_table(data: bytes, path, edit) -> None:
    """Rewrite an uncompressed file's data table with ``edit(rows)`` (same length)."""
    src = path.with_suffix(".orig.aedat4")
    src.write_bytes(data)
    r = Aedat4Reader(src)
    table = r.read_data_table()
    edit(table)
    rows = [tuple(int(v) for v in row) for row in table]
    new = build_data_table(rows)
    dtp = r.data_table_position
    assert len(new) == len(data) - dtp
    path.write_bytes(data[:dtp] + new)


@pytest.mark.parametrize("what", ["huge count", "negative count", "one more", "one fewer",
                                  "offset past the end", "offset in the header", "zero size"])
def test_table_that_does_not_fit_falls_back_to_the_packets(tmp_path, what):
    ev = _events()
    data = encode_aedat4(ev, (64, 48), compression="NONE", packet_events=500)

    def edit(t):
        if what == "huge count":
            t["num_elements"][2] = 1 << 60       # np.empty would ask for 16 EiB
        elif what == "negative count":
            t["num_elements"][1] = -3
        elif what == "one more":
            t["num_elements"][0] += 1
        elif what == "one fewer":
            t["num_elements"][3] -= 1
        elif what == "offset past the end":
            t["byte_offset"][2] = 1 << 40
        elif what == "offset in the header":
            t["byte_offset"][0] = 4
        else:
            t["size"][4] = 0

    path = tmp_path / "damaged.aedat4"
    _with_table(data, path, edit)
    got = read_events(path)
    np.testing.assert_array_equal(got, ev)


def test_damaged_bytes_in_the_real_samples_table(tmp_path):
    """Seeded single-byte damage anywhere in sample.aedat4's (LZ4) data table."""
    path = sample_path("sample.aedat4")
    data = path.read_bytes()
    want = expected_events("sample.aedat4")
    dtp = Aedat4Reader(path).data_table_position
    rng = np.random.default_rng(15)
    positions = sorted(set(rng.integers(dtp, len(data), 6).tolist()) | {dtp + 4, len(data) - 9})
    for pos in positions:
        bad = bytearray(data)
        bad[pos] ^= 0xFF
        p = tmp_path / f"table_{pos}.aedat4"
        p.write_bytes(bytes(bad))
        got = read_events(p)  # never MemoryError, never a bare ValueError
        np.testing.assert_array_equal(got, want, err_msg=f"byte {pos} damaged")
