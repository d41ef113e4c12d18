"""Labels files: which action happens when in a recording.

A recording ``take1.h5`` has its labels in ``take1.labels.csv`` (or ``take1.labels.json``)
next to it.  A segment is ``start_s, end_s, label``: seconds after the recording's first
event (as ``eventpipe run --start/--end``), ``start_s < end_s``, inside the recording;
segments never overlap (they may touch); time outside every segment is unlabelled.

CSV::

    start_s,end_s,label
    0.5,3.0,wave
    3.0,6.2,clap

(the header is required; blank lines and lines starting with ``#`` are skipped).
JSON: a list of ``{"start_s": .., "end_s": .., "label": ".."}`` objects, or an object with
such a list under ``"segments"``.

Every problem is a :class:`LabelFileError` naming the file, the line (CSV) or entry (JSON)
and the field.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence

from eventpipe.errors import DataError

FIELDS = ("start_s", "end_s", "label")
SUFFIXES = (".labels.csv", ".labels.json")
MAX_LABEL_CHARS = 64


class LabelFileError(DataError):
    """A labels file that cannot be used: names the file, the line/entry and the field."""

    def __init__(self, path, where: str, message: str):
        self.path = os.fspath(path)
        self.where = where
        super().__init__(f"{self.path}{': ' + where if where else ''}: {message}")


@dataclass(frozen=True, order=True)
class Segment:
    start_s: float
    end_s: float
    label: str

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


def labels_path_for(recording, suffix: str = ".labels.csv") -> Path:
    """``take1.h5`` -> ``take1.labels.csv`` (the recording's last suffix replaced)."""
    p = Path(recording)
    return p.with_name(p.stem + suffix)


def find_labels_file(recording) -> Optional[Path]:
    """The labels file of ``recording`` (CSV first, then JSON), or None.  Both present is an
    error: one of them would be silently ignored."""
    found = [labels_path_for(recording, s) for s in SUFFIXES]
    found = [p for p in found if p.is_file()]
    if len(found) > 1:
        raise LabelFileError(found[0], "", f"{found[1].name} labels the same recording; "
                             "keep one labels file per recording")
    return found[0] if found else None


def _number(path, where: str, field: str, value) -> float:
    if isinstance(value, bool) or value is None or value == "":
        raise LabelFileError(path, where, f"{field}: expected seconds (a number), got "
                             f"{value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise LabelFileError(path, where, f"{field}: expected seconds (a number), got "
                             f"{value!r}") from None
    if not math.isfinite(v):
        raise LabelFileError(path, where, f"{field}: expected a finite number, got {value!r}")
    if v < 0:
        raise LabelFileError(path, where, f"{field}: {v:g} s is before the recording's start "
                             "(times are seconds after its first event)")
    return v


def _label(path, where: str, value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise LabelFileError(path, where, f"label: expected a non-empty name, got {value!r}")
    name = value.strip()
    if len(name) > MAX_LABEL_CHARS or any(c in name for c in ",\n\r\t"):
        raise LabelFileError(path, where, f"label: {name[:40]!r} must be at most "
                             f"{MAX_LABEL_CHARS} characters without commas, tabs or newlines")
    return name


def _rows_csv(path, text: str):
    lines = text.splitlines()
    header_seen = False
    for n, line in enumerate(lines, 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        cells = [c.strip() for c in next(csv.reader(io.StringIO(s)))]
        if not header_seen:
            if [c.lower() for c in cells] != list(FIELDS):
                raise LabelFileError(path, f"line {n}", f"expected the header "
                                     f"'{','.join(FIELDS)}', got {s[:60]!r}")
            header_seen = True
            continue
        if len(cells) != 3:
            raise LabelFileError(path, f"line {n}", f"expected 3 fields ({','.join(FIELDS)}), "
                                 f"got {len(cells)}: {s[:60]!r}")
        yield f"line {n}", dict(zip(FIELDS, cells))
    if not header_seen:
        raise LabelFileError(path, "", f"empty: expected the header '{','.join(FIELDS)}'")


def _rows_json(path, text: str):
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise LabelFileError(path, f"line {e.lineno}", f"not JSON: {e.msg}") from None
    except RecursionError:
        raise LabelFileError(path, "", "not JSON: nested too deep") from None
    if isinstance(data, dict):
        extra = set(data) - {"segments", "classes"}
        if "segments" not in data or extra:
            raise LabelFileError(path, "", "expected a list of segments or an object with "
                                 f"'segments' (unknown keys: {sorted(extra)})")
        data = data["segments"]
    if not isinstance(data, list):
        raise LabelFileError(path, "", f"expected a list of segments, got {type(data).__name__}")
    for i, row in enumerate(data):
        where = f"segment {i}"
        if not isinstance(row, dict):
            raise LabelFileError(path, where, f"expected an object with {', '.join(FIELDS)}")
        missing = [f for f in FIELDS if f not in row]
        unknown = sorted(set(row) - set(FIELDS))
        if missing or unknown:
            raise LabelFileError(path, where, (f"missing {', '.join(missing)}" if missing else "")
                                 + ("; " if missing and unknown else "")
                                 + (f"unknown key(s) {unknown}" if unknown else ""))
        yield where, row


def parse_segments(path, text: str, *, kind: str = "csv", duration_s: Optional[float] = None,
                   classes: Optional[Sequence[str]] = None) -> list[Segment]:
    """Segments from the text of a labels file, checked: numbers, ``start_s < end_s``,
    inside ``[0, duration_s]`` (when given), labels in ``classes`` (when given), no
    overlaps.  Returned sorted by start."""
    rows = _rows_json(path, text) if kind == "json" else _rows_csv(path, text)
    segs: list[tuple[Segment, str]] = []
    for where, row in rows:
        a = _number(path, where, "start_s", row["start_s"])
        b = _number(path, where, "end_s", row["end_s"])
        name = _label(path, where, row["label"])
        if not b > a:
            raise LabelFileError(path, where, f"end_s {b:g} is not after start_s {a:g}")
        if duration_s is not None and b > duration_s + 1e-6:
            raise LabelFileError(path, where, f"end_s: {b:g} s is past the recording's end "
                                 f"({duration_s:.3f} s after its first event)")
        if classes is not None and name not in classes:
            raise LabelFileError(path, where, f"label: {name!r} is not one of the classes "
                                 f"{list(classes)}")
        segs.append((Segment(a, b, name), where))
    segs.sort(key=lambda s: (s[0].start_s, s[0].end_s))
    for (prev, pw), (cur, cw) in zip(segs, segs[1:]):
        if cur.start_s < prev.end_s:
            raise LabelFileError(path, cw, f"{cur.start_s:g}-{cur.end_s:g} s ({cur.label}) "
                                 f"overlaps {pw} ({prev.start_s:g}-{prev.end_s:g} s, "
                                 f"{prev.label})")
    return [s for s, _ in segs]


def read_labels(path, *, duration_s: Optional[float] = None,
                classes: Optional[Sequence[str]] = None) -> list[Segment]:
    """Read and check a labels file (``.csv`` or ``.json``); see :func:`parse_segments`."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(2, "no such labels file", str(p))
    try:
        text = p.read_text(encoding="utf-8-sig")  # a spreadsheet's byte-order mark is no text
    except UnicodeDecodeError as e:
        raise LabelFileError(p, f"byte {e.start}", "not UTF-8 text") from None
    kind = "json" if p.suffix.lower() == ".json" else "csv"
    return parse_segments(p, text, kind=kind, duration_s=duration_s, classes=classes)


def _seconds(v: float) -> str:
    """Seconds to the microsecond, without trailing zeros (``2.5``, ``3``, ``1.000001``)."""
    return f"{v:.6f}".rstrip("0").rstrip(".")


def format_segments(segments: Iterable[Segment], kind: str = "csv") -> str:
    segs = sorted(segments)
    if kind == "json":
        return json.dumps([dict(start_s=s.start_s, end_s=s.end_s, label=s.label) for s in segs],
                          indent=1) + "\n"
    out = [",".join(FIELDS)]
    out += [f"{_seconds(s.start_s)},{_seconds(s.end_s)},{s.label}" for s in segs]
    return "\n".join(out) + "\n"


def write_labels(path, segments: Iterable[Segment]) -> Path:
    """Write a labels file (JSON for a ``.json`` suffix, else CSV), atomically; times to
    the microsecond."""
    p = Path(path)
    kind = "json" if p.suffix.lower() == ".json" else "csv"
    segs = [Segment(round(s.start_s, 6), round(s.end_s, 6), s.label) for s in segments]
    text = format_segments(segs, kind)
    parse_segments(p, text, kind=kind)  # never write what we would refuse to read
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, p)
    return p


def label_at(segments: Sequence[Segment], t_s: float) -> Optional[str]:
    """The label of the segment holding ``t_s`` (``start_s <= t_s < end_s``), else None."""
    import bisect

    starts = [s.start_s for s in segments]
    i = bisect.bisect_right(starts, t_s) - 1
    if i >= 0 and t_s < segments[i].end_s:
        return segments[i].label
    return None
