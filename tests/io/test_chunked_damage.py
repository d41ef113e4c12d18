"""``iter_events(chunk_events=N)`` on damaged files: the events before the damage reach
the caller (issue 15: up to N-1 of them were lost with ``on_error="raise"``).

Truth: ``read_events`` on the same damaged file raises with ``err.partial`` = the events
decoded before the damage (itself a prefix of the independent decoder's expected
events for truncations).  Chunked iteration must yield exactly those events, then raise
the same error."""

from __future__ import annotations

import numpy as np
import pytest

from eventpipe.errors import EventFormatError
from eventpipe.io import iter_events, read_events
from eventpipe.io.chunking import concat
from tests.conftest import SAMPLES, expected_events, sample_path


def _damaged(tmp_path, name, kind, frac, shift=0):
    data = sample_path(name).read_bytes()
    cut = (int(len(data) * frac) | 1) + shift  # odd (and then 3 more): inside a record
    if kind == "truncated":
        out = data[:cut]
    else:
        b = bytearray(data)
        b[cut:cut + 16] = b"\xff" * 16
        out = bytes(b)
    p = tmp_path / f"{kind}_{frac}_{shift}_{name}"
    p.write_bytes(out)
    return p


def _iterate(path, **kw):
    got = []
    try:
        for chunk in iter_events(path, **kw):
            got.append(chunk)
    except EventFormatError as exc:
        return concat(got), exc
    return concat(got), None


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_chunked_iteration_keeps_the_events_before_the_damage(tmp_path, name):
    opts = {"sensor_size": (1280, 720)} if name == "sample_ncars.dat" else {}
    seen = 0
    for kind in ("truncated", "damaged"):
        for frac, shift in ((0.37, 0), (0.52, 3), (0.81, 0), (0.81, 3)):
            path = _damaged(tmp_path, name, kind, frac, shift)
            try:
                read_events(path, **opts)
                continue  # this damage decodes (some formats carry no redundancy)
            except EventFormatError as exc:
                whole, err = exc.partial, exc
            seen += 1
            assert whole is not None and len(whole) > 0
            if kind == "truncated":  # a truncated file's events are a prefix of the real ones
                ref = expected_events(name)
                np.testing.assert_array_equal(whole, ref[:len(whole)])
            for kw in ({"chunk_events": 7}, {"chunk_events": 100_000}, {"chunk_us": 3_000},
                       {"chunk_events": 1000, "chunk_us": 20_000}):
                got, exc = _iterate(path, **kw, **opts)
                assert exc is not None and str(exc) == str(err), (kind, frac, kw)
                np.testing.assert_array_equal(got, whole, err_msg=f"{kind} {frac} {kw}")
    assert seen >= 2, f"only {seen} of the damaged copies of {name} raised"
