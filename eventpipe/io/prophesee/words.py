"""The block driver shared by the Prophesee readers: fixed-size words decoded by a Numba
kernel (:class:`WordStreamReader`: DAT, EVT 2.0, EVT 3.0), the RAW EVT reader base
(:class:`RawEvtReader`) and the EVT 2.0 / 3.0 encoder driver (:func:`encode_raw`).

The ``%`` header they read is parsed in :mod:`eventpipe.io.prophesee.header`.
"""

from __future__ import annotations

import abc
import warnings
from typing import Iterator

import numpy as np

from eventpipe.errors import EventFormatError, EventFormatWarning
from eventpipe.events import EVENT_DTYPE, as_events, check_sensor_size
from eventpipe.io.base import EventReader
from eventpipe.io.prophesee.header import declared_encoding, read_header, split_header


class WordStreamReader(EventReader):
    """A reader whose body is fixed-size words decoded by a Numba kernel.

    Subclasses set ``WORD`` (bytes), ``WORD_DTYPE`` and ``MAX_PER_WORD`` (events one
    word can produce) and implement ``_kernel(words, start, out, state) -> (n, next)``:
    decode from word ``start`` into ``out`` until the words end, ``out`` lacks room
    for the next word's events, or damage (``state[ERR]`` set, ``state[ERR_AT]`` = word
    index).  ``_error(code, word)`` turns an error code into an ``EventFormatError``
    message and field.

    ``iter_events``/``blocks`` allocate a fresh output per decoded part; ``read``
    decodes straight into one growing buffer (no per-block copies: numpy copies of the
    packed 13-byte event dtype are slow, ~0.3 GB/s, so we avoid them).
    """

    WORD: int = 4
    WORD_DTYPE: str = "<u4"
    MAX_PER_WORD: int = 1
    STATE_SIZE: int = 8
    ERR, ERR_AT = 0, 1           # state slots for the error code and word index
    _sink: "_Sink | None" = None
    _last_state: "np.ndarray | None" = None

    def __init__(self, path, *, sensor_size=None, on_error: str = "raise",
                 block_bytes: int = 1 << 18):
        # smaller default blocks than the base: the read buffer is reused and stays in cache
        super().__init__(path, sensor_size=sensor_size, on_error=on_error,
                         block_bytes=block_bytes)

    def _first_body_offset(self) -> int:
        return self.data_offset

    def _byte_blocks(self, f, start: int, align: int = 1):
        """As the base, but reads into one reused buffer: the kernels never keep a view of
        the input (every output is a fresh array), so the bytes can be overwritten."""
        f.seek(start)
        offset = start
        size = max(align, (self.block_bytes // align) * align)
        buf = np.empty(size, dtype=np.uint8)
        while True:
            k = f.readinto(memoryview(buf))
            if not k:
                return
            yield offset, buf[:k]
            offset += k

    @abc.abstractmethod
    def _kernel(self, words, start, out, state):
        """Decode ``words[start:]`` into ``out``; returns the Numba kernel's status tuple."""

    @abc.abstractmethod
    def _error(self, code: int, word: int) -> tuple[str, str]:
        """``(message, field)`` for a kernel error ``code`` at ``word``."""

    def _decode(self, chunk: int | None = None) -> Iterator[np.ndarray]:
        """Decode block by block.  ``chunk``: yield arrays of exactly ``chunk`` events
        (the last may be shorter) that the kernel fills directly; each has room for
        ``MAX_PER_WORD - 1`` more, so one word's events always fit, and what spills past
        ``chunk`` moves to the next array."""
        state = np.zeros(self.STATE_SIZE, dtype=np.int64)
        self._last_state = None
        sink = self._sink
        slack = self.MAX_PER_WORD - 1
        out = np.empty(chunk + slack, dtype=EVENT_DTYPE) if chunk else None
        filled = 0
        with self._open() as f:
            for offset, buf in self._byte_blocks(f, self._first_body_offset(), self.WORD):
                nw = buf.shape[0] // self.WORD
                words = buf[: nw * self.WORD].view(self.WORD_DTYPE)
                pos = 0
                while pos < nw:
                    if not chunk:
                        size = max(nw - pos, self.MAX_PER_WORD)
                        out = sink.reserve(size) if sink is not None else \
                            np.empty(size, dtype=EVENT_DTYPE)
                        filled = 0
                    n, pos = self._kernel(words, pos, out[filled:], state)
                    filled += n
                    if chunk:
                        while filled >= chunk:
                            yield out[:chunk]
                            nxt = np.empty(chunk + slack, dtype=EVENT_DTYPE)
                            k = filled - chunk
                            nxt[:k].view(np.uint8)[:] = out[chunk:filled].view(np.uint8)
                            out, filled = nxt, k
                    elif filled:
                        if sink is not None:
                            sink.commit(filled)
                        yield out[:filled]
                        filled = 0
                    if state[self.ERR]:
                        if chunk and filled:
                            yield out[:filled]
                        at = int(state[self.ERR_AT])
                        msg, field = self._error(int(state[self.ERR]), int(words[at]))
                        raise self.error(msg, offset=offset + at * self.WORD, field=field)
                rest = buf.shape[0] - nw * self.WORD
                if rest:
                    if chunk and filled:
                        yield out[:filled]
                    raise self.error(f"truncated: {rest} trailing byte(s) of a {self.WORD}-byte "
                                     "word", offset=offset + nw * self.WORD, field="word")
        if chunk and filled:
            yield out[:filled]
        self._last_state = state

    def iter_events(self, chunk_events: int | None = None, chunk_us: int | None = None
                    ) -> Iterator[np.ndarray]:
        """As :meth:`EventReader.iter_events`; chunks by count alone are decoded straight
        into chunk-sized arrays (no re-batching copies)."""
        if chunk_us is not None or chunk_events is None:
            return super().iter_events(chunk_events=chunk_events, chunk_us=chunk_us)
        if isinstance(chunk_events, bool) or int(chunk_events) != chunk_events \
                or chunk_events <= 0:
            raise ValueError(f"chunk_events must be a positive integer, got {chunk_events!r}")
        return self._policy(self._decode(int(chunk_events)))

    def _policy(self, gen: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        """The base class's ``on_error`` policy (as in :meth:`EventReader.blocks`)."""
        try:
            yield from gen
        except EventFormatError as exc:
            exc = exc.located(path=self.path)
            if self.on_error == "raise":
                raise exc from None
            warnings.warn(str(exc), EventFormatWarning, stacklevel=3)

    def _body_words(self) -> int:
        return max(0, self.file_size - self._first_body_offset()) // self.WORD

    def read(self) -> np.ndarray:
        """All events, decoded into a single buffer (see class docstring)."""
        self._sink = _Sink(self._body_words() + self.MAX_PER_WORD)
        try:
            for _ in self.blocks():
                pass
        except EventFormatError as exc:
            exc.partial = self._sink.result()
            raise
        finally:
            sink, self._sink = self._sink, None
        out = sink.result()
        self._infer_size(out)
        return out


class _Sink:
    """One growing event buffer that ``read`` decodes into."""

    def __init__(self, capacity: int):
        self.buf = np.empty(max(int(capacity), 16), dtype=EVENT_DTYPE)
        self.n = 0

    def reserve(self, k: int) -> np.ndarray:
        need = self.n + k
        if need > self.buf.shape[0]:
            new = np.empty(max(need, 2 * self.buf.shape[0]), dtype=EVENT_DTYPE)
            new.view(np.uint8)[: self.n * EVENT_DTYPE.itemsize] = \
                self.buf.view(np.uint8)[: self.n * EVENT_DTYPE.itemsize]
            self.buf = new
        return self.buf[self.n:]

    def commit(self, k: int) -> None:
        self.n += k

    def result(self) -> np.ndarray:
        if 2 * self.n >= self.buf.shape[0]:
            return self.buf[: self.n]
        out = np.empty(self.n, dtype=EVENT_DTYPE)   # mostly empty: give the memory back
        out.view(np.uint8)[:] = self.buf.view(np.uint8)[: self.n * EVENT_DTYPE.itemsize]
        return out


class RawEvtReader(WordStreamReader):
    """EVT 2.0 / 3.0 RAW files: the ``%`` header names the encoding, a Numba kernel
    decodes the words.  Subclasses set ``ENCODING``, ``decode_words`` (the kernel,
    ``(words, start, out, state, W, H) -> (n, next)``), ``ERR_TYPE`` / ``ERR_FIELD``
    and how an undefined word is described (``TYPE_SHIFT``, ``TYPE_NAME``)."""

    ENCODING: str = ""
    TYPE_NAME: str = "word type"
    TYPE_SHIFT: int = 28
    ERR_TYPE: int = 1
    ERR_FIELD: dict = {}
    decode_words = None  # a Numba kernel (staticmethod in subclasses)

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        h = split_header(head)
        return bool(h.lines) and declared_encoding(h) == cls.ENCODING

    def _parse_header(self) -> None:
        read_header(self)
        self._limits = self.info.sensor_size or (2048, 2048)

    def _kernel(self, words, start, out, state):
        return type(self).decode_words(words, start, out, state, *self._limits)

    def _error(self, code: int, word: int) -> tuple[str, str]:
        field = self.ERR_FIELD[code]
        digits = 2 * self.WORD
        if code == self.ERR_TYPE:
            return (f"undefined {self.title.removeprefix('Prophesee RAW ')} {self.TYPE_NAME} "
                    f"0x{word >> self.TYPE_SHIFT:x} (word 0x{word:0{digits}x})", field)
        return (f"CD event {field} outside the sensor {self._limits} (word 0x{word:0{digits}x})",
                field)


def encode_raw(events, sensor_size, *, encoding: str, word_dtype: str, words_per_event: int,
               extra_words: int, encode_words, wrap: str) -> bytes:
    """Shared EVT 2.0 / 3.0 encoder driver: validate, run the Numba word encoder
    ``encode_words(x, y, t, p, out) -> n`` (``n < 0``: timestamps not representable),
    prepend the ``% evt`` / ``% format`` header."""
    name = f"encode_{encoding}"
    ev = as_events(events)
    if sensor_size is not None:
        w, h = check_sensor_size(sensor_size)
    elif len(ev):
        w, h = int(ev["x"].max()) + 1, int(ev["y"].max()) + 1
    else:
        w, h = 1, 1
    if len(ev) and (ev["x"].max() >= min(w, 2048) or ev["y"].max() >= min(h, 2048)):
        raise ValueError(f"{name}: coordinates must be < 2048 and inside sensor_size")
    if len(ev) and ev["t"].min() < 0:
        raise ValueError(f"{name}: timestamps must be >= 0")
    cols = [np.ascontiguousarray(ev[f]) for f in ("x", "y", "t", "p")]
    out = np.empty(words_per_event * len(ev) + 4 + extra_words, dtype=word_dtype)
    n = encode_words(*cols, out)
    if n < 0:
        raise ValueError(f"{name}: timestamps not representable (a backward step across a "
                         f"{wrap} wrap, or more wraps than extra_words allows)")
    version = encoding[-1]
    header = (f"% evt {version}.0\n% format EVT{version};height={h};width={w}\n% end\n").encode()
    return header + out[:n].tobytes()
