"""Prophesee / Chronocam ``.dat`` event files (CD and 2D event types).

Layout (Prophesee ``io/dat_tools`` / ``_dat_events_tools.parse_header``, as tonic and
expelliarmus read it)::

    % Data file containing Event2D events.     <- '%' text header lines
    % Version 2
    % Date 2017-10-31 11:29:21
    % Height 240                               <- optional geometry
    % Width 304
    <u8 event type> <u8 event size>            <- 2 bytes, after any header
    events: <u32 timestamp µs> <u32 data>      <- little-endian, ``event size`` bytes each

with ``x = data & 0x3FFF``, ``y = (data >> 14) & 0x3FFF``, polarity = bit 28 (bits
29..31 are not used by Prophesee's loader and are ignored).  Event types 0x00 (Event2D)
and 0x0C (EventCD) share this layout; any other type, or an event size other than 8,
is rejected.  A file without any header line has no type/size bytes (Prophesee's
loader then assumes Event2D, 8 bytes); a header without the two bytes after it is a
truncated file.  Timestamps are the stored 32-bit values (no wrap handling, as in the
vendor loader).  ``% Width``/``% Height`` give the geometry (source ``"file"``) and
coordinates outside it are damage; without them the size is inferred from the events.
"""

from __future__ import annotations

import numba
import numpy as np

from eventpipe.events import as_events, check_sensor_size
from eventpipe.io.prophesee.header import declared_encoding, read_header, split_header
from eventpipe.io.prophesee.words import WordStreamReader

EVENT_SIZE = 8
CD_TYPES = {0x00: "Event2D", 0x0C: "EventCD"}
ERR_X, ERR_Y = 2, 3
_ERR_FIELD = {ERR_X: "x", ERR_Y: "y"}


@numba.njit(cache=True, nogil=True)
def _decode_words(words, start, out, state, w_lim, h_lim):
    """Decode 64-bit records ``words[start:]`` (low half timestamp, high half data) until
    they end or ``out`` is full.  Returns ``(events written, next record)``; damage sets
    ``state[0:2]``; ``state[2:4]`` track the largest x and y (for the inferred size)."""
    n = 0
    i = start
    end = min(words.shape[0], start + out.shape[0])
    xm = state[2]
    ym = state[3]
    while i < end:
        v = words[i]
        d = v >> 32
        x = d & 0x3FFF
        y = (d >> 14) & 0x3FFF
        if (x >= w_lim) | (y >= h_lim):
            state[0] = ERR_X if x >= w_lim else ERR_Y
            state[1] = i
            break
        if x > xm:
            xm = x
        if y > ym:
            ym = y
        e = out[n]
        e.x = x
        e.y = y
        e.t = v & 0xFFFFFFFF
        e.p = (d >> 28) & 1
        n += 1
        i += 1
    state[2] = xm
    state[3] = ym
    return n, i


class DatReader(WordStreamReader):
    format = "dat"
    title = "Prophesee/Chronocam DAT"
    extensions = (".dat",)
    WORD = EVENT_SIZE
    WORD_DTYPE = "<u8"
    MAX_PER_WORD = 1
    STATE_SIZE = 4

    @staticmethod
    def sniff(head: bytes) -> bool:
        h = split_header(head)
        if not h.lines or declared_encoding(h) is not None:
            return False
        if h.lines[0].startswith("Data file containing"):
            return True  # a DAT whatever its type/size bytes say: they get a typed error
        if h.get("Version") is None:
            return False
        rest = head[h.data_offset:h.data_offset + 2]  # "% Version" alone: also old RAW headers
        return len(rest) < 2 or rest[1] == EVENT_SIZE

    def _parse_header(self) -> None:
        h = read_header(self)
        if h.lines:
            with self._open() as f:
                f.seek(h.data_offset)
                ts = f.read(2)
            if len(ts) < 2:
                raise self.error("truncated: the event type and size bytes after the header "
                                 "are missing", offset=h.data_offset, field="event_type")
            ev_type, ev_size = ts[0], ts[1]
            if ev_type not in CD_TYPES:
                raise self.error(f"unsupported DAT event type 0x{ev_type:02x} (only 0x00 "
                                 "Event2D and 0x0C EventCD)", offset=h.data_offset,
                                 field="event_type")
            if ev_size != EVENT_SIZE:
                raise self.error(f"DAT event size {ev_size}, expected {EVENT_SIZE}",
                                 offset=h.data_offset + 1, field="event_size")
            self.data_offset = h.data_offset + 2
        else:
            ev_type = 0x00
        self.info.extras["event_type"] = CD_TYPES[ev_type]
        self._limits = self.info.sensor_size or (1 << 14, 1 << 14)

    def _kernel(self, words, start, out, state):
        return _decode_words(words, start, out, state, *self._limits)

    def _infer_size(self, events: np.ndarray) -> None:
        # the kernel tracked the maxima: no second pass over the events
        st = self._last_state
        if self.info.sensor_size is None and len(events) and st is not None:
            self.info.sensor_size = (int(st[2]) + 1, int(st[3]) + 1)
            self.info.sensor_size_source = "inferred"
        else:
            super()._infer_size(events)

    def _error(self, code: int, word: int) -> tuple[str, str]:
        field = _ERR_FIELD[code]
        return (f"event {field} outside the sensor {self._limits} "
                f"(data 0x{word >> 32:08x})", field)


def encode_dat(events, sensor_size=None, *, event_type: int = 0x00,
               date: str | None = None) -> bytes:
    """Encode events as a DAT file (Event2D by default; 0x0C for EventCD) with a
    ``% Height``/``% Width`` header when ``sensor_size`` is given.  Timestamps must fit
    32 bits, coordinates 14 bits."""
    ev = as_events(events)
    if event_type not in CD_TYPES:
        raise ValueError(f"encode_dat: event_type must be one of {sorted(CD_TYPES)}")
    lines = [f"% Data file containing {CD_TYPES[event_type]} events.", "% Version 2"]
    if date:
        lines.append(f"% Date {date}")
    if sensor_size is not None:
        w, h = check_sensor_size(sensor_size)
        lines += [f"% Height {h}", f"% Width {w}"]
    else:
        w = h = 1 << 14
    if len(ev):
        if ev["x"].max() >= min(w, 1 << 14) or ev["y"].max() >= min(h, 1 << 14):
            raise ValueError("encode_dat: coordinates must be < 16384 and inside sensor_size")
        if ev["t"].min() < 0 or ev["t"].max() >= 1 << 32:
            raise ValueError("encode_dat: timestamps must be in [0, 2**32) µs")
    rec = np.empty((len(ev), 2), dtype="<u4")
    rec[:, 0] = ev["t"]
    rec[:, 1] = (ev["x"].astype(np.uint32) | (ev["y"].astype(np.uint32) << 14)
                 | (ev["p"].astype(np.uint32) << 28))
    header = ("\n".join(lines) + "\n").encode()
    return header + bytes([event_type, EVENT_SIZE]) + rec.tobytes()
