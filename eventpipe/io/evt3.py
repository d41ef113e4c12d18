"""Prophesee RAW EVT 3.0 (16-bit little-endian words after a ``%`` header).

Word layout (Prophesee "EVT 3.0 format" spec; openeb ``evt3_event_types.h``), type in
bits 15..12, a stateful encoding:

- ``0x0`` EVT_ADDR_Y: y = bits [10:0] (bit 11: system type, ignored);
- ``0x2`` EVT_ADDR_X: one CD event at x = [10:0], polarity = bit 11, current y and t;
- ``0x3`` VECT_BASE_X: vector base x = [10:0], vector polarity = bit 11;
- ``0x4`` VECT_12 / ``0x5`` VECT_8: a 12 (8) bit mask; bit i set = an event at
  x = base + i; the base then advances by 12 (8);
- ``0x6`` EVT_TIME_LOW: replaces timestamp bits 11..0;
- ``0x8`` EVT_TIME_HIGH: timestamp bits 23..12, low bits cleared;
- ``0x7`` CONTINUED_4, ``0xA`` EXT_TRIGGER, ``0xE`` OTHERS, ``0xF`` CONTINUED_12: skipped;
- ``0x1``, ``0x9``, ``0xB``-``0xD`` are undefined: damage (field ``type``).

Timestamps follow openeb's EVT 3.0 decoder (the semantics the expected arrays encode):
every word before the first TIME_HIGH is skipped; TIME_HIGH sets ``t = high << 12``; a
TIME_HIGH that falls by ``(4095 - 10) << 12`` µs or more counts a 2**24 µs wrap (smaller
backward steps, and TIME_LOW stepping back, are kept as they are).  Every word is
self-contained, so byte blocks only need 2-byte alignment; the decoder state (y, vector
base and polarity, time high/low, wraps) is carried across blocks.

A CD event outside the geometry from the header or the camera table (else outside the
11-bit address space) is damage, reported at the word that produced it.
"""

from __future__ import annotations

import numba
import numpy as np

from eventpipe.io.prophesee.words import RawEvtReader, encode_raw
from eventpipe.io.evt2 import emit_time_high

TH_BITS = 12
LOOP_US = 1 << 24
MAX_BASE = ((1 << TH_BITS) - 1) << 12
LOOP_THRESHOLD = 10 << 12
ERR_TYPE, ERR_X, ERR_Y = 1, 2, 3
_ERR_FIELD = {ERR_TYPE: "type", ERR_X: "x", ERR_Y: "y"}
# state slots: 0 error code, 1 error word, 2 seen TIME_HIGH, 3 time base, 4 t, 5 loops,
# 6 y, 7 vector base x, 8 vector polarity
STATE_SIZE = 9


@numba.njit(cache=True, nogil=True)
def _decode_words(words, start, out, state, w_lim, h_lim):
    """Decode ``words[start:]`` into ``out`` until the words end, ``out`` is full or
    damage.  Returns ``(events written, next word index)``."""
    i = start
    nw = words.shape[0]
    if not state[2]:                        # skip every word before the first TIME_HIGH
        while i < nw and (words[i] >> 12) != 8:
            i += 1
        if i == nw:
            return 0, i
        state[3] = np.int64(words[i] & 0xFFF) << 12
        state[4] = state[3]
        state[2] = 1
        i += 1
    tbase = state[3]
    t = state[4]
    loops = state[5]
    y = state[6]
    base = state[7]
    pol = state[8]
    cap = out.shape[0]
    n = 0
    while i < nw:
        v = words[i]
        ty = v >> 12
        if ty <= 2 and ty != 1:
            # EVT_ADDR_X (2) and EVT_ADDR_Y (0), 80 % of the words, share one branch: the
            # record is always written and n advances only for ADDR_X (fewer mispredictions)
            if n >= cap:
                break
            a = v & 0x7FF
            is_x = ty >> 1
            if is_x == 0:
                y = a
            if (is_x & (a >= w_lim)) | ((1 - is_x) & (a >= h_lim)):
                state[0] = ERR_X if is_x else ERR_Y
                state[1] = i
                break
            e = out[n]
            e.x = a
            e.y = y
            e.t = t
            e.p = (v >> 11) & 1
            n += is_x
        elif ty == 4 or ty == 5:            # VECT_12 / VECT_8
            if ty == 4:
                m = v & 0xFFF
                width = 12
            else:
                m = v & 0xFF
                width = 8
            if m:
                c = m - ((m >> 1) & 0x555)       # popcount (12 bits)
                c = (c & 0x333) + ((c >> 2) & 0x333)
                c = (c + (c >> 4)) & 0x0F0F
                if n + (c & 0xF) + (c >> 8) > cap:
                    break
                if base + width > w_lim and base + 16 - _clz16(m) > w_lim:
                    state[0] = ERR_X
                    state[1] = i
                    break
                k = 0
                while m:
                    if m & 1:
                        e = out[n]
                        e.x = base + k
                        e.y = y
                        e.t = t
                        e.p = pol
                        n += 1
                    m >>= 1
                    k += 1
            base += width
        elif ty == 6:                       # EVT_TIME_LOW
            t = tbase | (v & 0xFFF)
        elif ty == 3:                       # VECT_BASE_X
            base = v & 0x7FF
            pol = (v >> 11) & 1
        elif ty == 8:                       # EVT_TIME_HIGH
            nb = (np.int64(v & 0xFFF) << 12) + loops * LOOP_US
            if tbase > nb and tbase - nb >= MAX_BASE - LOOP_THRESHOLD:
                nb += LOOP_US
                loops += 1
            tbase = nb
            t = nb
        elif ty != 7 and ty != 0xA and ty != 0xE and ty != 0xF:
            state[0] = ERR_TYPE
            state[1] = i
            break
        i += 1
    state[3] = tbase
    state[4] = t
    state[5] = loops
    state[6] = y
    state[7] = base
    state[8] = pol
    return n, i


@numba.njit(cache=True, inline="always")
def _clz16(m):
    """Leading zeros of a 16-bit value (m > 0)."""
    c = 0
    while not (m & 0x8000):
        m <<= 1
        c += 1
    return c


class Evt3Reader(RawEvtReader):
    format = "evt3"
    title = "Prophesee RAW EVT 3.0"
    extensions = (".raw",)
    WORD = 2
    WORD_DTYPE = "<u2"
    MAX_PER_WORD = 12
    STATE_SIZE = STATE_SIZE

    ENCODING = "evt3"
    TYPE_NAME = "word type"
    TYPE_SHIFT = 12
    ERR_TYPE = ERR_TYPE
    ERR_FIELD = _ERR_FIELD
    decode_words = staticmethod(_decode_words)


# -- encoder -------------------------------------------------------------------------------

@numba.njit(cache=True)
def _encode_words(x, y, t, p, out):
    """Fill ``out`` with EVT 3.0 words (vectors for runs of increasing x with the same
    t, y and polarity); returns the count or -1 (timestamps not representable)."""
    N = x.shape[0]
    n = 0
    cur = np.int64(-1)           # absolute time high (t >> 12) the decoder holds
    low = np.int64(-1)           # its low 12 bits
    cy = -1
    vb = np.int64(-100)          # decoder's vector base and polarity
    vp = -1
    th_word = np.int64(8) << 12
    i = 0
    while i < N:
        ti = t[i]
        h = ti >> 12
        if h != cur:
            if cur < 0:          # the decoder starts in loop 0
                cur = h if h < (1 << TH_BITS) else 0
                out[n] = th_word | cur
                n += 1
            n, ok = emit_time_high(out, n, cur, h, TH_BITS, th_word, 5 * (N - i))
            if not ok:
                return -1
            if h != cur or low < 0:
                low = 0
            cur = h
        lo = ti & 0xFFF
        if lo != low:
            out[n] = (6 << 12) | lo
            n += 1
            low = lo
        yi = np.int64(y[i])
        if yi != cy:
            out[n] = yi
            n += 1
            cy = yi
        xi = np.int64(x[i])
        pi = np.int64(p[i])
        chain = pi == vp and vb <= xi and xi < vb + 12   # continue the decoder's vector
        b = vb if chain else xi
        j = i + 1
        while (j < N and t[j] == ti and y[j] == y[i] and p[j] == p[i]
               and x[j] > x[j - 1] and x[j] < b + 12):
            j += 1
        if j - i >= 2 or chain:
            if not chain:
                out[n] = (3 << 12) | (pi << 11) | b
                n += 1
            m = 0
            for k in range(i, j):
                m |= 1 << (np.int64(x[k]) - b)
            out[n] = (4 << 12) | m
            n += 1
            vb = b + 12
            vp = pi
            i = j
        else:
            out[n] = (2 << 12) | (pi << 11) | xi
            n += 1
            i += 1
    return n


def encode_evt3(events, sensor_size=None, *, extra_words: int = 1 << 16) -> bytes:
    """Encode events as an EVT 3.0 RAW file (``% evt 3.0``, ``% format EVT3;...``, ``% end``).

    Runs of events with the same t, y and polarity and increasing x within 12 pixels
    become VECT_BASE_X + VECT_12 words.  Timestamps must be >= 0; 2**24 µs wraps are
    encoded as the camera does (two TIME_HIGH words per wrap, at most ``extra_words``);
    a backward step across a wrap is not representable (``ValueError``).
    """
    return encode_raw(events, sensor_size, encoding="evt3", word_dtype="<u2",
                         words_per_event=5, extra_words=extra_words,
                         encode_words=_encode_words, wrap="2**24 µs")
