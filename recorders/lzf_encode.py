"""The LZF chunk encoder's Numba kernels: byte planes in, one LZF stream out.

The stored bytes of a chunk are ``lzf(shuffle(chunk))`` (see :mod:`recorders.lzf`).  The
kernels first lay the chunk out as its byte planes (the shuffle; for event records one
pass over the 13-byte records makes all four columns' planes, 16 records at a time with
SIMD byte shuffles), then encode each column's planes one after another into one LZF
stream.  LZF is only a stream format: literal runs (control byte ``c < 32``: ``c + 1``
bytes follow) and back-references (length 3..264, distance 1..8192); liblzf decodes any
stream of them, whoever chose the matches.  This encoder chooses them for speed on event
columns, plane by plane:

- a plane of one repeated byte (the high bytes of t; of x and y on small sensors) is one
  literal and 264-byte distance-1 references, found by comparing 8 bytes at a time;
- the shortest match searched for follows the plane's values (all below 2, as p: 8
  bytes; below 4: 7; below 8: 4; else 3), so the search takes long steps where matches
  are cheap to find and the stream stays short;
- each position tries distance 1 (a run) and then one hash-table candidate; matches are
  extended 8 bytes at a time (the first differing byte from the XOR's trailing zeros);
- after a run of misses the search steps ahead faster (as LZ4 does), and a plane whose
  stream is still more than ``GIVE_UP`` of its bytes after ``PROBE`` bytes (the low
  bytes of x and y: near-random) is emitted as literal runs from there on, copied 8
  bytes at a time.

Bytes are loaded and stored 8 at a time at any alignment (LLVM unaligned loads and
stores).  Every buffer the kernels read has ``SLACK`` spare bytes after its data; every
emission is checked against the output's end less ``SLACK`` (so a wide store never
passes the output's end): a stream that would not fit falls back to literal runs, which
the callers' buffers always hold (``-1`` when even they do not).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.cpython.unsafe.numbers import trailing_zeros
from numba.extending import intrinsic

HASH_BITS = 12      # 4096 int32 entries: 16 KiB, stays in the L1 cache
MAX_OFF = 8192      # the farthest an LZF back-reference reaches
MAX_LEN = 264       # the longest LZF back-reference
SKIP_SHIFT = 4      # after 16 misses in a row step 2 bytes, after 32 three, ...
SLACK = 64          # spare bytes after every buffer for 8-byte loads and stores
PROBE = 4096        # after this many bytes of a plane ...
GIVE_UP = 0.55      # ... a plane whose stream is larger than this share of them so far
                    # is emitted as literals from there on (short matches cost time)
REPROBE = 15        # a plane given up is emitted as literals in this many next chunks
                    # before it is searched (probed) again


@intrinsic
def load8(typingctx, arr, idx):
    """The 8 bytes of uint8 array ``arr`` at byte ``idx`` as a little-endian uint64
    (any alignment; no bounds check: the caller keeps ``idx + 8`` inside the buffer)."""
    sig = types.uint64(arr, types.intp)

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        ptr = builder.gep(ary.data, [args[1]])
        return builder.load(builder.bitcast(ptr, ir.IntType(64).as_pointer()), align=1)
    return sig, codegen


@intrinsic
def store8(typingctx, arr, idx, val):
    """Store uint64 ``val`` little-endian at byte ``idx`` of uint8 array ``arr``."""
    sig = types.void(arr, types.intp, types.uint64)

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        ptr = builder.gep(ary.data, [args[1]])
        builder.store(args[2], builder.bitcast(ptr, ir.IntType(64).as_pointer()), align=1)
        return context.get_dummy_value()
    return sig, codegen


@njit(cache=True, nogil=True, boundscheck=False, inline="always")
def _literals(src, a, b, dst, op, cap):
    """Emit src[a:b] as literal runs of <= 32 bytes (copied 8 bytes at a time; up to 31
    bytes past the last are written and later overwritten); return the new op or -1."""
    while a < b:
        k = min(b - a, 32)
        if op + 33 > cap:
            return -1
        dst[op] = k - 1
        store8(dst, op + 1, load8(src, a))
        store8(dst, op + 9, load8(src, a + 8))
        store8(dst, op + 17, load8(src, a + 16))
        store8(dst, op + 25, load8(src, a + 24))
        op += 1 + k
        a += k
    return op


@njit(cache=True, nogil=True, boundscheck=False)
def _is_constant(src, s, e):
    """Whether src[s:e] holds one repeated byte (32 bytes compared per step, a verdict
    every 256)."""
    word = np.uint64(src[s]) * np.uint64(0x0101010101010101)
    i = s
    while i + 256 <= e:
        acc = np.uint64(0)
        for j in range(i, i + 256, 32):
            acc |= (load8(src, j) ^ word) | (load8(src, j + 8) ^ word) \
                | (load8(src, j + 16) ^ word) | (load8(src, j + 24) ^ word)
        if acc != 0:
            return False
        i += 256
    while i < e:
        if src[i] != src[s]:
            return False
        i += 1
    return True


@njit(cache=True, nogil=True, boundscheck=False)
def _encode_run(src, s, e, dst, op, cap):
    """A plane of one repeated byte: one literal, then distance-1 back-references (the
    264-byte ones are the same three bytes each)."""
    if op + 2 + 3 * ((e - s) // MAX_LEN + 1) + 33 > cap:
        return -1
    dst[op] = 0
    dst[op + 1] = src[s]
    op += 2
    i = s + 1
    while e - i >= MAX_LEN:  # ctrl 7 << 5 | 0, length - 9 = 255, distance - 1 = 0
        dst[op] = 0xE0
        dst[op + 1] = 0xFF
        dst[op + 2] = 0
        op += 3
        i += MAX_LEN
    k = e - i
    if k >= 9:
        dst[op] = 0xE0
        dst[op + 1] = k - 9
        dst[op + 2] = 0
        op += 3
    elif k >= 3:
        dst[op] = (k - 2) << 5
        dst[op + 1] = 0
        op += 2
    elif k > 0:
        dst[op] = k - 1
        for j in range(k):
            dst[op + 1 + j] = src[s]
        op += 1 + k
    return op


@njit(cache=True, nogil=True, boundscheck=False, inline="always")
def _bits_at(bits, i):
    """57 or more bytes of a bit plane from byte ``i`` on, one bit each (LSB first)."""
    return load8(bits, i >> 3) >> np.uint64(i & 7)


@njit(cache=True, nogil=True, boundscheck=False, inline="always")
def _bits_step(bits, src, s, ip, lit, lim, tab, out, op, cap):
    """One step of the bit-plane matcher at plane byte ``ip`` (matches end by ``lim``):
    a back-reference (after the literals pending since ``lit``) or one more pending
    literal; returns ``(ip, lit, op)``, op -1 when ``out`` is out of room."""
    low57 = np.uint64((1 << 56) - 1)
    stop = np.uint64(1 << 56)
    w = _bits_at(bits, ip)
    key = np.intp(w & np.uint64(0xFF))
    cand = tab[key]
    tab[key] = ip
    if ip - cand > MAX_OFF:  # never seen, or too far: a literal
        return ip + 1, lit, op
    maxlen = min(lim - ip, MAX_LEN)
    length = np.intp(trailing_zeros(((_bits_at(bits, cand) ^ w) & low57) | stop))
    more = length == 56
    while more and length < maxlen:  # all 56 bytes equal: compare the next 56
        x = _bits_at(bits, cand + length) ^ _bits_at(bits, ip + length)
        step = np.intp(trailing_zeros((x & low57) | stop))
        length += step
        more = step == 56
    length = min(length, maxlen)
    while lit < ip:  # literal runs of <= 32 bytes, copied 8 bytes at a time
        k = min(ip - lit, 32)
        if op + 33 > cap:
            return ip, lit, -1
        out[op] = k - 1
        store8(out, op + 1, load8(src, s + lit))
        store8(out, op + 9, load8(src, s + lit + 8))
        store8(out, op + 17, load8(src, s + lit + 16))
        store8(out, op + 25, load8(src, s + lit + 24))
        op += 1 + k
        lit += k
    if op + 3 > cap:
        return ip, lit, -1
    off = np.uint64(ip - cand - 1)
    ln = np.uint64(length - 2)
    long = ln >= np.uint64(7)
    head = (min(ln, np.uint64(7)) << np.uint64(5)) | (off >> np.uint64(8))
    lowoff = off & np.uint64(0xFF)
    rest = ((ln - np.uint64(7)) | (lowoff << np.uint64(8))) if long else lowoff
    store8(out, op, head | (rest << np.uint64(8)))
    op += 2 + np.intp(long)
    ip += length
    return ip, ip, op


@njit(cache=True, nogil=True, boundscheck=False)
def _encode_bits(src, s, e, dst, op, cap):
    """LZF-encode src[s:e], a plane whose bytes are all 0 or 1 (p), after dst[:op]; the
    new op, or -1 when out of room.

    The plane is packed into a bit array (8 bytes -> 1 by one multiply), so the next 8
    bytes at any position are an exact 8-bit key and a match's length is the trailing
    zeros of the XOR of two 64-bit words: a 256-entry table of the last position of each
    key finds an 8-byte match almost everywhere (no hash, no verification), each step
    emits one back-reference, and the search never steps byte by byte through misses.
    A step's time is the latency of its chain of dependent loads, so the two halves of
    a plane of 4 KiB or more are matched in one loop, one step of each in turn (the second half into a
    scratch stream, its table seeded with the 2 KiB before it; its references may reach
    into the first half), and the second stream is appended to the first."""
    n = e - s
    bits = np.zeros((n >> 3) + 24, np.uint8)  # zeros past the end: lengths stop there
    magic = np.uint64(0x0102040810204080)     # bit 0 of byte k -> bit 56 + k
    low = np.uint64(0x0101010101010101)
    j = 0
    while j + 8 <= n:
        bits[j >> 3] = np.uint8(((load8(src, s + j) & low) * magic) >> np.uint64(56))
        j += 8
    while j < n:
        bits[j >> 3] |= np.uint8(src[s + j] << (j & 7))
        j += 1
    h = n // 2 if n >= 4096 else n  # a short plane: one chain (each starts cold)
    ta = np.full(256, -(1 << 30), np.int64)
    tb = np.full(256, -(1 << 30), np.int64)
    for i in range(max(0, h - 2048), h - 8):  # keys wholly before the second half
        tb[np.intp(_bits_at(bits, i) & np.uint64(0xFF))] = i
    nb = n - h
    tmp = np.empty(nb + nb // 32 + 64 + SLACK, np.uint8)
    capb = tmp.shape[0] - SLACK
    ipa, lita, opa = 0, 0, op
    ipb, litb, opb = h, h, 0
    while ipa + 8 <= h and ipb + 8 <= n:
        ipa, lita, opa = _bits_step(bits, src, s, ipa, lita, h, ta, dst, opa, cap)
        ipb, litb, opb = _bits_step(bits, src, s, ipb, litb, n, tb, tmp, opb, capb)
        if opa < 0 or opb < 0:
            return -1
    while ipa + 8 <= h:
        ipa, lita, opa = _bits_step(bits, src, s, ipa, lita, h, ta, dst, opa, cap)
        if opa < 0:
            return -1
    while ipb + 8 <= n:
        ipb, litb, opb = _bits_step(bits, src, s, ipb, litb, n, tb, tmp, opb, capb)
        if opb < 0:
            return -1
    opa = _literals(src, s + lita, s + h, dst, opa, cap)
    if opa < 0:
        return -1
    opb = _literals(src, s + litb, e, tmp, opb, capb)
    if opb < 0 or opa + opb > cap:
        return -1
    dst[opa:opa + opb] = tmp[:opb]
    return opa + opb


@njit(cache=True, nogil=True, boundscheck=False)
def _min_match(src, s, e):
    """The shortest match worth searching for in src[s:e]: about 12 bits of the plane's
    values (all bytes below 2: 8 bytes; below 4: 6; below 8: 4; else 3)."""
    acc = np.uint64(0)
    i = s
    while i + 8 <= e:
        acc |= load8(src, i)
        i += 8
    while i < e:
        acc |= np.uint64(src[i])
        i += 1
    acc |= acc >> np.uint64(32)
    acc |= acc >> np.uint64(16)
    acc |= acc >> np.uint64(8)
    top = acc & np.uint64(0xFF)
    if top < 2:
        return 8
    if top < 4:
        return 7
    if top < 8:
        return 4
    return 3


@njit(cache=True, nogil=True, boundscheck=False)
def _encode_plane(src, s, e, dst, op, cap, htab, gbase, skip, plane):
    """LZF-encode the plane src[s:e] after dst[:op]; the new op, or -1 when out of room.
    ``htab`` holds positions plus ``gbase``: entries below ``gbase + s`` belong to older
    planes or chunks and are ignored.  ``skip[plane]``: this plane's state across chunks: the
    number of chunks it is still emitted as literals without a search (set to
    ``REPROBE`` when the search gives up on it)."""
    if e - s < 1:
        return op
    if _is_constant(src, s, e):
        return _encode_run(src, s, e, dst, op, cap)
    if skip[plane] > 0:  # given up in a recent chunk: literals, no probe
        skip[plane] -= 1
        return _literals(src, s, e, dst, op, cap)
    m = _min_match(src, s, e)
    if m == 8:  # bytes of 0 and 1
        return _encode_bits(src, s, e, dst, op, cap)
    mask = np.uint64(0xFFFFFFFFFFFFFFFF) >> np.uint64(64 - 8 * m)
    shift = np.uint64(64 - HASH_BITS)
    ip = s
    lit = s
    miss = 0
    lo = gbase + s
    op0 = op
    probe = s + PROBE
    while ip + m <= e:
        if ip >= probe:  # once: is this plane worth the search?
            probe = e
            if op - op0 + (ip - lit) > GIVE_UP * (ip - s):  # pending literals count
                skip[plane] = REPROBE
                break
        v = load8(src, ip) & mask
        ref = ip - 1
        if ip == s or (load8(src, ref) & mask) != v:
            h = np.intp((v * np.uint64(0x9E3779B97F4A7C15)) >> shift)
            cand = np.intp(htab[h])
            htab[h] = gbase + ip
            # a candidate from another plane or chunk, or too far: a miss (the unsigned
            # compare also refuses any entry at or after ip)
            if cand < lo or np.uint64(gbase + ip - cand - 1) >= np.uint64(MAX_OFF) or \
                    (load8(src, cand - gbase) & mask) != v:
                miss += 1
                ip += 1 + (miss >> SKIP_SHIFT)
                continue
            ref = cand - gbase
        # (written out here, not called: a call passing arrays costs two atomic
        # reference-count updates per match, which doubled the time of a plane)
        maxlen = min(e - ip, MAX_LEN)
        length = m
        while length < maxlen:  # extend 8 bytes at a time
            x = load8(src, ref + length) ^ load8(src, ip + length)
            if x != 0:
                length += trailing_zeros(x) >> 3
                break
            length += 8
        length = min(length, maxlen)
        while lit < ip:  # literal runs of <= 32 bytes, copied 8 bytes at a time
            k = min(ip - lit, 32)
            if op + 33 > cap:
                return -1
            dst[op] = k - 1
            store8(dst, op + 1, load8(src, lit))
            store8(dst, op + 9, load8(src, lit + 8))
            store8(dst, op + 17, load8(src, lit + 16))
            store8(dst, op + 25, load8(src, lit + 24))
            op += 1 + k
            lit += k
        if op + 3 > cap:
            return -1
        # the back-reference: 2 or 3 bytes, one 8-byte store without a branch
        off = np.uint64(ip - ref - 1)
        ln = np.uint64(length - 2)
        long = ln >= np.uint64(7)
        head = (min(ln, np.uint64(7)) << np.uint64(5)) | (off >> np.uint64(8))
        low = off & np.uint64(0xFF)
        rest = ((ln - np.uint64(7)) | (low << np.uint64(8))) if long else low
        store8(dst, op, head | (rest << np.uint64(8)))
        op += 2 + np.intp(long)
        ip += length
        lit = ip
        miss = 0
    return _literals(src, lit, e, dst, op, cap)


@njit(cache=True, nogil=True, boundscheck=False)
def encode_planes(src, s, ps, nplanes, n, dst, htab, gbase, skip, k0):
    """The LZF stream of ``nplanes`` planes of ``n`` bytes, plane ``b`` at
    ``src[s + b * ps:]``, into ``dst``; its length.  Falls back to literal runs when the
    stream would not fit (never writes past ``len(dst) - SLACK`` plus the spare bytes).
    ``skip[k0 + b]`` is plane ``b``'s state across chunks (see ``_encode_plane``)."""
    cap = dst.shape[0] - SLACK
    op = 0
    for b in range(nplanes):
        a = s + b * ps
        op = _encode_plane(src, a, a + n, dst, op, cap, htab, gbase, skip, k0 + b)
        if op < 0:
            break
    if op >= 0:
        return op
    op = 0
    for b in range(nplanes):
        op = _literals(src, s + b * ps, s + b * ps + n, dst, op, cap)
        if op < 0:  # no room even for literals: the caller's buffer is too small
            return -1
    return op


@njit(cache=True, nogil=True, boundscheck=False)
def shuffle_into(raw, n, size, ps, planes):
    """Byte ``b`` of element ``i`` (``raw``: ``n`` elements of ``size`` bytes, contiguous)
    to ``planes[b * ps + i]``."""
    for i in range(n):
        for b in range(size):
            planes[b * ps + i] = raw[i * size + b]


def plane_stride(chunk: int) -> int:
    """Planes ``chunk`` bytes long laid out this far apart: not a multiple of 4 KiB (13
    stores a multiple of 4 KiB apart fight over one set of the L1 cache: 5x slower)."""
    ps = chunk + (-chunk) % 64 + 320
    return ps + 64 if ps % 4096 == 0 else ps


@intrinsic
def _transpose16(typingctx, rec, off, planes, ps, pos):
    """16 records of 13 bytes at ``rec[off:]`` to 16 bytes of each of the 13 planes at
    ``planes[b * ps + pos:]`` (one 208-byte vector load, 13 byte shuffles and stores,
    which LLVM lowers to SIMD shuffles: 8x faster than byte by byte)."""
    sig = types.void(rec, types.intp, planes, types.intp, types.intp)

    def codegen(context, builder, signature, args):
        r = context.make_array(signature.args[0])(context, builder, args[0])
        p = context.make_array(signature.args[2])(context, builder, args[2])
        i8, i64 = ir.IntType(8), ir.IntType(64)
        vt = ir.VectorType(i8, 208)
        vec = builder.load(builder.bitcast(builder.gep(r.data, [args[1]]), vt.as_pointer()),
                           align=1)
        v16 = ir.VectorType(i8, 16)
        for b in range(13):
            mask = ir.Constant(ir.VectorType(ir.IntType(32), 16), [b + 13 * j for j in range(16)])
            plane = builder.shuffle_vector(vec, ir.Constant(vt, None), mask)
            at = builder.add(builder.mul(args[3], ir.Constant(i64, b)), args[4])
            builder.store(plane, builder.bitcast(builder.gep(p.data, [at]), v16.as_pointer()),
                          align=1)
        return context.get_dummy_value()
    return sig, codegen


@njit(cache=True, nogil=True, boundscheck=False)
def records_to_planes(rec, n, chunk, ps, planes):
    """The 13 byte planes of ``n`` event records (``rec``: contiguous uint8; x u2 at 0,
    y u2 at 2, t i8 at 4, p u1 at 12): plane ``b`` at ``planes[b * ps:]``, records
    ``n .. chunk`` zeros (a partial last chunk)."""
    i = 0
    while i + 16 <= n:
        _transpose16(rec, i * 13, planes, ps, i)
        i += 16
    for j in range(i, n):
        for b in range(13):
            planes[b * ps + j] = rec[j * 13 + b]
    for b in range(13):
        for j in range(n, chunk):
            planes[b * ps + j] = 0


@njit(cache=True, nogil=True, boundscheck=False)
def encode_records(rec, n, chunk, ps, planes, out, sizes, htab, gbase, skip):
    """Encode one chunk of event records (``rec``: ``n <= chunk`` records as uint8) into
    ``out[k]`` for the columns x, y, t, p; ``sizes[k]``: the stream lengths.  ``skip``:
    the 13 planes' state across chunks (see ``_encode_plane``)."""
    records_to_planes(rec, n, chunk, ps, planes)
    sizes[0] = encode_planes(planes, 0, ps, 2, chunk, out[0], htab, gbase, skip, 0)
    sizes[1] = encode_planes(planes, 2 * ps, ps, 2, chunk, out[1], htab, gbase, skip, 2)
    sizes[2] = encode_planes(planes, 4 * ps, ps, 8, chunk, out[2], htab, gbase, skip, 4)
    sizes[3] = encode_planes(planes, 12 * ps, ps, 1, chunk, out[3], htab, gbase, skip, 12)
