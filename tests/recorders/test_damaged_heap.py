"""A damaged HDF5 global heap must be a typed error, never a libhdf5 hang.

``benchmarks/fuzz.py`` (h5 mode, seed 1234) found it: input #75 of 200 zeroes a region
over the global heap collection that holds a recording's attribute strings, and the
free-space object there gets size 0.  libhdf5 (2.0) steps through a collection by each
object's size, so it looped forever inside the open.  The reader now walks the
collection first (``recorders.layout.check_global_heaps``).
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from recorders import EventRecorder, RecordingError, open_recording
from tests.recorders.conftest import random_events

REPO = Path(__file__).resolve().parents[2]


def _heap_objects(data: bytes) -> tuple[int, list[tuple[int, int, int]]]:
    """(collection offset, [(object offset, index, size), ...]) of the first GCOL, walked
    as the HDF5 format specification lays it out (16-byte headers, sizes 8-aligned)."""
    at = data.find(b"GCOL")
    assert at >= 0 and data[at + 4] == 1
    size = struct.unpack_from("<Q", data, at + 8)[0]
    objs, p = [], 16
    while p + 16 <= size:
        index, osize = struct.unpack_from("<H", data, at + p)[0], struct.unpack_from(
            "<Q", data, at + p + 8)[0]
        objs.append((at + p, index, osize))
        if index == 0:  # free space: the rest of the collection
            break
        p += 16 + (osize + 7) // 8 * 8
    return at, objs


def _fuzz_input_75() -> tuple[bytes, bytes]:
    """The fuzz run's input #75 (seed 1234, 200 inputs): (original, damaged)."""
    from tests.fuzz.corpus import donors, seeds
    from tests.fuzz.harness import SEED_LIMIT
    from tests.fuzz.mutate import mutate

    originals = [s[:SEED_LIMIT] for s in seeds("h5")]
    rng = np.random.default_rng(1234)
    dons = donors()
    for i in range(76):  # the harness draws a mutation, then a chunk size, per input
        data = mutate(originals[i % len(originals)], rng, dons)
        rng.integers(1, 5000)
    return originals[75 % len(originals)], data


def _read_in_child(path: Path, timeout_s: float = 60.0) -> subprocess.CompletedProcess:
    """Read ``path`` with eventpipe.io in a fresh interpreter (a hang fails, bounded)."""
    code = ("import sys\nfrom eventpipe.io import read_events\n"
            "from eventpipe.errors import EventFormatError\n"
            "try:\n    read_events(sys.argv[1])\nexcept EventFormatError as e:\n"
            "    print(type(e).__name__ + ': ' + str(e))\n    sys.exit(3)\nprint('read')\n")
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                          text=True, timeout=timeout_s, env=env)


@pytest.mark.timeout(120)
def test_fuzz_input_75_is_a_typed_error_naming_the_file(tmp_path):
    original, damaged = _fuzz_input_75()
    # the damage: the free-space object of the heap collection now has size 0
    _, before = _heap_objects(original)
    _, after = _heap_objects(damaged)
    assert before[-1][1] == 0 and before[-1][2] > 0
    assert after[-1][0] == before[-1][0] and after[-1][1:] == (0, 0)
    path = tmp_path / "fuzz75.h5"
    path.write_bytes(damaged)
    res = _read_in_child(path)  # a libhdf5 hang would raise TimeoutExpired here
    assert res.returncode == 3, res.stdout + res.stderr
    assert res.stdout.startswith("RecordingError: ") and str(path) in res.stdout
    assert f"byte {after[-1][0]}" in res.stdout and "global heap" in res.stdout


def _recording(path: Path) -> bytes:
    with EventRecorder(path, (64, 64), chunk_events=1024) as rec:
        rec.write(random_events(3, 5000, size=(64, 64)))
    return path.read_bytes()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("damage", ["free space size 0", "object past the collection",
                                    "collection past the file"])
def test_damaged_heap_collections_are_refused_before_libhdf5(tmp_path, damage):
    path = tmp_path / "r.h5"
    data = bytearray(_recording(path))
    at, objs = _heap_objects(bytes(data))
    if damage == "free space size 0":
        off = objs[-1][0]
        data[off + 8:off + 16] = bytes(8)
        where = off
    elif damage == "object past the collection":
        off = objs[0][0]  # the first string grows past the collection's end
        data[off + 8:off + 16] = struct.pack("<Q", 1 << 20)
        where = off
    else:
        data[at + 8:at + 16] = struct.pack("<Q", len(data))
        where = at
    path.write_bytes(bytes(data))
    with pytest.raises(RecordingError, match=rf"r\.h5, byte {where}, field 'global heap'"):
        open_recording(path)


def test_an_intact_heap_passes(tmp_path):
    path = tmp_path / "r.h5"
    _recording(path)
    with open_recording(path) as rec:
        assert rec.info.events == 5000 and rec.info.time_unit == "us"
