"""iniVation AEDAT 3.1 reader (polarity packets), DVS128 Gesture helpers.

Layout (https://docs.inivation.com/software/software-advanced-usage/file-formats/aedat-3.1.html):

- ASCII header: lines starting with ``#`` (``#!AER-DAT3.1``, ``#Format: RAW``,
  ``#Source 1: DVS128``, ``#Start-Time: ...``) up to ``#!END-HEADER\\r\\n``.
- Packets, little-endian: a 28-byte header (int16 eventType, int16
  eventSource, int32 eventSize, int32 eventTSOffset, int32 eventTSOverflow,
  int32 eventCapacity, int32 eventNumber, int32 eventValid), then
  ``eventCapacity * eventSize`` bytes, of which the first ``eventNumber``
  events are in use.
- Polarity events (type 1, 8 bytes): u32 data (bit 0 valid, bit 1 polarity
  1 = ON, y = bits 2-16, x = bits 17-31), then int32 timestamp (at
  eventTSOffset = 4); ``t = (eventTSOverflow << 31) | timestamp`` in us.
  Invalid events (valid bit 0) are skipped; packets of other types (special,
  frame, IMU...) are skipped whole.

Coordinates are kept as stored (cAER: origin top left).  Sensor size: a
``sizeX``/``dvsSizeX`` value in the header ("file"), else from the source name
(``DVS128`` -> 128x128, DAVIS chips as in :mod:`eventpipe.io.aedat2`; "table").

The body is decoded in byte blocks by a Numba state machine; a packet header
or event split by a block boundary is carried (< 28 bytes) into the next one.
"""

from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path
from typing import Iterator

import numba
import numpy as np

from eventpipe.errors import EventFormatError
from eventpipe.events import EVENT_DTYPE
from eventpipe.io.aedat2 import _read_preallocated, chip_layout
from eventpipe.io.base import EventReader

HEADER_END = b"#!END-HEADER\r\n"
POLARITY_EVENT = 1
_ERRORS = {1: ("packet header", "impossible packet header field"),
           2: ("eventSize", "polarity packet must have eventSize 8 and eventTSOffset 4"),
           3: ("x", "polarity event x outside the sensor"),
           4: ("y", "polarity event y outside the sensor"),
           5: ("timestamp", "negative polarity event timestamp"),
           6: ("eventCapacity", "truncated packet: eventCapacity * eventSize runs past the "
                                "end of the file")}


@numba.njit(cache=True, nogil=True)
def _decode(buf, state, w, h, file_end, ox, oy, ot, op):
    """Run the packet state machine over ``buf``.

    ``state`` = [mode (0 header, 1 polarity data, 2 skip), bytes left in the
    packet data, overflow, event index in packet, eventNumber].  ``file_end``
    = bytes from ``buf[0]`` to the end of the file.  Returns ``(stop, n, code,
    where)``: ``buf[stop:]`` is an incomplete item to carry, ``code`` != 0
    reports damage at ``where``."""
    n = 0
    pos = 0
    end = len(buf)
    while True:
        mode = state[0]
        if mode == 0:
            if end - pos < 28:
                return pos, n, 0, 0
            etype = np.int64(buf[pos]) | (np.int64(buf[pos + 1]) << 8)
            f = np.empty(6, np.int64)
            for k in range(6):
                b = pos + 4 + 4 * k
                v = np.int64(buf[b]) | (np.int64(buf[b + 1]) << 8) | \
                    (np.int64(buf[b + 2]) << 16) | (np.int64(buf[b + 3]) << 24)
                if v >= 0x80000000:
                    v -= 0x100000000
                f[k] = v
            size, tsoff, ovf, cap, num, valid = f[0], f[1], f[2], f[3], f[4], f[5]
            if (size <= 0 or tsoff < 0 or tsoff > size - 4 or ovf < 0 or cap < 0
                    or num < 0 or num > cap or valid < 0 or valid > num):
                return pos, n, 1, pos
            if pos + 28 + cap * size > file_end:
                return pos, n, 6, pos
            state[1] = cap * size
            if etype == 1:
                if size != 8 or tsoff != 4:
                    return pos, n, 2, pos
                state[0] = 1
                state[2] = ovf
                state[3] = 0
                state[4] = num
            else:
                state[0] = 2
            pos += 28
            if state[1] == 0:
                state[0] = 0
        elif mode == 2:
            step = min(state[1], end - pos)
            pos += step
            state[1] -= step
            if state[1] > 0:
                return pos, n, 0, 0
            state[0] = 0
        else:
            ovf = state[2]
            while state[1] > 0:
                if end - pos < 8:
                    return pos, n, 0, 0
                if state[3] < state[4]:
                    d = np.int64(buf[pos]) | (np.int64(buf[pos + 1]) << 8) | \
                        (np.int64(buf[pos + 2]) << 16) | (np.int64(buf[pos + 3]) << 24)
                    if d & 1:
                        ts = np.int64(buf[pos + 4]) | (np.int64(buf[pos + 5]) << 8) | \
                            (np.int64(buf[pos + 6]) << 16) | (np.int64(buf[pos + 7]) << 24)
                        if ts >= 0x80000000:
                            return pos, n, 5, pos
                        x = (d >> 17) & 0x7FFF
                        y = (d >> 2) & 0x7FFF
                        if w > 0 and x >= w:
                            return pos, n, 3, pos
                        if h > 0 and y >= h:
                            return pos, n, 4, pos
                        ox[n] = x
                        oy[n] = y
                        ot[n] = (ovf << 31) | ts
                        op[n] = (d >> 1) & 1
                        n += 1
                state[3] += 1
                state[1] -= 8
                pos += 8
            state[0] = 0


class Aedat3Reader(EventReader):
    """AEDAT 3.1 polarity events (e.g. DVS128 Gesture recordings)."""

    format = "aedat3"
    title = "iniVation AEDAT 3.1"
    extensions = (".aedat",)

    @staticmethod
    def sniff(head: bytes) -> bool:
        return head.startswith(b"#!AER-DAT3")

    def _parse_header(self) -> None:
        if self.file_size == 0:
            raise self.error("empty file", offset=0)
        lines: list[str] = []
        pos = 0
        with self._open() as f:
            while True:
                line = f.readline(1 << 20)
                if line == HEADER_END:
                    pos += len(line)
                    break
                if not line.startswith(b"#") or not line.endswith(b"\n"):
                    raise self.error("header not terminated by '#!END-HEADER\\r\\n'",
                                     offset=pos, field="header")
                lines.append(line.decode("latin-1").rstrip("\r\n"))
                pos += len(line)
        self.data_offset = pos
        m = re.match(r"#!AER-DAT3\.(\d+)", lines[0] if lines else "")
        if not m:
            raise self.error(f"not an AEDAT 3.x version line: {(lines or [''])[0][:40]!r}",
                             offset=0, field="version")
        ex = self.info.extras
        ex["version"] = f"3.{m.group(1)}"
        sources: dict[int, str] = {}
        for ln in lines[1:]:
            if mm := re.match(r"#Format:\s*(\S+)", ln):
                ex["format"] = mm.group(1)
                if mm.group(1).upper() != "RAW":
                    raise self.error(f"unsupported AEDAT 3 format {mm.group(1)!r} (only RAW)",
                                     offset=0, field="Format")
            elif mm := re.match(r"#Source\s+(\d+):\s*(.*)", ln):
                sources[int(mm.group(1))] = mm.group(2).strip()
            elif mm := re.match(r"#Start-Time:\s*(.*)", ln):
                ex["start_time"] = mm.group(1).strip()
        ex["sources"] = sources
        text = "\n".join(lines)
        sx = re.search(r"(?i)\b(?:dvs)?sizeX\b\D{1,20}?(\d+)", text)
        sy = re.search(r"(?i)\b(?:dvs)?sizeY\b\D{1,20}?(\d+)", text)
        if sx and sy and 0 < int(sx.group(1)) <= 65536 and 0 < int(sy.group(1)) <= 65536:
            self.info.sensor_size = (int(sx.group(1)), int(sy.group(1)))
            self.info.sensor_size_source = "file"
        else:
            for name in sources.values():
                found = chip_layout(name.split()[0]) if name else None
                if found:
                    ex["chip"] = found[0]
                    self.info.sensor_size = found[2]
                    self.info.sensor_size_source = "table"
                    break

    def _decode(self) -> Iterator[np.ndarray]:
        return self._run(None)

    def _run(self, into: np.ndarray | None) -> Iterator[np.ndarray]:
        """Decode block by block into fresh arrays (yielded) or straight into
        ``into`` (see :func:`eventpipe.io.aedat2._read_preallocated`)."""
        w, h = self.info.sensor_size or (0, 0)
        state = np.zeros(5, dtype=np.int64)
        carry = np.empty(0, np.uint8)
        base = self.data_offset
        k = 0
        with self._open() as f:
            for off, blk in self._byte_blocks(f, self.data_offset):
                if len(carry):  # keep one (read-only) array type: one Numba compile
                    buf = np.concatenate((carry, blk))
                    buf.flags.writeable = False
                else:
                    buf = blk
                base = off - len(carry)
                cap = len(buf) // 8 + 1
                out = np.empty(cap, dtype=EVENT_DTYPE) if into is None else into[k:k + cap]
                stop, n, code, where = _decode(buf, state, w, h, self.file_size - base,
                                               out["x"], out["y"], out["t"], out["p"])
                if into is not None:
                    k += n
                elif n:
                    yield out[:n]
                if code:
                    field, msg = _ERRORS[code]
                    raise self.error(msg, offset=base + where, field=field)
                carry = buf[stop:]
                base += stop
        if len(carry) or state[0] != 0:
            what = "packet header" if state[0] == 0 else "packet data"
            raise self.error(f"truncated {what} at the end of the file", offset=base,
                             field=what)
        self._count = k

    def read(self) -> np.ndarray:
        """All events, decoded into one array sized from the file length."""
        return _read_preallocated(self, (self.file_size - self.data_offset) // 8 + 1)


# -- encoder for test vectors ------------------------------------------------

def _packet(etype, size, ovf, body: bytes, number: int, valid: int, cap: int) -> bytes:
    head = np.array([(etype, 1, size, 4, ovf, cap, number, valid)],
                    dtype=[("a", "<i2"), ("b", "<i2")] + [(c, "<i4") for c in "cdefgh"])
    return head.tobytes() + body


def encode_aedat31(events: np.ndarray, source: str = "DVS128", *, packet_events: int = 4096,
                   invalid_every: int = 0, special_packets: bool = False,
                   capacity_slack: int = 0, header: list[str] | None = None) -> bytes:
    """AEDAT 3.1 bytes holding ``events`` (t >= 0) as polarity packets.

    A packet never spans a change of ``t >> 31`` (the overflow field).
    ``invalid_every=k`` inserts an invalid event after every k events;
    ``special_packets`` puts a 2-event special packet (type 0) before each
    polarity packet; ``capacity_slack`` adds unused capacity filled with 0xFF.
    """
    lines = ["#!AER-DAT3.1", "#Format: RAW", f"#Source 1: {source}",
             "#Start-Time: 2017-01-01 00:00:00 (TZ+0000)"] + list(header or [])
    out = ["".join(ln + "\r\n" for ln in lines).encode() + HEADER_END]
    t = events["t"].astype(np.int64)
    ovf = t >> 31
    cuts = np.flatnonzero(np.diff(ovf)) + 1
    starts = sorted(set(range(0, len(events), max(1, packet_events))) | set(cuts.tolist()))
    bounds = starts + [len(events)]
    for s, e in zip(bounds[:-1], bounds[1:]):
        ev = events[s:e]
        data = ((ev["x"].astype(np.uint32) << 17) | (ev["y"].astype(np.uint32) << 2)
                | (ev["p"].astype(np.uint32) << 1) | 1)
        rec = np.empty(len(ev), dtype=[("d", "<u4"), ("t", "<i4")])
        rec["d"] = data
        rec["t"] = (t[s:e] & 0x7FFFFFFF).astype(np.int32)
        if invalid_every:
            bad = np.array([(0xFFFFFFFE, 0x7FFFFFFF)], dtype=rec.dtype)
            parts = []
            for i in range(0, len(rec), invalid_every):
                parts += [rec[i:i + invalid_every], bad]
            rec = np.concatenate(parts)
        if special_packets:
            out.append(_packet(0, 8, int(ovf[s]), bytes(16), 2, 2, 2))
        body = rec.tobytes() + b"\xff" * (8 * capacity_slack)
        out.append(_packet(POLARITY_EVENT, 8, int(ovf[s]), body, len(rec), len(ev),
                           len(rec) + capacity_slack))
    return b"".join(out)


# -- DVS128 Gesture ----------------------------------------------------------

def labels_path_for(recording: str | os.PathLike) -> Path:
    """``user01_fluorescent.aedat`` -> ``user01_fluorescent_labels.csv``."""
    p = Path(recording)
    return p.with_name(p.stem + "_labels.csv")


def read_gesture_labels(path: str | os.PathLike) -> list[tuple[int, int, int]]:
    """``(label, t_start_us, t_end_us)`` rows of a DVS128 Gesture labels CSV
    (columns ``class, startTime_usec, endTime_usec``)."""
    text = Path(path).read_bytes().decode("utf-8", errors="replace")
    rows = []
    offset = 0
    for lineno, line in enumerate(io.StringIO(text, newline=None).readlines(), 1):
        here, offset = offset, offset + len(line.encode())
        cells = [c.strip() for c in next(csv.reader([line]), [])]
        if not cells or cells == [""]:
            continue
        if lineno == 1 and not cells[0].lstrip("-").isdigit():
            if [c.lower() for c in cells[:3]] != ["class", "starttime_usec", "endtime_usec"]:
                raise EventFormatError(f"unexpected labels header {cells}", path=path,
                                       offset=here, field="header")
            continue
        try:
            label, t0, t1 = (int(c) for c in cells[:3])
            if len(cells) != 3:
                raise ValueError
        except ValueError:
            raise EventFormatError(f"line {lineno}: expected 3 integers, got {cells}",
                                   path=path, offset=here, field="row") from None
        if t1 < t0:
            raise EventFormatError(f"line {lineno}: endTime {t1} < startTime {t0}", path=path,
                                   offset=here, field="endTime_usec")
        rows.append((label, t0, t1))
    return rows


def write_gesture_labels(labels, path: str | os.PathLike | None = None) -> str:
    """The CSV text for ``labels`` (written to ``path`` when given)."""
    text = "class,startTime_usec,endTime_usec\n" + "".join(
        f"{int(a)},{int(b)},{int(c)}\n" for a, b, c in labels)
    if path is not None:
        Path(path).write_text(text)
    return text


def gesture_segments(events: np.ndarray, labels) -> list[tuple[int, np.ndarray]]:
    """Slice ``events`` into ``(label, events with t_start <= t < t_end)``
    (as tonic's DVSGesture does; a boolean mask, so unsorted t works)."""
    t = events["t"]
    return [(int(lab), events[(t >= t0) & (t < t1)]) for lab, t0, t1 in labels]


def read_gesture_recording(path: str | os.PathLike, labels_path=None, **options
                           ) -> list[tuple[int, np.ndarray]]:
    """Read a DVS128 Gesture ``.aedat`` and its labels: ``[(label, events)]``."""
    from eventpipe.io import read_events
    labels = read_gesture_labels(labels_path or labels_path_for(path))
    return gesture_segments(read_events(path, format="aedat3", **options), labels)
