"""Bad input and bad disks: typed errors naming the file and the problem; data kept."""

from __future__ import annotations

import errno
import gc
import io
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

from eventpipe.errors import EventFormatError
from eventpipe.io import detect_format, read_events
from recorders import (
    EventRecorder, RecorderWriteError, RecordingError, SchemaVersionError, SliceError,
    open_recording,
)
from recorders.layout import compression_args
from tests.recorders.conftest import random_events


def make(path, n=10_000, **kw):
    ev = random_events(11, n)
    with EventRecorder(path, (640, 480), **kw) as rec:
        rec.write(ev)
    return ev


def test_foreign_hdf5_file_is_named_and_refused(tmp_path):
    path = tmp_path / "foreign.h5"
    with h5py.File(path, "w") as f:
        f["data"] = np.arange(10)
    with pytest.raises(RecordingError, match=r"foreign\.h5.*not an eventpipe recording"):
        open_recording(path)
    assert detect_format(path).name == "h5"  # sniffed as HDF5 by content ...
    with pytest.raises(EventFormatError, match="not an eventpipe recording"):
        read_events(path)  # ... and refused clearly through eventpipe.io too


def test_hdf5_with_a_user_block_is_sniffed(tmp_path):
    path = tmp_path / "ub.bin"  # no telling extension: content decides
    with h5py.File(path, "w", userblock_size=1024) as f:
        f["x"] = 1
    head = path.read_bytes()[:2048]
    assert head[:8] != b"\x89HDF\r\n\x1a\n" and head[1024:1032] == b"\x89HDF\r\n\x1a\n"
    assert detect_format(path).name == "h5"


def test_not_hdf5_at_all(tmp_path):
    path = tmp_path / "text.h5"
    path.write_bytes(b"hello, not a recording\n" * 10)
    with pytest.raises(RecordingError, match=r"text\.h5.*not an HDF5 file"):
        open_recording(path)


@pytest.mark.timeout(60)  # HDF5 itself hangs on some cut-off files: we must check first
@pytest.mark.parametrize("keep", [0.05, 0.5, 0.9])
def test_truncated_recording_is_a_typed_error(tmp_path, keep):
    src = tmp_path / "r.h5"
    make(src, 200_000, chunk_events=8192)
    cut = tmp_path / "cut.h5"
    data = src.read_bytes()
    cut.write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(RecordingError, match=rf"cut\.h5, byte {int(len(data) * keep)}, field "
                                             rf"'superblock': truncated: .* says {len(data):,}"):
        open_recording(cut)
    before = cut.read_bytes()
    with pytest.raises(EventFormatError, match="truncated"):
        read_events(cut)
    assert cut.read_bytes() == before  # nothing written over


@pytest.mark.timeout(60)
@pytest.mark.parametrize("keep", [0.3, 0.8])
def test_truncated_unclosed_recording_is_a_typed_error(tmp_path, keep):
    """A file whose writer never closed it (its superblock keeps the creation size), cut."""
    src = tmp_path / "r.h5"
    rec = EventRecorder(src, (640, 480), chunk_events=8192, flush_every_us=None)
    rec.write(random_events(16, 200_000))
    rec.flush()
    data = src.read_bytes()
    rec.close()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(RecordingError, match=r"cut\.h5"):
        with open_recording(cut) as r:
            r.events()


def test_newer_schema_version_is_refused(tmp_path):
    path = tmp_path / "r.h5"
    make(path)
    with h5py.File(path, "r+") as f:
        f.attrs["schema_version"] = 99
    with pytest.raises(SchemaVersionError, match=r"r\.h5.*schema version 99.*up to version 1"):
        open_recording(path)


def test_slice_outside_the_recording(tmp_path):
    path = tmp_path / "r.h5"
    ev = make(path)
    t_last = int(ev["t"][-1])
    with open_recording(path) as rec:
        with pytest.raises(SliceError, match=rf"r\.h5.*outside the recording.*{t_last}\]"):
            rec.events(t_last + 1, t_last + 100)
        with pytest.raises(SliceError, match="outside"):
            rec.events(-100, int(ev["t"][0]))
        with pytest.raises(SliceError, match="empty slice"):
            rec.events(500, 500)
        assert len(rec.events(t_last, t_last + 100)) >= 1


def test_missing_hdf5plugin_gives_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "hdf5plugin", None)  # import now raises ImportError
    for spec in ("blosc", "zstd:3"):
        with pytest.raises(ImportError, match=r"hdf5plugin.*pip install 'eventpipe\[hdf5\]'"):
            compression_args(spec)
    with pytest.raises(ImportError, match="hdf5plugin"):
        EventRecorder(tmp_path / "r.h5", (8, 8), compression="blosc")
    assert not (tmp_path / "r.h5").exists()


def test_reading_a_blosc_file_without_the_plugin(tmp_path):
    """A fresh interpreter where hdf5plugin cannot be imported: the read error says why."""
    pytest.importorskip("hdf5plugin")  # to write the file
    path = tmp_path / "b.h5"
    make(path, compression="blosc")
    code = ("import sys; sys.modules['hdf5plugin'] = None\n"
            "from recorders import open_recording, RecordingError\n"
            f"r = open_recording({str(path)!r})\n"
            "try:\n    r.events()\nexcept RecordingError as e:\n    print('ERR', e)\n")
    env = dict(os.environ, PYTHONPATH=str(os.getcwd()), HDF5_PLUGIN_PATH="/nonexistent")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=60)
    assert "ERR" in out.stdout, out.stderr
    assert "b.h5" in out.stdout and "blosc" in out.stdout and "hdf5plugin" in out.stdout


def test_unknown_compression():
    with pytest.raises(ValueError, match="unknown compression 'snappy'.*lzf"):
        compression_args("snappy")
    with pytest.raises(ValueError, match="gzip level"):
        compression_args("gzip:12")


def _fail_writes_after(monkeypatch, n_ok: int):
    """Writes through h5py (datasets) and our direct chunk writes fail after ``n_ok``."""
    from recorders.columns import ColumnWriter

    real, real_chunk = h5py.Dataset.__setitem__, ColumnWriter._put_chunk
    calls = {"n": 0}

    def count():
        calls["n"] += 1
        if calls["n"] > n_ok:
            raise OSError(errno.ENOSPC, "No space left on device")

    def setitem(self, key, value):
        count()
        return real(self, key, value)

    def put_chunk(dsid, offset, data):
        count()
        return real_chunk(dsid, offset, data)

    monkeypatch.setattr(h5py.Dataset, "__setitem__", setitem)
    monkeypatch.setattr(ColumnWriter, "_put_chunk", staticmethod(put_chunk))


def test_disk_full_simulated_keeps_flushed_events(tmp_path, monkeypatch):
    path = tmp_path / "r.h5"
    ev = random_events(12, 50_000)
    rec = EventRecorder(path, (640, 480), chunk_events=1024, flush_every_us=None)
    rec.write(ev[:20_000])
    assert rec.flush() == 20_000
    _fail_writes_after(monkeypatch, 3)
    with pytest.raises(RecorderWriteError, match=r"r\.h5: disk full.*20,000 events flushed") as ei:
        rec.write(ev[20_000:])
    assert ei.value.errno == errno.ENOSPC and ei.value.committed == 20_000
    with pytest.raises(RecorderWriteError):  # refuses to go on
        rec.write(ev[:10])
    monkeypatch.undo()
    rec.close()
    with open_recording(path) as r:
        np.testing.assert_array_equal(r.events(), ev[:20_000])
        assert not r.complete


def test_disk_full_on_a_real_tiny_tmpfs(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                         capture_output=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.decode().strip()}")
    try:
        path = mnt / "r.h5"
        ev = random_events(13, 400_000)  # 5.2 MB raw: cannot fit in 1 MB
        rec = EventRecorder(path, (640, 480), compression="none", chunk_events=4096,
                            flush_every_us=None)
        committed = 0
        with pytest.raises(RecorderWriteError, match="r.h5: (disk full|write failed)"):
            for i in range(0, len(ev), 5000):
                rec.write(ev[i:i + 5000])
                committed = rec.flush()
        rec.close()  # closes cleanly although the disk is full
        assert committed > 0
        gc.collect()  # no h5py handle is left to fail (or crash) when collected
        with open_recording(path) as r:
            got = r.events()
        assert len(got) >= committed
        np.testing.assert_array_equal(got, ev[:len(got)])
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_lost_directory_is_a_clear_error(tmp_path):
    d = tmp_path / "gone"
    d.mkdir()
    rec = EventRecorder(d / "r.h5", (640, 480), flush_every_us=None)
    rec.write(random_events(14, 1000))
    rec.flush()
    shutil.rmtree(d)
    rec.write(random_events(15, 1000, t0=10_000))
    with pytest.raises(RecorderWriteError, match=r"r\.h5: write failed: .*removed.*1,000 events"):
        rec.flush()
    rec.close()


def test_missing_directory_at_start(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        EventRecorder(tmp_path / "nope" / "r.h5", (8, 8))


@pytest.mark.parametrize("remove, name", [("labels", "labels"), ("status", "status"),
                                          ("events/x", "events/x"),  # was 'x': now its path
                                          ("attr events compression", "attribute compression")])
def test_a_missing_part_is_named_once_not_as_h5py_text(tmp_path, remove, name):
    """A recording missing a group, dataset or attribute names it (before: the field and the
    message were h5py's whole sentence, "field \\"Unable to synchronously open object (object
    'labels' doesn't exist)\\": recording is missing \\"Unable to ...\\"")."""
    path = tmp_path / "part.h5"
    make(path, n=100)
    with h5py.File(path, "a") as f:
        if remove.startswith("attr "):
            _, group, attr = remove.split()
            del f[group].attrs[attr]
        else:
            del f[remove]
    with pytest.raises(RecordingError) as info:
        open_recording(path)
    assert str(info.value) == (f"{path}, field {name!r}: recording is missing {name!r} "
                               "(damaged or written by something else)")
    assert info.value.field == name and "Unable to" not in str(info.value)


@pytest.mark.parametrize("damage, said", [
    ("soft", "'labels/{c}' is a soft link to '/labels/nowhere', not a dataset: a recording holds "
             "its own data (edited or damaged)"),
    ("external", "'labels/{c}' is an external link to '/x' in '{d}/absent.h5', not a dataset: a "
                 "recording holds its own data (edited or damaged)"),
    ("group", "'labels/{c}' is a Group, not a dataset (damaged)"),
    ("delete", "recording is missing 'labels/{c}' (damaged or written by something else)"),
])
@pytest.mark.parametrize("column", ["topk_label", "label", "score"])
def test_a_damaged_label_column_is_named(tmp_path, damage, said, column):
    """A label column that is a broken link (h5py's ``Group.get`` gives None for one), another
    kind of object or absent is named, and ``eventpipe info`` exits 3 saying so.  Before:
    "damaged recording: 'NoneType' object has no attribute 'shape'" (or 'dtype'); an absent
    ``score`` opened and failed later, in ``labels()``."""
    from eventpipe.cli import main

    path = tmp_path / "lab.h5"
    with EventRecorder(path, (640, 480)) as rec:
        rec.write(random_events(3, 100))
    with h5py.File(path, "a") as f:
        del f["labels"][column]
        if damage == "soft":
            f["labels"][column] = h5py.SoftLink("/labels/nowhere")
        elif damage == "external":
            f["labels"][column] = h5py.ExternalLink(str(tmp_path / "absent.h5"), "/x")
        elif damage == "group":
            f["labels"].create_group(column)
    with pytest.raises(RecordingError) as info:
        open_recording(path)
    said = said.format(c=column, d=tmp_path)
    assert str(info.value) == f"{path}, field 'labels/{column}': " + said
    assert info.value.field == f"labels/{column}"
    out, err = io.StringIO(), io.StringIO()
    assert main(["info", str(path)], out=out, err=err) == 3
    assert said in err.getvalue() and "NoneType" not in err.getvalue()


@pytest.mark.parametrize("link", ["soft to nothing", "soft to a dataset", "external to nothing",
                                  "external to a dataset"])
@pytest.mark.parametrize("member", ["events/x", "events/t", "events/tail_t", "events/index_t",
                                    "events", "status"])
def test_a_link_in_a_recording_is_named_with_its_target(tmp_path, link, member):
    """A soft or external link where a recording holds its events (a column, a tail, the index,
    the group itself) or its status: one line naming the link, its target and the file, exit 3 -
    whether or not the target exists.  Before: 'damaged recording: Unable to synchronously open
    object (component not found)' for a broken link, and a link to a dataset was read as the
    recording's own (an external link read another file's events)."""
    from eventpipe.cli import main

    path, other = tmp_path / "rec.h5", tmp_path / "other.h5"
    with EventRecorder(path, (640, 480)) as rec:
        rec.write(random_events(3, 100))
    with h5py.File(other, "w") as f:
        f["x"] = np.arange(300, dtype=np.uint16)
    parent, _, name = member.rpartition("/")
    with h5py.File(path, "a") as f:
        group = f[parent] if parent else f
        assert name in group  # the recorder wrote it
        group.move(name, name + "_moved")
        target = {"soft to nothing": "/nowhere", "soft to a dataset": f"/{member}_moved",
                  "external to nothing": "/x", "external to a dataset": "/x"}[link]
        if link.startswith("soft"):
            group[name] = h5py.SoftLink(target)
            said = f"a soft link to {target!r}"
        else:
            where = other if link.endswith("dataset") else tmp_path / "absent.h5"
            group[name] = h5py.ExternalLink(str(where), target)
            said = f"an external link to {target!r} in {str(where)!r}"
    what = "group" if member == "events" else "dataset"
    line = (f"{path}, field {member!r}: {member!r} is {said}, not a {what}: a recording holds its "
            "own data (edited or damaged)")
    with pytest.raises(RecordingError) as info:
        open_recording(path)
    assert str(info.value) == line and info.value.field == member
    out, err = io.StringIO(), io.StringIO()
    assert main(["info", str(path)], out=out, err=err) == 3
    assert err.getvalue() == f"eventpipe: error: {line}\n"


def test_a_damaged_object_header_is_damage_not_a_missing_field():
    """h5py raises KeyError for an object whose header fails its checksum too: that is
    damage, said as such, not 'recording is missing <h5py's sentence>'."""
    from recorders.reader import _missing_name

    damaged = KeyError("Unable to synchronously open object (incorrect metadata checksum "
                       "after all read attempts)")
    assert _missing_name(damaged) is None
    assert _missing_name(KeyError("Unable to synchronously open object (object 'labels' "
                                  "doesn't exist)")) == "labels"


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), ValueError("bad batch")])
def test_a_with_block_that_raises_leaves_a_recording_that_is_not_complete(tmp_path, exc):
    """``with EventRecorder(...)`` left by an exception (Ctrl-C during ``convert X OUT.h5``)
    finalised the file as complete: ``info`` said ``complete True`` of a recording cut short.
    Now the events written are kept and the reason is stored in ``ended_by_error``."""
    path = tmp_path / "cut.h5"
    ev = random_events(3, 1000)
    with pytest.raises(type(exc)):
        with EventRecorder(path, (640, 480)) as rec:
            rec.write(ev)
            raise exc
    with open_recording(path) as r:
        assert not r.info.complete
        want = f"stopped by {type(exc).__name__}" + (f": {exc}" if str(exc) else "")
        assert r.info.ended_by_error == want
        np.testing.assert_array_equal(r.events(), ev)
    with EventRecorder(tmp_path / "ok.h5", (640, 480)) as rec:
        rec.write(ev)
    with open_recording(tmp_path / "ok.h5") as r:
        assert r.info.complete and r.info.ended_by_error == ""
