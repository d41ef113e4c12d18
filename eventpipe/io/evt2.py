"""Prophesee RAW EVT 2.0 (32-bit little-endian words after a ``%`` header).

Word layout (Prophesee "EVT 2.0 format" spec; openeb ``evt2_event_types.h``), type in
bits 31..28:

- ``0x0`` CD_OFF / ``0x1`` CD_ON: timestamp low bits [27:22] (6 bits), x [21:11], y [10:0];
- ``0x8`` EV_TIME_HIGH: bits [27:0] are timestamp bits 33..6 (``t_high = value << 6``);
- ``0xA`` EXT_TRIGGER, ``0xE`` OTHERS, ``0xF`` CONTINUED: not CD events, skipped;
- any other type is not defined by the spec: damage (field ``type``).

Timestamps follow the vendor decoder (openeb EVT2 decoder): events before the first
TIME_HIGH are dropped (expelliarmus keeps them with ``t_high = 0``); a TIME_HIGH that
falls back by at least ``MAX_BASE - 10 << 6`` µs counts a 2**34 µs wrap; smaller
backward steps are kept as they are.

Coordinates are checked against the geometry from the header or the camera table
(not against a caller's or an inferred size): x or y outside it is damage.
"""

from __future__ import annotations

import numba
import numpy as np

from eventpipe.io.prophesee.words import RawEvtReader, encode_raw

WORD = 4
TH_BITS = 28
LOOP_US = 1 << (TH_BITS + 6)                      # 2**34 µs
MAX_BASE = ((1 << TH_BITS) - 1) << 6
LOOP_THRESHOLD = 10 << 6
ERR_NONE, ERR_TYPE, ERR_X, ERR_Y = 0, 1, 2, 3
_ERR_FIELD = {ERR_TYPE: "type", ERR_X: "x", ERR_Y: "y"}


@numba.njit(cache=True, nogil=True)
def _decode_words(words, start, out, state, w_lim, h_lim):
    """Decode ``words[start:]`` into ``out`` until the words end, ``out`` is full or
    damage.  ``state = [error_code, error_word_index, seen_time_high, time_base, loops]``.
    Returns ``(events written, next word)``."""
    i = start
    # one word gives at most one event: bounding the words bounds the events
    end = min(words.shape[0], start + out.shape[0])
    if not state[2]:                        # skip every word before the first TIME_HIGH
        while i < end and (words[i] >> 28) != 8:
            i += 1
        if i == end:
            return 0, i
        state[3] = np.int64(words[i] & 0xFFFFFFF) << 6
        state[2] = 1
        i += 1
    tbase = state[3]
    loops = state[4]
    n = 0
    while i < end:
        v = words[i]
        ty = v >> 28
        if ty <= 1:
            x = (v >> 11) & 0x7FF
            y = v & 0x7FF
            if (x >= w_lim) | (y >= h_lim):
                state[0] = ERR_X if x >= w_lim else ERR_Y
                state[1] = i
                break
            e = out[n]
            e.x = x
            e.y = y
            e.t = tbase + ((v >> 22) & 63)
            e.p = ty
            n += 1
        elif ty == 8:
            nb = (np.int64(v & 0xFFFFFFF) << 6) + loops * LOOP_US
            if tbase > nb and tbase - nb >= MAX_BASE - LOOP_THRESHOLD:
                nb += LOOP_US
                loops += 1
            tbase = nb
        elif ty != 0xA and ty != 0xE and ty != 0xF:
            state[0] = ERR_TYPE
            state[1] = i
            break
        i += 1
    state[3] = tbase
    state[4] = loops
    return n, i


class Evt2Reader(RawEvtReader):
    format = "evt2"
    title = "Prophesee RAW EVT 2.0"
    extensions = (".raw",)
    WORD = 4
    WORD_DTYPE = "<u4"
    MAX_PER_WORD = 1

    ENCODING = "evt2"
    TYPE_NAME = "event type"
    TYPE_SHIFT = 28
    ERR_TYPE = ERR_TYPE
    ERR_FIELD = _ERR_FIELD
    decode_words = staticmethod(_decode_words)


# -- encoder -------------------------------------------------------------------------------

@numba.njit(cache=True)
def emit_time_high(out, n, cur, h, bits, th_word, reserve):
    """Append TIME_HIGH words (``th_word | value``) that move a vendor decoder's absolute
    time high (t >> low bits, wraps included) from ``cur`` to ``h``.

    The decoder counts a wrap when the time high falls by ``2**bits - 11`` or more, so a
    wrap is crossed as ``..., 2**bits - 1, 0``; a same-loop fall that large, or any fall
    into an earlier loop, is not representable.  Keeps ``reserve`` free slots at the end
    of ``out``.  Returns ``(n, ok)``.
    """
    loop = np.int64(1) << bits
    mask = loop - 1
    if (h >> bits) != (cur >> bits):
        if h < cur:
            return n, False
        while (cur >> bits) != (h >> bits):
            if n + 3 + reserve > out.shape[0]:
                return n, False
            last = ((cur >> bits) << bits) + mask
            if cur != last:
                out[n] = th_word | (last & mask)
                n += 1
            cur = last + 1
            out[n] = th_word
            n += 1
    elif cur - h >= loop - 11:
        return n, False
    if h != cur:
        out[n] = th_word | (h & mask)
        n += 1
    return n, True


@numba.njit(cache=True)
def _encode_words(x, y, t, p, out):
    """Fill ``out`` with EVT 2.0 words; returns the count or -1 when the timestamps
    cannot be represented (see :func:`encode_evt2`)."""
    n = 0
    cur = np.int64(-1)                       # absolute time high (t >> 6) last emitted
    th_word = np.int64(8) << 28
    for i in range(x.shape[0]):
        h = t[i] >> 6
        if h != cur:
            if cur < 0:                      # the decoder starts in loop 0
                cur = h if h < (1 << TH_BITS) else 0
                out[n] = th_word | cur
                n += 1
            n, ok = emit_time_high(out, n, cur, h, TH_BITS, th_word, 2 * (x.shape[0] - i))
            if not ok:
                return -1
            cur = h
        out[n] = ((np.uint32(p[i]) << 28) | (np.uint32(t[i] & 63) << 22)
                  | (np.uint32(x[i]) << 11) | np.uint32(y[i]))
        n += 1
    return n


def encode_evt2(events, sensor_size=None, *, extra_words: int = 1 << 16) -> bytes:
    """Encode events as an EVT 2.0 RAW file (header with ``% format EVT2;...`` and ``% end``).

    Timestamps must be >= 0; wraps of the 34-bit time (every 2**34 µs) are encoded as the
    camera does (TIME_HIGH stepping through the loop boundary, two words per wrap, at
    most ``extra_words`` in all).  A backward step across a wrap is not representable:
    ``ValueError``.  x and y must be < 2048.
    """
    return encode_raw(events, sensor_size, encoding="evt2", word_dtype="<u4",
                         words_per_event=2, extra_words=extra_words,
                         encode_words=_encode_words, wrap="2**34 µs")
