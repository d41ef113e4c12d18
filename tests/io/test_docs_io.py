"""docs/io.md, the claims no other test held: the block defaults (4 MiB; Prophesee readers
256 KiB), a CSV header in any column order, EventFormatError being a ValueError that names
file, offset and field, and the fuzz CI's 40 inputs per format (560 in all)."""

from __future__ import annotations

import numpy as np
import pytest

from eventpipe.errors import EventFormatError
from eventpipe.io import open_reader, read_events
from tests.conftest import SAMPLES, expected_events, sample_path

PROPHESEE = {"evt2_sample.raw", "evt3_sample.raw", "sample_ncars.dat"}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_block_bytes_defaults(name):
    """"Readers decode the file in bounded blocks (`block_bytes`, default 4 MiB; Prophesee
    readers 256 KiB)"."""
    reader = open_reader(sample_path(name))
    want = 256 << 10 if name in PROPHESEE else 4 << 20
    assert reader.block_bytes == want, (reader.format, reader.block_bytes)


def test_csv_header_in_any_column_order(tmp_path):
    ev = expected_events("sample_ncars.dat")[:500]
    path = tmp_path / "shuffled.csv"
    rows = np.stack([ev["p"], ev["y"], ev["t"], ev["x"]], axis=1).astype(np.int64)
    np.savetxt(path, rows, fmt="%d", delimiter=",", header="p,y,t,x", comments="")
    got = read_events(path)
    for f in ("x", "y", "t", "p"):
        np.testing.assert_array_equal(got[f], ev[f])


def test_event_format_error_is_a_value_error_naming_file_offset_and_field(tmp_path):
    data = sample_path("sample_ncars.dat").read_bytes()
    body = data.index(b"\n", data.rindex(b"% ")) + 1 + 2  # header lines, then type + size bytes
    cut = tmp_path / "cut.dat"
    cut.write_bytes(data[:body + 8 * 10 + 3])  # ten whole 8-byte events and 3 bytes of the next
    with pytest.raises(ValueError) as info:
        read_events(cut)
    err = info.value
    assert isinstance(err, EventFormatError)
    assert err.offset == body + 80 and err.field and str(cut) in str(err)
    assert len(err.partial) == 10  # "first yields the events before it"
    np.testing.assert_array_equal(err.partial, expected_events("sample_ncars.dat")[:10])


def test_fuzz_ci_runs_40_inputs_for_each_of_14_formats():
    """"CI runs 40 inputs for each of the 14 formats (560 in all, the recorders' `h5` too)"."""
    from eventpipe.io.formats import format_names
    from tests.fuzz import test_fuzz_ci as ci

    marks = ci.test_mutated_inputs_give_only_typed_errors.pytestmark
    (param,) = [m for m in marks if m.name == "parametrize"]
    assert list(param.args[1]) == format_names()
    assert "h5" in format_names()  # the recordings too
    assert len(format_names()) == 14 and ci.N_PER_FORMAT == 40  # 560 inputs in all
