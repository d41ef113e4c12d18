"""iniVation AEDAT 4.0 reader (the events stream; LZ4/ZSTD/uncompressed packets).

Layout (https://docs.inivation.com/software/software-advanced-usage/file-formats/aedat-4.0.html,
dv-processing ``dv/io/``, the ``aedat`` Rust crate):

- ``"#!AER-DAT4.0\\r\\n"``, an int32 (LE) IOHeader size, then the IOHeader
  FlatBuffer (identifier ``"IOHE"``): field 0 ``compression`` (int32 enum:
  0 none, 1 LZ4, 2 LZ4_HIGH, 3 ZSTD, 4 ZSTD_HIGH), field 1
  ``dataTablePosition`` (int64, -1 = none), field 2 ``infoNode`` (XML text
  listing the output streams: ``<node name="ID">`` with attribute
  ``typeIdentifier`` (``EVTS`` for events) and an ``info`` child node with
  ``sizeX``/``sizeY``/``source``/``tsOffset``).
- Packets: int32 stream id, int32 size, then ``size`` bytes holding one
  compressed, size-prefixed FlatBuffer.  An ``EVTS`` packet is
  ``EventPacket { elements: [Event] }`` with ``struct Event { int64 timestamp;
  int16 x; int16 y; bool on; pad[3] }`` (16 bytes): timestamps are Unix-epoch
  microseconds.
- The FileDataTable (compressed FlatBuffer ``"FTAB"``) sits at
  ``dataTablePosition``; we do not need it: packets are read sequentially up
  to that position (or the end of the file when there is no table).

Packets of other streams (IMU, triggers, frames) are skipped without being
decompressed.  A block is one or more whole packets (grouped until they
reach ``block_bytes`` of file); packets are independent, so no decoder state
crosses them.
"""

from __future__ import annotations

import re
import struct
import xml.etree.ElementTree as ET
from typing import Iterator

import numba
import numpy as np

from eventpipe.errors import EventFormatError
from eventpipe.events import EVENT_DTYPE
from eventpipe.io.base import EventReader
from eventpipe.io.flatbuffers import FlatBufferError, root_table, table_rows

MAGIC = b"#!AER-DAT4.0\r\n"
COMPRESSION = {0: "NONE", 1: "LZ4", 2: "LZ4_HIGH", 3: "ZSTD", 4: "ZSTD_HIGH"}
EVENT_STRUCT_SIZE = 16
_PKT = struct.Struct("<ii")
_U32 = struct.Struct("<I")
_FAST = struct.Struct("<I4s2x3HiI")
_FAST_LAYOUT = (16, b"EVTS", 6, 8, 4, 6, 4)


@numba.njit(cache=True, nogil=True)
def _convert(words, n, w, h, ox, oy, ot, op, k):
    """Unpack ``n`` 16-byte Event structs (viewed as ``2n`` int64 words) into
    the output fields from index ``k``.  Returns ``(-1, 0)``, or the index of
    the first bad event and a code (1 x, 2 y, 3 on) with geometry ``w x h``
    (0 = unchecked)."""
    for i in range(n):
        t = words[2 * i]
        v = words[2 * i + 1]
        x = np.int64(np.int16(v & 0xFFFF))
        y = np.int64(np.int16((v >> 16) & 0xFFFF))
        on = (v >> 32) & 0xFF
        if x < 0 or (w > 0 and x >= w):
            return i, 1
        if y < 0 or (h > 0 and y >= h):
            return i, 2
        if on > 1:
            return i, 3
        ox[k + i] = x
        oy[k + i] = y
        ot[k + i] = t
        op[k + i] = on
    return -1, 0


#: the largest packet we decompress (a file's or ``dv://``'s): 4 Mi events of 16 bytes
#: (dv-processing writes one packet per ``writeEvents`` call; cameras send ~1 ms of events)
MAX_PACKET = 1 << 26


def decompress(kind: int, raw: bytes, max_size: int = MAX_PACKET) -> bytes:
    """Decompress one packet, never to more than ``max_size`` bytes: a small packet that
    would inflate past it (a compression bomb) is an ``EventFormatError`` after at most
    ``max_size`` bytes of output were made."""
    if kind == 0:
        return raw
    try:
        if kind in (1, 2):
            import lz4.frame
            d = lz4.frame.LZ4FrameDecompressor()
            out = d.decompress(raw, max_length=max_size + 1)
        else:
            import io

            import zstandard
            declared = zstandard.frame_content_size(raw)  # -1: the frame does not say
            if 0 <= declared <= max_size:  # the common case: one call, no chunk list
                return zstandard.ZstdDecompressor().decompress(raw)
            parts, n = [], 0
            with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw)) as r:
                while n <= max_size:
                    chunk = r.read(min(1 << 20, max_size + 1 - n))
                    if not chunk:
                        break
                    parts.append(chunk)
                    n += len(chunk)
            out = b"".join(parts)
    except Exception as exc:  # lz4/zstd raise assorted types
        raise EventFormatError(f"{COMPRESSION[kind]} decompression failed: {exc}",
                               field="packet") from None
    if len(out) > max_size:
        raise EventFormatError(f"{COMPRESSION[kind]} packet of {len(raw):,} bytes inflates past "
                               f"the {max_size:,}-byte packet limit", field="packet")
    return out


def parse_info_node(xml_text: str) -> dict[int, dict]:
    """Streams described by the IOHeader's ``infoNode``: ``{id: {attr: value}}``
    with the ``info`` child's attributes merged in (``sizeX``, ``source``...)."""
    root = ET.fromstring(xml_text)
    streams: dict[int, dict] = {}
    for node in root.iter("node"):
        name = node.get("name", "")
        if not name.isdigit():
            continue
        attrs: dict = {}
        for child in node:
            if child.tag == "attr":
                attrs[child.get("key")] = _attr_value(child)
            elif child.tag == "node" and child.get("name") == "info":
                for a in child:
                    if a.tag == "attr":
                        attrs[a.get("key")] = _attr_value(a)
        streams[int(name)] = attrs
    return streams


def _attr_value(el):
    text = (el.text or "").strip()
    if el.get("type") in ("int", "long", "short", "byte"):
        try:
            return int(text)
        except ValueError:
            return text
    return text


class Aedat4Reader(EventReader):
    """AEDAT 4.0 events stream.  Option ``stream_id``: which ``EVTS`` stream
    to read when a file holds several (default: the lowest id)."""

    format = "aedat4"
    title = "iniVation AEDAT 4.0"
    extensions = (".aedat4",)

    def __init__(self, path, *, stream_id: int | None = None, **kw):
        self._want_stream = stream_id
        super().__init__(path, **kw)

    @staticmethod
    def sniff(head: bytes) -> bool:
        return head.startswith(b"#!AER-DAT4.0")

    # -- header -----------------------------------------------------------
    def _parse_header(self) -> None:
        with self._open() as f:
            head = f.read(len(MAGIC) + 4)
            if not head.startswith(b"#!AER-DAT4.0"):
                raise self.error(f"not an AEDAT 4.0 file (starts with {head[:14]!r})",
                                 offset=0, field="magic")
            if len(head) < len(MAGIC) + 4 or head[:len(MAGIC)] != MAGIC:
                raise self.error("truncated or malformed AEDAT 4.0 version line",
                                 offset=0, field="magic")
            size = struct.unpack_from("<i", head, len(MAGIC))[0]
            if size <= 0 or size > self.file_size - len(head):
                raise self.error(f"IOHeader size {size} does not fit the {self.file_size}-byte "
                                 "file", offset=len(MAGIC), field="header size")
            buf = f.read(size)
        base = len(head)
        try:
            hdr = root_table(buf, identifier=b"IOHE", name="IOHeader")
            comp = hdr.scalar(0, "i", 0, "compression")
            dtp = hdr.scalar(1, "q", -1, "dataTablePosition")
            xml_text = hdr.string(2, "infoNode") or ""
        except FlatBufferError as exc:
            raise self.error(str(exc), offset=base + (exc.pos or 0),
                             field=exc.field or "IOHeader") from None
        if comp not in COMPRESSION:
            raise self.error(f"unknown compression {comp}", offset=base, field="compression")
        self.data_offset = base + size
        if dtp != -1 and not (self.data_offset <= dtp):
            raise self.error(f"dataTablePosition {dtp} lies inside the header", offset=base,
                             field="dataTablePosition")
        self.compression = comp
        self.data_table_position = dtp
        try:
            streams = parse_info_node(xml_text)
        except ET.ParseError as exc:
            raise self.error(f"infoNode XML is malformed: {exc}", offset=base,
                             field="infoNode") from None
        events_ids = sorted(i for i, s in streams.items() if s.get("typeIdentifier") == "EVTS")
        if self._want_stream is not None:
            if self._want_stream not in events_ids:
                raise self.error(f"no EVTS stream with id {self._want_stream} "
                                 f"(events streams: {events_ids})", offset=base,
                                 field="stream_id")
            sid = self._want_stream
        elif events_ids:
            sid = events_ids[0]
        else:
            sid = None
        self.stream = sid
        ex = self.info.extras
        ex["compression"] = COMPRESSION[comp]
        ex["data_table_position"] = dtp
        ex["streams"] = {i: s.get("typeIdentifier") for i, s in sorted(streams.items())}
        ex["events_stream"] = sid
        w = h = 0
        if sid is not None:
            s = streams[sid]
            src = s.get("source")
            if src:
                ex["source"] = src
                m = re.match(r"^(.*?)_([A-Za-z0-9]+)$", str(src))
                if m:
                    ex["camera"], ex["serial"] = m.group(1), m.group(2)
            if "tsOffset" in s:
                ex["ts_offset"] = s["tsOffset"]
            sx, sy = s.get("sizeX"), s.get("sizeY")
            if isinstance(sx, int) and isinstance(sy, int) and 0 < sx <= 65536 and 0 < sy <= 65536:
                self.info.sensor_size = (sx, sy)
                self.info.sensor_size_source = "file"
                w, h = sx, sy
        self._geometry = (w, h)

    # -- body ---------------------------------------------------------------
    def _packets(self) -> Iterator[tuple[int, int, np.ndarray, int]]:
        """Walk the packets in file order, yielding ``(offset, bytes, words,
        count)`` for the events stream; raises on damage."""
        end = self.file_size
        if 0 <= self.data_table_position <= self.file_size:
            end = self.data_table_position
        pos = self.data_offset
        with self._open() as f:
            f.seek(pos)
            while pos < end:
                if end - pos < 8:
                    raise self.error(f"truncated packet header ({end - pos} of 8 bytes)",
                                     offset=pos, field="packet header")
                sid, size = _PKT.unpack(f.read(8))
                if size <= 0 or size > end - pos - 8:
                    what = "truncated packet" if size > 0 else "bad packet size"
                    raise self.error(f"{what}: size {size}, {end - pos - 8} bytes left",
                                     offset=pos, field="packet size")
                if sid != self.stream:
                    f.seek(size, 1)
                    pos += 8 + size
                    continue
                raw = f.read(size)
                try:
                    words, count = self._packet_events(raw)
                except (FlatBufferError, ValueError) as exc:
                    raise self.error(f"bad events packet (stream {sid}): {exc}", offset=pos,
                                     field=getattr(exc, "field", None) or "packet") from None
                yield pos, 8 + size, words, count
                pos += 8 + size
        if self.data_table_position > self.file_size:
            raise self.error(f"file ends at byte {self.file_size}, before the data table at "
                             f"{self.data_table_position} (truncated)", offset=self.file_size,
                             field="dataTablePosition")

    def _decode(self) -> Iterator[np.ndarray]:
        if self.stream is None:
            return
        pending: list[tuple[np.ndarray, int, int]] = []  # (words, count, packet offset)
        pending_bytes = 0
        packets = self._packets()
        while True:
            try:
                item = next(packets, None)
            except Exception:
                yield from self._flush(pending)
                raise
            if item is None:
                break
            pos, nbytes, words, count = item
            pending.append((words, count, pos))
            pending_bytes += nbytes
            if pending_bytes >= self.block_bytes:
                yield from self._flush(pending)
                pending, pending_bytes = [], 0
        yield from self._flush(pending)

    def _packet_events(self, raw: bytes) -> tuple[np.ndarray, int]:
        try:
            data = decompress(self.compression, raw)
        except EventFormatError as exc:
            raise ValueError(exc.message) from None
        # fast path: the fixed layout dv's FlatBuffers builder emits (checked
        # field by field; anything else goes through the generic table reader)
        if len(data) >= 32 and _FAST.unpack_from(data, 4) == _FAST_LAYOUT:
            count = _U32.unpack_from(data, 28)[0]
            if _U32.unpack_from(data, 0)[0] == len(data) - 4 and 32 + 16 * count <= len(data):
                words = np.frombuffer(data, dtype="<i8", count=2 * count, offset=32)
                return (words if words.flags.aligned else words.copy()), count
        prefixed = data[8:12] == b"EVTS"
        if not prefixed and data[4:8] != b"EVTS":
            raise FlatBufferError(f"identifier {bytes(data[4:8])!r}/{bytes(data[8:12])!r}, "
                                  "expected b'EVTS'", 4, "identifier")
        tab = root_table(data, size_prefixed=prefixed, identifier=b"EVTS", name="EventPacket")
        start, count = tab.vector(0, EVENT_STRUCT_SIZE, "elements")
        if count == 0:
            return np.empty(0, np.int64), 0
        words = np.frombuffer(data, dtype="<i8", count=2 * count, offset=start)
        if not words.flags.aligned:
            words = words.copy()
        return words, count

    def _flush(self, pending) -> Iterator[np.ndarray]:
        """Convert the pending packets into one fresh block (events before a
        bad event are yielded, then the error is raised)."""
        total = sum(c for _, c, _ in pending)
        if total == 0:
            return
        out = np.empty(total, dtype=EVENT_DTYPE)
        fields = (out["x"], out["y"], out["t"], out["p"])
        k = 0
        for words, count, pos in pending:
            bad = self._convert_into(fields, k, words, count)
            if bad >= 0:
                if k + bad:
                    yield out[:k + bad]
                raise self._bad_event(words, bad, pos)
            k += count
        yield out

    def _convert_into(self, fields, k, words, count) -> int:
        if count == 0:
            return -1
        w, h = self._geometry
        bad, self._bad_code = _convert(words, count, w, h, *fields, k)
        return bad

    def _bad_event(self, words, bad, pos):
        w, h = self._geometry
        v = int(words[2 * bad + 1])
        code = self._bad_code
        def s16(u):
            return u - 0x10000 if u >= 0x8000 else u
        field, val = {1: ("x", s16(v & 0xFFFF)), 2: ("y", s16(v >> 16 & 0xFFFF)),
                      3: ("on", v >> 32 & 0xFF)}[code]
        lim = f" (sensor {w}x{h})" if code < 3 else ""
        return self.error(f"event {bad} of the packet has {field}={val}{lim}", offset=pos,
                          field=field)

    # -- data table and the whole-file fast path -------------------------------
    def read_data_table(self) -> np.ndarray | None:
        """The FileDataTable (one row per packet: byte_offset (of the packet data,
        after its 8-byte header), stream_id, size,
        num_elements, t_start, t_end), or None when the file has none."""
        dtp = self.data_table_position
        if dtp < 0:
            return None
        if dtp >= self.file_size:
            raise self.error(f"dataTablePosition {dtp} is past the end of the file",
                             offset=dtp, field="dataTablePosition")
        with self._open() as f:
            f.seek(dtp)
            raw = f.read()
        try:
            data = decompress(self.compression, raw)
            tab = root_table(data, size_prefixed=data[8:12] == b"FTAB", identifier=b"FTAB",
                             name="FileDataTable")
            raw_rows = table_rows(tab, 0, [("q", 0), ("ii", (0, 0)), ("q", 0), ("q", 0),
                                           ("q", 0)], "Table")
            rows = [(r[0], r[1][0], r[1][1], r[2], r[3], r[4]) for r in raw_rows]
        except Exception as exc:
            raise self.error(f"bad FileDataTable: {exc}", offset=dtp,
                             field="FileDataTable") from None
        return np.array(rows, dtype=[("byte_offset", "<i8"), ("stream_id", "<i4"),
                                     ("size", "<i4"), ("num_elements", "<i8"),
                                     ("t_start", "<i8"), ("t_end", "<i8")])

    def read(self) -> np.ndarray:
        """All events.  When the file's data table gives the event count, decode
        straight into one preallocated array; a table that does not fit the file
        (:meth:`_table_total`), any inconsistency or damage falls back to the
        generic block path (the packet scan), which reports real damage."""
        if self.stream is not None and self.data_table_position >= 0:
            try:
                total = self._table_total(self.read_data_table())
                if total is not None:
                    out = np.empty(total, dtype=EVENT_DTYPE)
                    fields = (out["x"], out["y"], out["t"], out["p"])
                    k = 0
                    for _, _, words, count in self._packets():
                        if k + count > total or self._convert_into(fields, k, words, count) >= 0:
                            break
                        k += count
                    else:
                        if k == total:
                            self._infer_size(out)
                            return out
            except EventFormatError:
                pass
        return super().read()

    def _table_total(self, table: np.ndarray) -> int | None:
        """The events stream's event count per the data table, or None when the table
        cannot be right for this file: a row whose packet lies outside the data region,
        a negative count, or more events than the packets' bytes can hold (16 bytes an
        event, times a generous 64x for compression).  The table is only an index: never
        trust it with an allocation."""
        lo = self.data_offset
        hi = self.data_table_position
        rows = table[table["stream_id"] == self.stream]
        if len(rows) == 0:
            return 0
        off, size, n = (rows[f].astype(np.int64) for f in ("byte_offset", "size",
                                                            "num_elements"))
        if (off < lo + 8).any() or (size <= 0).any() or (off + size > hi).any() or (n < 0).any():
            return None
        ratio = 1 if self.compression == 0 else 64
        if (n > size * ratio // EVENT_STRUCT_SIZE).any():
            return None
        return int(n.sum())


# -- encoder (test vectors, ``eventpipe convert``) -----------------------------

_EV4 = np.dtype([("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("on", "u1"), ("pad", "V3")])
_COMP_CODES = {v: k for k, v in COMPRESSION.items()}


def _compress(kind: int, data: bytes) -> bytes:
    if kind == 0:
        return data
    if kind in (1, 2):
        import lz4.frame
        return lz4.frame.compress(data, compression_level=0 if kind == 1 else 9)
    import zstandard
    return zstandard.ZstdCompressor(level=3 if kind == 3 else 19).compress(data)


def encode_aedat4(events: np.ndarray, sensor_size=None, *, compression: str = "LZ4",
                  packet_events: int = 4096, data_table: bool = True,
                  source: str = "eventpipe_EP000001", stream_id: int = 0) -> bytes:
    """An AEDAT 4.0 file holding ``events`` as one EVTS stream."""
    from eventpipe.io.flatbuffers import build_data_table, build_event_packet, build_io_header
    kind = _COMP_CODES[compression.upper()]
    size = ""
    if sensor_size is not None:
        size = (f'<attr key="sizeX" type="int">{int(sensor_size[0])}</attr>'
                f'<attr key="sizeY" type="int">{int(sensor_size[1])}</attr>')
    info = (f'<dv version="2.0"><node name="outInfo" path="/outInfo/">'
            f'<node name="{stream_id}" path="/outInfo/{stream_id}/">'
            f'<attr key="compression" type="string">{compression.upper()}</attr>'
            f'<attr key="originalModuleName" type="string">eventpipe</attr>'
            f'<attr key="originalOutputName" type="string">events</attr>'
            f'<attr key="typeDescription" type="string">Array of events (polarity ON/OFF).'
            f'</attr><attr key="typeIdentifier" type="string">EVTS</attr>'
            f'<node name="info" path="/outInfo/{stream_id}/info/">{size}'
            f'<attr key="source" type="string">{source}</attr></node></node></node></dv>')
    packets, rows = [], []
    n = len(events)
    header_len = len(MAGIC) + 4 + len(build_io_header(kind, 0, info))
    pos = header_len
    for s in range(0, n, max(1, int(packet_events))):
        ev = events[s:s + packet_events]
        rec = np.zeros(len(ev), _EV4)
        rec["t"], rec["x"], rec["y"], rec["on"] = ev["t"], ev["x"], ev["y"], ev["p"]
        body = _compress(kind, build_event_packet(rec.tobytes()))
        packets.append(_PKT.pack(stream_id, len(body)) + body)
        rows.append((pos + 8, stream_id, len(body), len(ev), int(ev["t"][0]), int(ev["t"][-1])))
        pos += len(packets[-1])
    dtp = pos if data_table else -1
    hdr = build_io_header(kind, dtp, info)
    out = [MAGIC, struct.pack("<i", len(hdr)), hdr] + packets
    if data_table:
        out.append(_compress(kind, build_data_table(rows)))
    return b"".join(out)
