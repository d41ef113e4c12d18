"""Labels files: the documented CSV/JSON forms, and every kind of bad file refused with
the file, line/entry and field named."""

import json

import pytest

from eventpipe.labelling.files import (
    LabelFileError,
    Segment,
    find_labels_file,
    label_at,
    labels_path_for,
    read_labels,
    write_labels,
)


def write(tmp_path, text, name="take.labels.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_csv_as_documented(tmp_path):
    p = write(tmp_path, "start_s,end_s,label\n# a comment\n\n3.0,6.2,clap\n0.5,3.0,wave\n")
    assert read_labels(p) == [Segment(0.5, 3.0, "wave"), Segment(3.0, 6.2, "clap")]  # sorted


def test_json_both_forms(tmp_path):
    segs = [{"start_s": 0, "end_s": 1.5, "label": "a"}, {"start_s": 2, "end_s": 3, "label": "b"}]
    want = [Segment(0, 1.5, "a"), Segment(2, 3, "b")]
    assert read_labels(write(tmp_path, json.dumps(segs), "x.labels.json")) == want
    assert read_labels(write(tmp_path, json.dumps({"segments": segs}), "y.labels.json")) == want


def test_round_trip_to_the_microsecond(tmp_path):
    segs = [Segment(0.0, 1.000001, "a"), Segment(1.000001, 123.456789, "b")]
    for name in ("r.labels.csv", "r.labels.json"):
        p = write_labels(tmp_path / name, segs)
        assert read_labels(p) == segs
    assert (tmp_path / "r.labels.csv").read_text() == \
        "start_s,end_s,label\n0,1.000001,a\n1.000001,123.456789,b\n"


@pytest.mark.parametrize("text, where, words", [
    ("", "", "empty: expected the header"),
    ("start,end,label\n0,1,a\n", "line 1", "expected the header"),
    ("start_s,end_s,label\n0,1\n", "line 2", "expected 3 fields"),
    ("start_s,end_s,label\n0,1,a\nzero,2,b\n", "line 3", "start_s: expected seconds"),
    ("start_s,end_s,label\n0,nan,a\n", "line 2", "end_s: expected a finite number"),
    ("start_s,end_s,label\n-1,2,a\n", "line 2", "start_s: -1 s is before the recording's start"),
    ("start_s,end_s,label\n2,2,a\n", "line 2", "end_s 2 is not after start_s 2"),
    ("start_s,end_s,label\n3,2,a\n", "line 2", "end_s 2 is not after start_s 3"),
    ("start_s,end_s,label\n0,1, \n", "line 2", "label: expected a non-empty name"),
    ("start_s,end_s,label\n0,2,a\n1,3,b\n", "line 3", "overlaps line 2 (0-2 s, a)"),
    ("start_s,end_s,label\n0,2,a\n1.5,1.8,b\n", "line 3", "overlaps line 2"),
])
def test_bad_csv_names_file_line_and_field(tmp_path, text, where, words):
    p = write(tmp_path, text)
    with pytest.raises(LabelFileError) as e:
        read_labels(p)
    msg = str(e.value)
    assert msg.startswith(f"{p}: {where}" if where else f"{p}: ")
    assert words in msg


def test_touching_segments_are_fine_and_range_is_checked(tmp_path):
    p = write(tmp_path, "start_s,end_s,label\n0,2,a\n2,4,b\n")
    assert len(read_labels(p, duration_s=4.0)) == 2
    with pytest.raises(LabelFileError, match=r"line 3: end_s: 4 s is past the recording's end "
                                             r"\(3\.500 s after its first event\)"):
        read_labels(p, duration_s=3.5)
    with pytest.raises(LabelFileError, match=r"line 2: label: 'a' is not one of the classes"):
        read_labels(p, classes=["b", "c"])


@pytest.mark.parametrize("doc, where, words", [
    ("[1, 2", "line 1", "not JSON"),
    ('{"segs": []}', "", "expected a list of segments or an object with 'segments'"),
    ('[{"start_s": 0, "end_s": 1}]', "segment 0", "missing label"),
    ('[{"start_s": 0, "end_s": 1, "label": "a", "x": 1}]', "segment 0", "unknown key(s) ['x']"),
    ('[{"start_s": 0, "end_s": 1, "label": "a"}, {"start_s": true, "end_s": 1, "label": "a"}]',
     "segment 1", "start_s: expected seconds"),
    ('[{"start_s": 0, "end_s": 1, "label": 5}]', "segment 0", "label: expected a non-empty name"),
    ("[" * 100_000 + "]" * 100_000, "", "not JSON: nested too deep"),   # RecursionError
])
def test_bad_json_names_entry_and_field(tmp_path, doc, where, words):
    p = write(tmp_path, doc, "t.labels.json")
    with pytest.raises(LabelFileError) as e:
        read_labels(p)
    assert str(e.value).startswith(f"{p}: {where}") and words in str(e.value)


def test_missing_file_and_not_utf8(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_labels(tmp_path / "none.labels.csv")
    p = tmp_path / "bin.labels.csv"
    p.write_bytes(b"start_s,end_s,label\n0,1,\xff\n")
    with pytest.raises(LabelFileError, match="byte 24: not UTF-8"):
        read_labels(p)


def test_labels_file_next_to_the_recording(tmp_path):
    rec = tmp_path / "take1.h5"
    assert labels_path_for(rec) == tmp_path / "take1.labels.csv"
    assert find_labels_file(rec) is None
    write(tmp_path, "[]", "take1.labels.json")
    assert find_labels_file(rec) == tmp_path / "take1.labels.json"
    write(tmp_path, "start_s,end_s,label\n", "take1.labels.csv")
    with pytest.raises(LabelFileError, match="labels the same recording"):
        find_labels_file(rec)


def test_label_at_boundaries():
    segs = [Segment(0.5, 1.0, "a"), Segment(1.0, 2.0, "b"), Segment(3.0, 4.0, "c")]
    got = [label_at(segs, t) for t in (0.0, 0.5, 0.999, 1.0, 1.999, 2.0, 2.5, 3.0, 4.0)]
    assert got == [None, "a", "a", "b", "b", None, None, "c", None]


def test_csv_from_a_spreadsheet(tmp_path):
    """Excel and LibreOffice save 'CSV UTF-8' with a byte-order mark and CRLF line ends:
    read as the same segments (the mark made the header 'wrong')."""
    p = tmp_path / "x.labels.csv"
    p.write_bytes("start_s,end_s,label\r\n0.5,3,wave\r\n3,6.2,clap\r\n".encode("utf-8-sig"))
    assert read_labels(p) == [Segment(0.5, 3.0, "wave"), Segment(3.0, 6.2, "clap")]
    j = tmp_path / "x.labels.json"
    j.write_bytes(b"\xef\xbb\xbf" + b'[{"start_s": 0, "end_s": 1, "label": "a"}]')
    assert read_labels(j) == [Segment(0.0, 1.0, "a")]
