"""Counts and sizes a recording states never size an allocation on their own.

``/status`` claims how many events and labels there are and the label table's attributes
claim its ``label_bytes`` and ``topk``; HDF5 lets a dataset's extent grow to any length
without storing anything.  A file whose claims exceed what it stores (a damaged or crafted
file: here 10**12 events or 10**11 labels in a 2 MB file) is a ``RecordingError`` naming
the file and the field, found before any allocation, in a child process whose address
space is limited to 1 GiB more than it needs to start: never ``MemoryError`` (exit 1,
"out of memory") or a numpy message without the file.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from recorders import EventRecorder, RecordingError, open_recording
from tests.recorders.conftest import label_msg, random_events


def _recording(path, n=50_000, labels=600):
    ev = random_events(3, n)
    with EventRecorder(path, (640, 480), chunk_events=4096) as rec:
        rec.write(ev)
        rec.write_labels([label_msg(i) for i in range(labels)])
    return ev


def _claim(path, *, events=None, labels=None, attrs=None):
    with h5py.File(path, "r+") as f:
        st = f["status"][()]
        if events is not None:
            for c in "xytp":
                f["events"][c].resize((events,))
            st[1] = events
        if labels is not None:
            for ds in f["labels"].values():
                ds.resize((labels,) + ds.shape[1:])
            st[2] = labels
        f["status"][...] = st
        for k, v in (attrs or {}).items():
            f["labels"].attrs[k] = v


def _in_small_address_space(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` after the imports, with RLIMIT_AS at what the process uses + 1 GiB."""
    prog = textwrap.dedent("""
        import resource
        import numpy, h5py, recorders, eventpipe.io, eventpipe.cli
        from recorders import open_recording, RecordingError
        with open("/proc/self/status") as f:
            vm = next(int(l.split()[1]) for l in f if l.startswith("VmSize:")) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (vm + (1 << 30), resource.RLIM_INFINITY))
    """) + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True,
                          timeout=120)


def test_more_events_than_the_columns_store(tmp_path):
    path = tmp_path / "claim.h5"
    _recording(path)
    _claim(path, events=10**12)
    with open_recording(path) as rec:
        with pytest.raises(RecordingError, match=r"claim\.h5.*1,000,000,000,000 events.*"
                                                 r"store at most 53,248") as ei:
            rec.events()
    assert ei.value.field == "status"
    r = _in_small_address_space(f"""
        from eventpipe.cli import main
        import sys
        sys.exit(main(["convert", {str(path)!r}, {str(tmp_path / 'out.raw')!r}]))
    """)
    assert r.returncode == 3, r.stderr
    assert "claim.h5" in r.stderr and "store at most" in r.stderr and "memory" not in r.stderr


def test_more_labels_than_the_table_stores(tmp_path):
    path = tmp_path / "claimlab.h5"
    _recording(path)
    _claim(path, labels=10**11)
    with open_recording(path) as rec:
        for read in (rec.labels, lambda: rec.info):
            with pytest.raises(RecordingError, match=r"claimlab\.h5.*100,000,000,000 labels"
                                                     r".*store at most 768"):
                read()
    for cmd in (["info", str(path)], ["replay-labels", str(path), "--publish",
                                      "tcp://127.0.0.1:0", "--wait-subscribers", "0",
                                      "--max-speed"]):
        r = _in_small_address_space(f"""
            from eventpipe.cli import main
            import sys
            sys.exit(main({cmd!r}))
        """)
        assert r.returncode == 3, (cmd, r.stderr)
        assert "claimlab.h5" in r.stderr and "labels" in r.stderr, r.stderr
        assert "memory" not in r.stderr


@pytest.mark.parametrize("attr, value", [("topk", 10**9), ("label_bytes", 2**40),
                                         ("topk", 2), ("label_bytes", 16)])
def test_label_attributes_that_do_not_match_the_table(tmp_path, attr, value):
    path = tmp_path / "attrs.h5"
    _recording(path)
    _claim(path, attrs={attr: value})
    with pytest.raises(RecordingError, match=rf"attrs\.h5.*{attr} {value}.*the label table"):
        with open_recording(path) as rec:
            rec.labels()


def test_honest_recordings_still_read(tmp_path, monkeypatch):
    """The checks pass on what the writer makes: closed, open (tails) and empty (every
    read checked, not only those of more than ``CHECKED_READ`` events)."""
    import recorders.reader

    monkeypatch.setattr(recorders.reader, "CHECKED_READ", 0)
    path = tmp_path / "ok.h5"
    ev = _recording(path, n=50_001, labels=257)
    with open_recording(path) as rec:
        np.testing.assert_array_equal(rec.events(), ev)
        assert len(rec.labels()) == 257 and rec.info.streams == [0]
    empty = tmp_path / "empty.h5"
    with EventRecorder(empty, (640, 480)):
        pass
    with open_recording(empty) as rec:
        assert len(rec.events()) == 0 and len(rec.labels()) == 0
    live = tmp_path / "live.h5"
    w = EventRecorder(live, (640, 480), chunk_events=4096)
    try:
        w.write(ev[:10_000])
        w.write_labels([label_msg(i) for i in range(300)])
        w.flush()
        with open_recording(live, follow=True) as rec:
            np.testing.assert_array_equal(rec.events(), ev[:10_000])
            assert len(rec.labels()) == 300
    finally:
        w.close()


@pytest.mark.parametrize("column", ["label", "truth", "topk_label"])
def test_label_text_that_is_not_utf8(tmp_path, column):
    """Damaged bytes in a label name (a mutated file: fuzzing found 'utf-8 codec can't
    decode', exit 1): a RecordingError naming the file, the row and the column, exit 3 in
    replay-labels before the endpoint is bound."""
    from tests.recorders.test_cli import cli

    path = tmp_path / "text.h5"
    _recording(path, labels=20)
    with h5py.File(path, "r+") as f:
        ds = f["labels"][column]
        if ds.ndim == 2:
            ds[7, 1] = b"\xe3\x81"
        else:
            ds[7] = b"\xe3\x81"
    with open_recording(path) as rec:
        with pytest.raises(RecordingError, match=rf"text\.h5.*label row 7: {column} is not "
                                                 "UTF-8") as ei:
            rec.label_messages()
    assert ei.value.field == f"labels/{column}"
    rc, out, err = cli("replay-labels", str(path), "--publish", "tcp://127.0.0.1:0",
                       "--wait-subscribers", "0", "--max-speed")
    assert rc == 3 and err.count("\n") == 1 and "label row 7" in err and out == "", err


@pytest.mark.parametrize("column, value", [("score", np.inf), ("latency_ms", -np.inf),
                                           ("topk_score", np.nan)])
def test_label_numbers_that_cannot_be_sent(tmp_path, column, value):
    """A damaged score (inf) made replay-labels fail with 'Out of range float values are not
    JSON compliant' (exit 1) after binding: a RecordingError naming the row, exit 3."""
    from tests.recorders.test_cli import cli

    path = tmp_path / "num.h5"
    _recording(path, labels=20)
    with h5py.File(path, "r+") as f:
        ds = f["labels"][column]
        if ds.ndim == 2:
            ds[4, 0] = value
        else:
            ds[4] = value
    with open_recording(path) as rec:
        with pytest.raises(RecordingError, match=rf"num\.h5.*label row 4: {column} is not a "
                                                 "finite number"):
            rec.labels()
    rc, out, err = cli("replay-labels", str(path), "--publish", "tcp://127.0.0.1:0",
                       "--wait-subscribers", "0", "--max-speed")
    assert rc == 3 and err.count("\n") == 1 and "label row 4" in err and out == "", err
