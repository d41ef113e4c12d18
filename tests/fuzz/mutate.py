"""Seeded mutations of real recordings for the fuzz harness.

Each mutation takes the original bytes and a ``numpy.random.Generator`` and
returns new bytes: bit flips, byte overwrites, truncation, spliced headers
(another format's header or our own header repeated), zeroed or duplicated
regions, and random insertions.  Mutations concentrate on the header region
half the time, where parsers are most fragile.
"""

from __future__ import annotations

import numpy as np

HEADER_ZONE = 4096


def _pos(rng: np.random.Generator, n: int) -> int:
    if n <= 1:
        return 0
    if rng.random() < 0.5:
        return int(rng.integers(0, min(n, HEADER_ZONE)))
    return int(rng.integers(0, n))


def bit_flips(data: bytes, rng) -> bytes:
    buf = bytearray(data)
    for _ in range(int(rng.integers(1, 9))):
        i = _pos(rng, len(buf))
        if buf:
            buf[i] ^= 1 << int(rng.integers(0, 8))
    return bytes(buf)


def byte_overwrite(data: bytes, rng) -> bytes:
    buf = bytearray(data)
    if not buf:
        return bytes(buf)
    i = _pos(rng, len(buf))
    n = int(rng.integers(1, 17))
    special = [0x00, 0xFF, 0x7F, 0x80]
    vals = rng.choice(special, n) if rng.random() < 0.5 else rng.integers(0, 256, n)
    buf[i:i + n] = bytes(int(v) for v in vals)
    return bytes(buf)


def truncate(data: bytes, rng) -> bytes:
    return data[: int(rng.integers(0, len(data) + 1))]


def zero_region(data: bytes, rng) -> bytes:
    buf = bytearray(data)
    i = _pos(rng, len(buf))
    n = int(rng.integers(1, 257))
    buf[i:i + n] = bytes(min(n, len(buf) - i))
    return bytes(buf)


def duplicate_region(data: bytes, rng) -> bytes:
    i = _pos(rng, len(data))
    n = int(rng.integers(1, 513))
    j = _pos(rng, len(data))
    return data[:j] + data[i:i + n] + data[j:]


def insert_random(data: bytes, rng) -> bytes:
    j = _pos(rng, len(data))
    return data[:j] + rng.integers(0, 256, int(rng.integers(1, 65)), dtype=np.uint8).tobytes() + data[j:]


def delete_region(data: bytes, rng) -> bytes:
    i = _pos(rng, len(data))
    return data[:i] + data[i + int(rng.integers(1, 65)):]


def make_splice(donors: list[bytes]):
    """A mutation that splices the head of a donor file (another format) in."""
    def splice(data: bytes, rng) -> bytes:
        donor = donors[int(rng.integers(0, len(donors)))]
        k = int(rng.integers(1, min(len(donor), 2048) + 1))
        j = _pos(rng, len(data))
        if rng.random() < 0.5:
            return donor[:k] + data[j:]
        return data[:j] + donor[:k] + data[j:]
    return splice


BASE_MUTATIONS = (bit_flips, byte_overwrite, truncate, zero_region, duplicate_region,
                  insert_random, delete_region)


def mutations(donors: list[bytes] | None = None):
    muts = list(BASE_MUTATIONS)
    if donors:
        muts.append(make_splice(donors))
    return muts


def mutate(data: bytes, rng, donors: list[bytes] | None = None) -> bytes:
    """Apply one to three random mutations."""
    muts = mutations(donors)
    for _ in range(int(rng.integers(1, 4))):
        data = muts[int(rng.integers(0, len(muts)))](data, rng)
    return data
