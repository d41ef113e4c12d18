"""A tiny, bounds-checked FlatBuffers table reader (enough for AEDAT 4.0).

FlatBuffers wire format (https://flatbuffers.dev/internals/): all scalars are
little-endian.  A buffer starts with a ``uoffset`` (u32) to the root table,
optionally preceded by a u32 size prefix and followed by a 4-byte file
identifier.  A table starts with an ``soffset`` (i32): the vtable lives at
``table - soffset``; the vtable is ``u16 vtable_size, u16 table_size`` then
one u16 per field giving the field's offset inside the table (0 = absent,
the schema default applies).  Vectors and strings are reached through a u32
offset relative to the field's position and start with a u32 element count.

Every offset read here is checked against the buffer bounds: a corrupted
offset raises :class:`FlatBufferError` (a ``ValueError``), never
``IndexError`` or ``struct.error``.
"""

from __future__ import annotations

import struct

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")


class FlatBufferError(ValueError):
    """A malformed FlatBuffer; ``pos`` is the byte position inside the buffer."""

    def __init__(self, message: str, pos: int | None = None, field: str | None = None):
        self.pos = pos
        self.field = field
        super().__init__(message if pos is None else f"{message} (buffer byte {pos})")


class Table:
    """A FlatBuffers table at ``pos`` inside ``buf`` (bytes-like)."""

    __slots__ = ("buf", "pos", "_vt", "_vtsize", "name")

    def __init__(self, buf, pos: int, name: str = "table"):
        self.buf = buf
        self.pos = pos
        self.name = name
        n = len(buf)
        _need(buf, pos, 4, f"{name} start")
        vt = pos - _I32.unpack_from(buf, pos)[0]
        if vt < 0 or vt + 4 > n:
            raise FlatBufferError(f"{name}: vtable offset out of bounds", pos, name)
        vtsize, tsize = _U16.unpack_from(buf, vt)[0], _U16.unpack_from(buf, vt + 2)[0]
        if vtsize < 4 or vtsize % 2 or vt + vtsize > n:
            raise FlatBufferError(f"{name}: bad vtable size {vtsize}", vt, name)
        if tsize < 4 or pos + tsize > n:
            raise FlatBufferError(f"{name}: bad table size {tsize}", vt + 2, name)
        self._vt = vt
        self._vtsize = vtsize

    def _field(self, index: int, size: int, what: str) -> int:
        """Absolute position of field ``index`` (``size`` bytes), 0 when absent."""
        slot = 4 + 2 * index
        if slot + 2 > self._vtsize:
            return 0
        off = _U16.unpack_from(self.buf, self._vt + slot)[0]
        if off == 0:
            return 0
        if off < 4:
            raise FlatBufferError(f"{self.name}.{what}: field offset {off} overlaps the "
                                  "table's vtable pointer", self._vt + slot, what)
        p = self.pos + off
        _need(self.buf, p, size, f"{self.name}.{what}")
        return p

    def scalar(self, index: int, fmt: str, default, what: str = "field"):
        s = struct.Struct("<" + fmt)
        p = self._field(index, s.size, what)
        return default if p == 0 else s.unpack_from(self.buf, p)[0]

    def _indirect(self, index: int, what: str) -> int:
        p = self._field(index, 4, what)
        if p == 0:
            return 0
        target = p + _U32.unpack_from(self.buf, p)[0]
        _need(self.buf, target, 4, f"{self.name}.{what}")
        return target

    def vector(self, index: int, elem_size: int, what: str = "vector") -> tuple[int, int]:
        """``(start of first element, element count)``; ``(0, 0)`` when absent."""
        v = self._indirect(index, what)
        if v == 0:
            return 0, 0
        count = _U32.unpack_from(self.buf, v)[0]
        start = v + 4
        if count * elem_size > len(self.buf) - start:
            raise FlatBufferError(f"{self.name}.{what}: vector of {count} x {elem_size} bytes "
                                  f"runs past the buffer end ({len(self.buf)} bytes)", v, what)
        return start, count

    def tables(self, index: int, what: str = "tables") -> list["Table"]:
        """A vector of tables (each element a u32 offset to a table)."""
        start, count = self.vector(index, 4, what)
        out = []
        for i in range(count):
            p = start + 4 * i
            out.append(Table(self.buf, p + _U32.unpack_from(self.buf, p)[0], f"{what}[{i}]"))
        return out

    def struct_field(self, index: int, fmt: str, what: str = "struct"):
        """An inline struct field unpacked with ``fmt`` (None when absent)."""
        s = struct.Struct("<" + fmt)
        p = self._field(index, s.size, what)
        return None if p == 0 else s.unpack_from(self.buf, p)

    def string(self, index: int, what: str = "string") -> str | None:
        start, count = self.vector(index, 1, what)
        if start == 0:
            return None
        try:
            return bytes(self.buf[start:start + count]).decode("utf-8")
        except UnicodeDecodeError:
            raise FlatBufferError(f"{self.name}.{what}: string is not UTF-8", start,
                                  what) from None


def _need(buf, pos: int, size: int, what: str) -> None:
    if pos < 0 or pos + size > len(buf):
        raise FlatBufferError(f"{what}: offset {pos} (+{size}) outside the "
                              f"{len(buf)}-byte buffer", pos, what)


def root_table(buf, *, size_prefixed: bool = False, identifier: bytes | None = None,
               name: str = "root") -> Table:
    """The root table of ``buf``, checking the size prefix and file identifier."""
    base = 0
    if size_prefixed:
        _need(buf, 0, 4, f"{name} size prefix")
        size = _U32.unpack_from(buf, 0)[0]
        if size != len(buf) - 4:
            raise FlatBufferError(f"{name}: size prefix says {size} bytes, buffer has "
                                  f"{len(buf) - 4}", 0, "size")
        base = 4
    _need(buf, base, 8 if identifier else 4, f"{name} root offset")
    if identifier is not None:
        got = bytes(buf[base + 4:base + 8])
        if got != identifier:
            raise FlatBufferError(f"{name}: identifier {got!r}, expected {identifier!r}",
                                  base + 4, "identifier")
    root = base + _U32.unpack_from(buf, base)[0]
    return Table(buf, root, name)


# -- writing the three AEDAT 4.0 tables (fixed layouts, 8-byte aligned) -------

def _pad(b: bytearray, align: int) -> None:
    b.extend(b"\0" * (-len(b) % align))


def build_io_header(compression: int, data_table_position: int, info_node: str) -> bytes:
    """IOHeader ``{compression: int32, dataTablePosition: int64, infoNode:
    string}`` with identifier ``IOHE`` (not size-prefixed)."""
    b = bytearray(struct.pack("<I4s", 24, b"IOHE"))
    b += struct.pack("<5H", 10, 20, 4, 8, 16)          # vtable at 8
    _pad(b, 8)                                         # table at 24
    b += struct.pack("<iiqI", 24 - 8, compression, data_table_position, 4)
    text = info_node.encode()
    b += struct.pack("<I", len(text)) + text + b"\0"   # string at 44
    _pad(b, 8)
    return bytes(b)


def build_event_packet(events_bytes: bytes, identifier: bytes = b"EVTS") -> bytes:
    """Size-prefixed ``EventPacket {elements: [Event]}`` from the packed
    16-byte Event structs."""
    b = bytearray(struct.pack("<II4s", 0, 16, identifier))
    b += b"\0\0" + struct.pack("<3H", 6, 8, 4)         # vtable at 14
    b += struct.pack("<iII", 20 - 14, 4, len(events_bytes) // 16)  # table at 20
    b += events_bytes
    struct.pack_into("<I", b, 0, len(b) - 4)
    return bytes(b)


def build_data_table(rows) -> bytes:
    """Size-prefixed ``FileDataTable {Table: [FileDataDefinition]}`` from rows
    ``(byte_offset, stream_id, size, num_elements, t_start, t_end)``."""
    rows = list(rows)
    b = bytearray(struct.pack("<II4s", 0, 16, b"FTAB"))
    b += struct.pack("<3H", 6, 8, 4)                   # root vtable at 12
    _pad(b, 4)
    b += struct.pack("<iI", 20 - 12, 44 - 24)          # root table at 20 -> vector at 44
    b += struct.pack("<7H", 14, 48, 8, 16, 24, 32, 40)  # definition vtable at 28
    _pad(b, 4)
    vec = len(b)                                       # 44
    b += struct.pack("<I", len(rows)) + b"\0" * (4 * len(rows))
    _pad(b, 8)
    for i, (off, sid, size, num, t0, t1) in enumerate(rows):
        tpos = len(b)
        struct.pack_into("<I", b, vec + 4 + 4 * i, tpos - (vec + 4 + 4 * i))
        b += struct.pack("<iiqiiqqq", tpos - 28, 0, off, sid, size, num, t0, t1)
    struct.pack_into("<I", b, 0, len(b) - 4)
    return bytes(b)


def table_rows(parent: Table, index: int, fields: list[tuple[str, object]], what: str = "rows"
               ) -> list[tuple]:
    """Read a vector of tables as rows: ``fields`` lists ``(struct format,
    default)`` per field index.  Same checks as :class:`Table`, with the
    vtables (usually one shared by all rows) parsed once."""
    buf = parent.buf
    n = len(buf)
    start, count = parent.vector(index, 4, what)
    fast = _table_rows_numpy(parent.buf, start, count, fields)
    if fast is not None:
        return fast
    structs = [struct.Struct("<" + fmt) for fmt, _ in fields]
    defaults = [d for _, d in fields]
    vcache: dict[int, list[int]] = {}
    rows = []
    for i in range(count):
        p = start + 4 * i
        t = p + _U32.unpack_from(buf, p)[0]
        _need(buf, t, 4, f"{what}[{i}]")
        vt = t - _I32.unpack_from(buf, t)[0]
        offs = vcache.get(vt)
        if offs is None:
            tab = Table(buf, t, f"{what}[{i}]")  # validates the vtable
            offs = []
            for k in range(len(fields)):
                slot = 4 + 2 * k
                offs.append(_U16.unpack_from(buf, vt + slot)[0] if slot + 2 <= tab._vtsize else 0)
            vcache[vt] = offs
        row = []
        for k, s in enumerate(structs):
            o = offs[k]
            if o == 0:
                row.append(defaults[k])
                continue
            if o < 4 or t + o + s.size > n:
                raise FlatBufferError(f"{what}[{i}]: field {k} outside the buffer", t, what)
            v = s.unpack_from(buf, t + o)
            row.append(v[0] if len(v) == 1 else v)
        rows.append(tuple(row))
    return rows


def _table_rows_numpy(buf, start: int, count: int, fields) -> list[tuple] | None:
    """Vectorised :func:`table_rows` for the usual case (every row shares one
    vtable, fields are 4/8-byte scalars); None when that does not apply."""
    import numpy as np
    sizes = [struct.calcsize("<" + f) for f, _ in fields]
    if count < 64 or any(f not in ("q", "i", "ii") for f, _ in fields):
        return None
    b = np.frombuffer(buf, dtype=np.uint8)
    n = len(b)
    slots = start + 4 * np.arange(count, dtype=np.int64)
    tpos = slots + _gather(b, slots, 4, "<u4").astype(np.int64)
    if tpos.max() + 4 > n:
        return None
    vt = tpos - _gather(b, tpos, 4, "<i4").astype(np.int64)
    if (vt != vt[0]).any():
        return None
    first = Table(buf, int(tpos[0]), "row")  # validates the shared vtable
    cols = []
    for k, ((fmt, default), size) in enumerate(zip(fields, sizes)):
        slot = 4 + 2 * k
        off = _U16.unpack_from(buf, first._vt + slot)[0] if slot + 2 <= first._vtsize else 0
        if off == 0:
            cols.append([default] * count)
            continue
        if off < 4 or tpos.max() + off + size > n:
            return None
        if fmt == "ii":
            a = _gather(b, tpos + off, 4, "<i4").tolist()
            c = _gather(b, tpos + off + 4, 4, "<i4").tolist()
            cols.append(list(zip(a, c)))
        else:
            cols.append(_gather(b, tpos + off, size, "<" + fmt).tolist())
    return list(zip(*cols))


def _gather(b, pos, size: int, dtype: str):
    import numpy as np
    idx = pos[:, None] + np.arange(size)
    return np.ascontiguousarray(b[idx]).view(dtype).ravel()
