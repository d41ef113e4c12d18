"""Every chunk of a recording carries HDF5's fletcher32 checksum; a changed byte is an error.

The recorder writes the event columns' chunks past HDF5's pipeline (``write_direct_chunk``),
so it computes the checksum itself (``recorders/fletcher.py``); HDF5 is the independent
truth: its own checksum of the same bytes, and its own check when plain h5py reads a file.
"""

import h5py
import numpy as np
import pytest

from recorders import EventRecorder, RecordingError, open_recording
from recorders.fletcher import fletcher32, intact
from recorders.layout import compression_args, load_hdf5plugin

from .conftest import label_msg, random_events


def _compressions():
    try:
        load_hdf5plugin()  # blosc and zstd need it
    except ImportError:
        return ["lzf", "none", "gzip"]
    return ["lzf", "none", "gzip", "zstd", "blosc"]


@pytest.mark.parametrize("n", [1, 2, 3, 719, 720, 721, 722, 1441, 5000, 100_001])
def test_our_fletcher32_is_hdf5s(tmp_path, n):
    """HDF5 computes the checksum of a chunk (odd sizes, the 360-word blocks' edges); ours of
    the same bytes is the same, and HDF5's stored chunk passes our check."""
    data = np.random.default_rng(n).integers(0, 256, n).astype(np.uint8)
    with h5py.File(tmp_path / "f.h5", "w") as f:
        ds = f.create_dataset("d", data=data, chunks=(n,), fletcher32=True)
        _, stored = ds.id.read_direct_chunk((0,))
    stored = np.frombuffer(stored, np.uint8)
    assert len(stored) == n + 4
    assert int.from_bytes(stored[-4:].tobytes(), "little") == fletcher32(stored[:-4], n)
    assert intact(stored, len(stored))
    flipped = stored.copy()
    flipped[n // 2] ^= 0x10
    assert not intact(flipped, len(flipped))


def _record(path, compression, n=5000, **kw):
    ev = random_events(3, n)
    with EventRecorder(path, (640, 480), chunk_events=1024, compression=compression, **kw) as rec:
        rec.write(ev)
        rec.write_labels([label_msg(i) for i in range(5)])
    return ev


@pytest.mark.parametrize("compression", _compressions())
def test_every_chunked_dataset_carries_hdf5s_checksum_and_plain_h5py_reads_it(tmp_path, compression):
    path = tmp_path / "r.h5"
    ev = _record(path, compression)
    with h5py.File(path, "r") as f:  # plain h5py: HDF5 checks every chunk it reads
        chunked = []
        f.visititems(lambda name, o: chunked.append(o) if isinstance(o, h5py.Dataset) and o.chunks else None)
        assert len(chunked) >= 4 + 2 + 5 and all(o.fletcher32 for o in chunked), \
            [o.name for o in chunked if not o.fletcher32]
        for k in "xytp":
            np.testing.assert_array_equal(f["events"][k][:], ev[k])
        assert list(f["labels/seq"][:]) == list(range(5))


def _flip_in_chunk(path, dataset, chunk_index, at):
    """Flip a bit of the stored byte ``at`` of a chunk (in the file, as a disk would)."""
    with h5py.File(path, "r") as f:
        info = f[dataset].id.get_chunk_info(chunk_index)
    assert at < info.size - 4  # the chunk's data, not its checksum
    with open(path, "r+b") as fh:
        fh.seek(info.byte_offset + at)
        b = fh.read(1)[0]
        fh.seek(info.byte_offset + at)
        fh.write(bytes([b ^ 0x04]))


@pytest.mark.parametrize("compression", ["lzf", "none", "gzip"])
def test_a_changed_byte_in_stored_events_is_an_error_naming_the_column(tmp_path, compression):
    """A bit flipped in the second chunk of ``events/t`` (byte 1: in an lzf chunk a literal,
    so the stream still decodes): reading the events is a RecordingError naming the file and
    the column, never other events; HDF5 refuses the chunk too."""
    path = tmp_path / "r.h5"
    _record(path, compression)
    _flip_in_chunk(path, "events/t", 1, 1)
    with open_recording(path) as rec:
        with pytest.raises(RecordingError) as ei:
            rec.events()
    msg = str(ei.value)
    assert "r.h5" in msg and "events/t" in msg and "checksum" in msg, msg
    with h5py.File(path, "r") as f, pytest.raises(OSError):
        f["events/t"][:]


def test_without_the_checksum_the_same_change_read_as_other_events(tmp_path, monkeypatch):
    """The control: a recording whose datasets have no checksum (as written before it came)
    still reads, and the same flipped byte silently gives other times - what the checksum
    now catches."""
    import recorders.writer as writer

    real = writer.dataset_plist
    monkeypatch.setattr(writer, "dataset_plist", lambda *a, fletcher32=False, **k: real(*a, **k))
    path = tmp_path / "old.h5"
    ev = _record(path, "lzf")
    with h5py.File(path, "r") as f:
        assert not f["events/t"].fletcher32
    _flip_in_chunk(path, "events/t", 1, 1)
    with open_recording(path) as rec:
        got = rec.events()
    assert len(got) == len(ev) and not np.array_equal(got["t"], ev["t"])
    np.testing.assert_array_equal(got["x"], ev["x"])


def test_a_changed_byte_in_the_labels_is_an_error(tmp_path):
    path = tmp_path / "r.h5"
    _record(path, "lzf")
    _flip_in_chunk(path, "labels/t_us", 0, 3)
    with open_recording(path) as rec, pytest.raises(RecordingError) as ei:
        rec.labels()
    assert "r.h5" in str(ei.value) and "labels/t_us" in str(ei.value)


def test_the_checksum_leaves_the_compression_the_file_names(tmp_path):
    """The checksum is a filter of its own after the compression: h5py and the recording still
    name the compression chosen, and ``info`` reports it."""
    path = tmp_path / "r.h5"
    _record(path, "gzip:1")
    with h5py.File(path, "r") as f:
        assert f["events/x"].compression == "gzip" and f["events/x"].fletcher32
        assert f["events"].attrs["compression"] == compression_args("gzip:1")[0]
    with open_recording(path) as rec:
        assert rec.info.compression == compression_args("gzip:1")[0]


def test_commands_on_a_damaged_recording_exit_3_naming_the_file_and_column(tmp_path):
    """``convert`` of a recording whose ``events/t`` changed on disk, and ``replay-labels`` of
    one whose labels did: exit 3 (a data error), one line naming the file and the column; no
    output file is left behind by convert."""
    import io

    from eventpipe.cli import main

    def cli(*argv):
        out, err = io.StringIO(), io.StringIO()
        return main(list(argv), out=out, err=err), err.getvalue()

    ev_path = tmp_path / "ev.h5"
    _record(ev_path, "lzf")
    _flip_in_chunk(ev_path, "events/t", 1, 1)
    dst = tmp_path / "out.npz"
    rc, err = cli("convert", str(ev_path), str(dst))
    assert rc == 3 and "ev.h5" in err and "events/t" in err and "checksum" in err, err
    assert "Traceback" not in err and not dst.exists()
    lab_path = tmp_path / "lab.h5"
    _record(lab_path, "lzf")
    _flip_in_chunk(lab_path, "labels/t_us", 0, 3)
    rc, err = cli("replay-labels", str(lab_path), "--publish", "tcp://127.0.0.1:0",
                  "--wait-subscribers", "0")
    assert rc == 3 and "lab.h5" in err and "labels/t_us" in err, err
