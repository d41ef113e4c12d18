"""Build >= N-event benchmark files by tiling the real samples' bodies.

Tiling repeats the event body of a real recording after its header, so the
file keeps the real sensor's word mix (vectors, time-high sequences, packets).
Timestamps restart at each tile (EVT3 sees that as a 24-bit wrap, as the
vendor decoder would); that is irrelevant to decoding speed.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np


def prophesee_header_end(data: bytes) -> int:
    """Offset of the first byte after the '%' header lines."""
    pos = 0
    while pos < len(data) and data[pos:pos + 1] == b"%":
        nl = data.index(b"\n", pos)
        pos = nl + 1
    return pos


def tile_prophesee(src: Path, dst: Path, n_events_src: int, min_events: int,
                   dat: bool = False) -> int:
    data = src.read_bytes()
    start = prophesee_header_end(data)
    if dat:
        start += 2  # event type and size bytes
    head, body = data[:start], data[start:]
    k = -(-min_events // n_events_src)
    with open(dst, "wb") as f:
        f.write(head)
        for _ in range(k):
            f.write(body)
    return k * n_events_src


def _aedat4_layout(data: bytes) -> tuple[int, int, int]:
    """(header_end, data_table_position, offset of the int64 field in the file)."""
    (hsize,) = struct.unpack_from("<i", data, 14)
    h0 = 18
    (root,) = struct.unpack_from("<I", data, h0)
    table = h0 + root
    (vt_rel,) = struct.unpack_from("<i", data, table)
    vtable = table - vt_rel
    (vt_size,) = struct.unpack_from("<H", data, vtable)
    fields = [struct.unpack_from("<H", data, vtable + 4 + 2 * i)[0] for i in range((vt_size - 4) // 2)]
    pos_field = table + fields[1] if len(fields) > 1 and fields[1] else -1
    dtp = struct.unpack_from("<q", data, pos_field)[0] if pos_field >= 0 else -1
    return h0 + hsize, dtp, pos_field


def tile_aedat4(src: Path, dst: Path, n_events_src: int, min_events: int) -> int:
    data = bytearray(src.read_bytes())
    header_end, dtp, pos_field = _aedat4_layout(bytes(data))
    body_end = dtp if dtp > 0 else len(data)
    if pos_field >= 0:
        data[pos_field:pos_field + 8] = struct.pack("<q", -1)  # no data table in the tiled file
    k = -(-min_events // n_events_src)
    with open(dst, "wb") as f:
        f.write(bytes(data[:header_end]))
        body = bytes(data[header_end:body_end])
        for _ in range(k):
            f.write(body)
    return k * n_events_src


def mev_s(n: int, seconds: float) -> float:
    return n / seconds / 1e6 if seconds > 0 else float("inf")


def best_of(fn, repeat: int = 3) -> tuple[float, object]:
    import time
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def same_xyp(a: np.ndarray, b: np.ndarray) -> bool:
    return (len(a) == len(b) and np.array_equal(a["x"], b["x"]) and np.array_equal(a["y"], b["y"])
            and np.array_equal(a["p"].astype(np.uint8), b["p"].astype(np.uint8)))
