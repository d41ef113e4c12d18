"""CSV event text: lines ``t,x,y,p`` (header optional), parsed by a Numba kernel.

Lines hold four integers separated by a comma (spaces around it allowed) or by
whitespace.  A first line naming the columns (t, x, y, p in any order;
aliases ts/timestamp/time and pol/polarity) sets the column order; without
one the order is t, x, y, p.  x and y must lie in [0, 65535], p be 0, 1 or -1
(OFF).  The body is parsed in byte blocks, a partial last line carried to the
next block; a bad line is an :class:`EventFormatError` with its line number
and the byte offset of the offending character, after the events of the lines
before it.  Exposed as ``eventpipe.io.plain.CsvReader`` (the FORMATS entry).
"""

from __future__ import annotations

import re
from typing import Iterator

import numba
import numpy as np

from eventpipe.events import EVENT_DTYPE, as_events
from eventpipe.io.base import EventReader

FIELDS = ("x", "y", "t", "p")

# -- parser -------------------------------------------------------------------------
_ALIASES = {"t": "t", "ts": "t", "time": "t", "timestamp": "t", "x": "x", "y": "y",
            "p": "p", "pol": "p", "polarity": "p"}
_FIELD_INDEX = {"t": 0, "x": 1, "y": 2, "p": 3}
_NUM_LINE = re.compile(rb"^[ \t]*-?\d+(?:(?:[ \t]*,[ \t]*|[ \t]+)-?\d+){3}[ \t]*\r?$")
MAX_LINE = 4096
# kernel error codes
_E_NUMBER, _E_FEW, _E_MANY, _E_RANGE, _E_LONG = 1, 2, 3, 4, 5
_E_TEXT = {_E_NUMBER: "expected an integer", _E_FEW: "fewer than 4 columns",
           _E_MANY: "more than 4 columns", _E_RANGE: "value out of range",
           _E_LONG: "line too long"}


@numba.njit(cache=True, nogil=True)
def _parse_csv(buf, final, order, out_t, out_x, out_y, out_p, st, err):
    """Parse whole lines of ``buf`` (all of it when ``final``).  ``order[c]`` is
    the field (0 t, 1 x, 2 y, 3 p) of column c; ``st[0]`` the line number of
    buf's first line.  Returns (events, bytes consumed); on error fills ``err``
    = (code, position in buf, line number, column)."""
    n = 0
    i = 0
    size = buf.shape[0]
    vals = np.zeros(4, np.int64)
    while i < size:
        e = i
        while e < size and buf[e] != 10:
            e += 1
        if e == size and not final:
            if e - i > 4096:
                err[0] = 5
                err[1] = i
                err[2] = st[0]
                return n, i
            return n, i
        le = e
        if le > i and buf[le - 1] == 13:
            le -= 1
        j = i
        while j < le and (buf[j] == 32 or buf[j] == 9):
            j += 1
        if j < le:
            col = 0
            code = 0
            while True:
                neg = False
                if j < le and buf[j] == 45:
                    neg = True
                    j += 1
                digits = 0
                v = np.int64(0)
                while j < le and 48 <= buf[j] <= 57:
                    if digits == 18:
                        code = 4
                        break
                    v = v * 10 + (buf[j] - 48)
                    digits += 1
                    j += 1
                if code == 0 and digits == 0:
                    code = 1
                if code:
                    break
                if col == 4:
                    code = 3
                    break
                f = order[col]
                if neg:
                    v = -v
                if (f == 1 or f == 2) and (v < 0 or v > 65535):
                    code = 4
                    break
                if f == 3 and v != 0 and v != 1 and v != -1:
                    code = 4
                    break
                vals[f] = v
                col += 1
                sep = j
                while j < le and (buf[j] == 32 or buf[j] == 9):
                    j += 1
                if j < le and buf[j] == 44:
                    j += 1
                    while j < le and (buf[j] == 32 or buf[j] == 9):
                        j += 1
                elif j == le:
                    break
                elif j == sep:
                    code = 1
                    break
            if code == 0 and col < 4:
                code = 2
            if code:
                err[0] = code
                err[1] = j
                err[2] = st[0]
                err[3] = col
                return n, i
            out_t[n] = vals[0]
            out_x[n] = vals[1]
            out_y[n] = vals[2]
            out_p[n] = 1 if vals[3] == 1 else 0
            n += 1
        st[0] += 1
        i = e + 1
    return n, min(i, size)


def _header_order(line: bytes):
    """Column order from a header line, or None when it is not a header."""
    text = line.decode("ascii", "replace").strip()
    if not re.search(r"[A-Za-z]", text):
        return None
    names = [s.strip().lower() for s in (text.split(",") if "," in text else text.split())]
    fields = [_ALIASES.get(s) for s in names]
    if len(names) != 4 or None in fields or sorted(fields) != sorted(FIELDS):
        raise ValueError(f"header must name the columns t, x, y, p, got {names}")
    return np.array([_FIELD_INDEX[f] for f in fields], dtype=np.int64)


class CsvReader(EventReader):
    """CSV text with columns t, x, y, p (header optional)."""

    format = "csv"
    title = "CSV text with columns t, x, y, p"
    extensions = (".csv", ".txt")

    @staticmethod
    def sniff(head: bytes) -> bool:
        head = head.removeprefix(b"\xef\xbb\xbf")
        if not head or any(c < 32 and c not in (9, 10, 13) or c > 126 for c in head[:4096]):
            return False
        lines = head.split(b"\n")
        if len(lines) > 1 and len(head) >= 1 << 16:
            lines = lines[:-1]  # the last line of a full head may be cut
        first, rest = lines[0], [ln for ln in lines[1:3] if ln.strip()]
        try:
            is_header = _header_order(first) is not None
        except ValueError:
            return False
        if not is_header and not _NUM_LINE.match(first):
            return False
        return all(_NUM_LINE.match(ln) for ln in rest)

    def _parse_header(self) -> None:
        with self._open() as f:
            head = f.read(MAX_LINE + 3)
        if not head:
            raise self.error("empty file: no header and no events", offset=0)
        start = 3 if head.startswith(b"\xef\xbb\xbf") else 0
        nl = head.find(b"\n", start)
        first = head[start: nl if nl >= 0 else len(head)]
        try:
            order = _header_order(first)
        except ValueError as exc:
            raise self.error(str(exc), offset=start, field="header") from None
        self.first_line = 1
        if order is None:
            order = np.arange(4, dtype=np.int64)
            self.data_offset = start
            self.info.extras["header"] = None
        else:
            self.data_offset = len(head) if nl < 0 else nl + 1
            self.first_line = 2
            self.info.extras["header"] = first.decode("ascii", "replace").strip()
        self.order = order

    def _decode(self) -> Iterator[np.ndarray]:
        st = np.array([self.first_line], dtype=np.int64)
        err = np.zeros(4, dtype=np.int64)
        carry = np.zeros(0, dtype=np.uint8)
        carry_off = self.data_offset
        with self._open() as f:
            blocks = self._byte_blocks(f, self.data_offset)
            done = False
            while not done:
                nxt = next(blocks, None)
                done = nxt is None
                buf = carry if done else (np.concatenate([carry, nxt[1]]) if carry.size
                                          else nxt[1])
                if not done and not carry.size:
                    carry_off = nxt[0]
                cap = int(np.count_nonzero(buf == 10)) + 1
                out = np.empty(cap, dtype=EVENT_DTYPE)
                n, used = _parse_csv(buf, done, self.order, out["t"], out["x"], out["y"],
                                     out["p"], st, err)
                if n:
                    yield out[:n]
                if err[0]:
                    msg = _E_TEXT.get(int(err[0]), "bad line")
                    raise self.error(f"line {err[2]}: {msg} (column {err[3] + 1})",
                                     offset=carry_off + int(err[1]), field="line")
                carry = buf[used:].copy()
                carry_off += used



# -- writer ----
def write_csv(path, events, header: bool = True, chunk: int = 1 << 18) -> None:
    """Save events as CSV lines ``t,x,y,p`` (with a header line by default)."""
    ev = as_events(events)
    with open(path, "w", newline="\n") as f:
        if header:
            f.write("t,x,y,p\n")
        for a in range(0, len(ev), chunk):
            c = ev[a:a + chunk]
            cols = np.stack([c["t"], c["x"].astype(np.int64), c["y"].astype(np.int64),
                             c["p"].astype(np.int64)], axis=1)
            np.savetxt(f, cols, fmt="%d", delimiter=",")
