"""jAER AEDAT 2.0 (and 1.0) reader: DVS128 and DAVIS chips.

Layout (https://docs.inivation.com/software/software-advanced-usage/file-formats/aedat-2.0.html,
jAER ``AEFileInputStream`` and the chips' ``extractPacket``):

- ASCII header lines, each starting with ``#`` and ending in ``\\r\\n``, up to
  the first line that does not start with ``#`` (or, unlike dv/PyAedatTools,
  a "#" line holding control bytes: a body whose first byte is 0x23); the first is
  ``#!AER-DAT2.0`` (``#!AER-DAT1.0``; no version line = 1.0) and
  ``# AEChip: <java class>`` names the chip, which fixes the address layout.
- Body: big-endian (address, timestamp) pairs: AEDAT 2.0 has a 32-bit address,
  1.0 a 16-bit one (6-byte events); timestamps are 32-bit microseconds.

Address layouts:

- DVS128 (``ch.unizh.ini.jaer.chip.retina.DVS128``, ``Tmpdiff128``; 128x128):
  bit 15 = external/sync event (skipped), y = bits 8-14, x = bits 1-7,
  bit 0 = polarity type.  We follow jAER's own extractor: ``x = 127 - raw x``
  (jAER mirrors x so that the image is seen as from the lens side),
  ``ON = (bit 0 == 0)`` (jAER: ``type = 1 - (addr & 1)``, ``type 1 = On``);
  y as stored.  (PyAedatTools instead keeps raw x and reads bit 0 = 1 as ON.)
- DAVIS (``eu.seebetter.ini.chips.davis.DAVIS240C``, ``Davis346*``,
  ``Davis640``...): bit 31 = APS sample or IMU word (skipped), bit 10 =
  external/special event (skipped); else a DVS event with
  y = bits 22-30, x = bits 12-21, p = bit 11 (1 = ON).  y is kept as stored
  (origin lower left), as dv's ``LegacyAedatFile`` and jAER do.

Timestamps are read as unsigned 32-bit values; a backwards step of more than
2**31 us counts a 32-bit wrap (jAER timestamps wrap after ~71.6 min).  Small
backwards steps (DAVIS words are not strictly ordered) are kept as they are.
Option ``chip=`` forces a layout for files whose ``# AEChip:`` is missing or
unknown: ``"dvs128"``, ``"davis240"``, ``"davis346"``, ``"davis640"``,
``"davis208"`` or a jAER class name.
"""

from __future__ import annotations

import re
from typing import Iterator

import numba
import numpy as np

from eventpipe.errors import EventFormatError
from eventpipe.events import EVENT_DTYPE
from eventpipe.io.base import EventReader

# simple-name prefix (lower case) -> (layout, (W, H)); layout 0 DVS128, 1 DAVIS
CHIPS: dict[str, tuple[int, tuple[int, int]]] = {
    "dvs128": (0, (128, 128)),
    "tmpdiff128": (0, (128, 128)),
    "davis240": (1, (240, 180)),
    "sbret10": (1, (240, 180)),
    "davis346": (1, (346, 260)),
    "davis640": (1, (640, 480)),
    "davis208": (1, (208, 192)),
}
_MAX_LINE = 1 << 20
_BINARY = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_MAX_HEADER = 64 << 20


def chip_layout(name: str) -> tuple[str, int, tuple[int, int]] | None:
    """``(key, layout, (W, H))`` for a chip key or jAER class name, else None."""
    simple = name.strip().rsplit(".", 1)[-1].lower()
    for key in sorted(CHIPS, key=len, reverse=True):
        if simple.startswith(key):
            return (key, *CHIPS[key])
    return None


@numba.njit(cache=True, nogil=True)
def _decode_block(buf, nev, evsize, layout, w, h, state, ox, oy, ot, op):
    """Decode ``nev`` whole events of ``buf``.  ``state`` = [wraps, previous
    u32 timestamp or -1].  Returns ``(n_out, bad_index, code)`` with
    ``bad_index = -1`` when all were fine (code 1: x, 2: y out of range)."""
    wraps = state[0]
    prev = state[1]
    n = 0
    for i in range(nev):
        o = i * evsize
        if evsize == 8:
            a = (np.int64(buf[o]) << 24) | (np.int64(buf[o + 1]) << 16) | \
                (np.int64(buf[o + 2]) << 8) | np.int64(buf[o + 3])
            o += 4
        else:
            a = (np.int64(buf[o]) << 8) | np.int64(buf[o + 1])
            o += 2
        ts = (np.int64(buf[o]) << 24) | (np.int64(buf[o + 1]) << 16) | \
            (np.int64(buf[o + 2]) << 8) | np.int64(buf[o + 3])
        if prev >= 0 and ts < prev and prev - ts > 0x80000000:
            wraps += 1
        prev = ts
        if layout == 0:
            if a & 0x8000:
                continue
            x = 127 - ((a >> 1) & 0x7F)
            y = (a >> 8) & 0x7F
            p = 1 - (a & 1)
        else:
            if a & 0x80000400:
                continue
            x = (a >> 12) & 0x3FF
            y = (a >> 22) & 0x1FF
            p = (a >> 11) & 1
            if x >= w:
                state[0] = wraps
                state[1] = prev
                return n, i, 1
            if y >= h:
                state[0] = wraps
                state[1] = prev
                return n, i, 2
        ox[n] = x
        oy[n] = y
        ot[n] = (wraps << 32) | ts
        op[n] = p
        n += 1
    state[0] = wraps
    state[1] = prev
    return n, -1, 0


class Aedat2Reader(EventReader):
    """jAER AEDAT 2.0/1.0 recordings (DVS events only; APS/IMU/special skipped)."""

    format = "aedat2"
    title = "jAER AEDAT 2.0"
    extensions = (".aedat", ".dat")

    def __init__(self, path, *, chip: str | None = None, **kw):
        self._chip_option = chip
        super().__init__(path, **kw)

    @staticmethod
    def sniff(head: bytes) -> bool:
        if head.startswith((b"#!AER-DAT2", b"#!AER-DAT1")):
            return True
        if head.startswith(b"#") and not head.startswith(b"#!AER-DAT"):
            return re.search(rb"^#\s*AEChip:", head, re.M) is not None
        return False

    def _parse_header(self) -> None:
        lines: list[bytes] = []
        pos = 0
        with self._open() as f:
            while True:
                first = f.read(1)
                if first != b"#":
                    break
                line = first + f.readline(_MAX_LINE)
                if _BINARY.search(line):  # a body starting with 0x23 ('#'), not text
                    break
                if not line.endswith(b"\n"):
                    if len(line) > _MAX_LINE:
                        raise self.error("header line longer than 1 MiB", offset=pos,
                                         field="header")
                    raise self.error("header line not terminated (file ends inside the "
                                     "header)", offset=pos, field="header")
                lines.append(line)
                pos += len(line)
                if pos > _MAX_HEADER:
                    raise self.error("header longer than 64 MiB", offset=pos, field="header")
        if self.file_size == 0:
            raise self.error("empty file", offset=0)
        self.data_offset = pos
        text = [ln.decode("latin-1").rstrip("\r\n") for ln in lines]
        version = 1
        if text and text[0].startswith("#!AER-DAT"):
            m = re.match(r"#!AER-DAT(\d+)\.(\d+)", text[0])
            if not m or m.group(1) not in ("1", "2"):
                raise self.error(f"not an AEDAT 1.0/2.0 file: {text[0][:40]!r}", offset=0,
                                 field="version")
            version = int(m.group(1))
        self.version = version
        self.event_size = 8 if version == 2 else 6
        chip_class = None
        for ln in text:
            m = re.match(r"#\s*AEChip:\s*(\S+)", ln)
            if m:
                chip_class = m.group(1)
                break
        ex = self.info.extras
        ex["version"] = f"{version}.0"
        ex["header_lines"] = len(lines)
        if chip_class:
            ex["chip_class"] = chip_class
        for ln in text:
            m = re.match(r"#\s*(created|HardwareInterface):?\s*(.*)", ln)
            if m:
                ex["created" if m.group(1) == "created" else "hardware_interface"] = m.group(2)
        name = self._chip_option or chip_class
        if name is None and version == 1:
            name = "dvs128"  # AEDAT 1.0 predates DAVIS: 16-bit DVS128 addresses
            ex["chip_assumed"] = True
        found = chip_layout(name) if name else None
        if found is None:
            what = f"chip {name!r}" if name else "no '# AEChip:' line"
            raise self.error(f"{what}: unknown address layout; pass chip= one of "
                             f"{', '.join(CHIPS)}", offset=0, field="AEChip")
        key, layout, size = found
        if layout == 1 and version == 1:
            raise self.error(f"chip {name!r} needs 32-bit addresses (AEDAT 2.0) but the file "
                             "is AEDAT 1.0", offset=0, field="AEChip")
        ex["chip"] = key
        self.layout = layout
        self.info.sensor_size = size
        self.info.sensor_size_source = "table"

    def _decode(self) -> Iterator[np.ndarray]:
        return self._run(None)

    def _run(self, into: np.ndarray | None) -> Iterator[np.ndarray]:
        """Decode block by block: into fresh arrays (yielded), or, with
        ``into``, straight into that preallocated array (nothing yielded;
        the count is left in ``self._count``)."""
        es = self.event_size
        w, h = self.info.sensor_size
        state = np.array([0, -1], dtype=np.int64)
        k = 0
        with self._open() as f:
            for off, buf in self._byte_blocks(f, self.data_offset, align=es):
                nev = len(buf) // es
                out = np.empty(nev, dtype=EVENT_DTYPE) if into is None else into[k:k + nev]
                n, bad, code = _decode_block(buf, nev, es, self.layout, w, h, state,
                                             out["x"], out["y"], out["t"], out["p"])
                if into is not None:
                    k += n
                elif n:
                    yield out[:n]
                if bad >= 0:
                    field = "x" if code == 1 else "y"
                    raise self.error(f"DVS event {field} outside the {w}x{h} sensor",
                                     offset=off + bad * es, field=field)
                if len(buf) % es:
                    raise self.error(f"truncated event: {len(buf) % es} of {es} bytes",
                                     offset=off + nev * es, field="event")
        self._count = k

    def read(self) -> np.ndarray:
        """All events, decoded into one array sized from the file length (no
        concatenation); on damage, the generic path reports it."""
        return _read_preallocated(self, (self.file_size - self.data_offset) // self.event_size)


def _read_preallocated(reader, upper_bound: int) -> np.ndarray:
    """``reader.read()`` through ``reader._run(into)``: decode into one array of
    ``upper_bound`` events; on EventFormatError fall back to the base class's
    ``read`` (which re-decodes and applies the on_error policy)."""
    into = np.empty(upper_bound, dtype=EVENT_DTYPE)
    try:
        for _ in reader._run(into):
            pass
    except EventFormatError:
        return EventReader.read(reader)
    out = into[:reader._count]
    if reader._count < upper_bound // 2:  # mostly APS/IMU words: don't pin the slack
        out = out.copy()
    reader._infer_size(out)
    return out


def encode_aedat2(events: np.ndarray, chip: str = "davis240", *, version: int = 2,
                  header: list[str] | None = None) -> bytes:
    """AEDAT 2.0 (or 1.0 for DVS128) bytes holding ``events`` (t >= 0, taken
    modulo 2**32), using the layouts described in the module docstring."""
    found = chip_layout(chip)
    if found is None:
        raise ValueError(f"unknown chip {chip!r}")
    key, layout, _ = found
    x = events["x"].astype(np.uint32)
    y = events["y"].astype(np.uint32)
    p = events["p"].astype(np.uint32)
    if layout == 0:
        addr = ((127 - x) << 1) | (y << 8) | (1 - p)
    else:
        addr = (y << 22) | (x << 12) | (p << 11)
    classes = {"dvs128": "ch.unizh.ini.jaer.chip.retina.DVS128",
               "davis240": "eu.seebetter.ini.chips.davis.DAVIS240C"}
    lines = [f"#!AER-DAT{version}.0", "# This is a raw AE data file created by eventpipe",
             f"# AEChip: {classes.get(key, key)}"] + list(header or [])
    rec = np.empty(len(events), dtype=[("a", ">u4" if version == 2 else ">u2"), ("t", ">u4")])
    rec["a"] = addr
    rec["t"] = (events["t"].astype(np.int64) & 0xFFFFFFFF).astype(np.uint32)
    return "".join(ln + "\r\n" for ln in lines).encode("latin-1") + rec.tobytes()
