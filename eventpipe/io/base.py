"""The reader base class every format implements.

A reader parses its header on construction (so ``info`` is available at once)
and decodes the body in bounded blocks through :meth:`EventReader._decode`.
Damage is reported by raising :class:`EventFormatError` *after* yielding the
events decoded before it; the ``on_error`` policy then decides whether the
caller sees the error (``"raise"``) or a warning and a clean stop (``"warn"``).
"""

from __future__ import annotations

import abc
import os
import warnings
from pathlib import Path
from typing import BinaryIO, ClassVar, Iterator

import numpy as np

from eventpipe.errors import EventFormatError, EventFormatWarning
from eventpipe.events import EVENT_DTYPE, EventStats, RecordingInfo, check_sensor_size
from eventpipe.io.chunking import concat, rebatch

ON_ERROR = ("raise", "warn")
DEFAULT_BLOCK_BYTES = 1 << 22  # 4 MiB of file per decoded block


class EventReader(abc.ABC):
    """Base class: one instance reads one recording.

    Subclasses set ``format`` and ``title``, implement :meth:`sniff` (content
    detection from the first bytes), :meth:`_parse_header` (fills
    ``self.info``, may set ``self.data_offset``) and :meth:`_decode` (yields
    EVENT_DTYPE arrays, each a fresh buffer).
    """

    format: ClassVar[str] = ""
    title: ClassVar[str] = ""
    extensions: ClassVar[tuple[str, ...]] = ()

    def __init__(self, path: str | os.PathLike, *, sensor_size=None, on_error: str = "raise",
                 block_bytes: int = DEFAULT_BLOCK_BYTES):
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
        if int(block_bytes) < 64:
            raise ValueError(f"block_bytes must be >= 64, got {block_bytes}")
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"no such recording: {self.path}")
        if self.path.is_dir():
            raise EventFormatError("is a directory, not a recording", path=self.path)
        if not self.path.is_file():
            from eventpipe.io.formats import NOT_A_FILE
            raise EventFormatError(NOT_A_FILE, path=self.path)
        self.on_error = on_error
        self.block_bytes = int(block_bytes)
        self.data_offset = 0
        self.file_size = self.path.stat().st_size
        self.info = RecordingInfo(path=str(self.path), format=self.format)
        self._parse_header()
        if sensor_size is not None:
            self.info.sensor_size = check_sensor_size(sensor_size)
            self.info.sensor_size_source = "caller"

    # -- to implement -------------------------------------------------------
    @staticmethod
    def sniff(head: bytes) -> bool:  # pragma: no cover - overridden
        """True when ``head`` (the file's first bytes) looks like this format."""
        return False

    def _parse_header(self) -> None:
        """Read the header; fill ``self.info``; set ``self.data_offset``."""

    def _decode(self) -> Iterator[np.ndarray]:  # pragma: no cover - overridden
        """Yield the events in file order, block by block."""
        raise EventFormatError("reader does not implement decoding", path=self.path)

    # -- helpers for subclasses --------------------------------------------
    def error(self, message: str, *, offset: int | None = None, field: str | None = None
              ) -> EventFormatError:
        return EventFormatError(message, path=self.path, offset=offset, field=field)

    def _open(self) -> BinaryIO:
        return open(self.path, "rb")

    def _byte_blocks(self, f: BinaryIO, start: int, align: int = 1
                     ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(file_offset, uint8 array)`` blocks of the body.

        Each block's length is a multiple of ``align`` except possibly the
        last, whose tail (a partial word) the decoder must report as damage.
        """
        f.seek(start)
        offset = start
        size = max(align, (self.block_bytes // align) * align)
        while True:
            buf = f.read(size)
            if not buf:
                return
            yield offset, np.frombuffer(buf, dtype=np.uint8)
            offset += len(buf)

    # -- public API -----------------------------------------------------------
    def blocks(self) -> Iterator[np.ndarray]:
        """Decoded blocks under the ``on_error`` policy."""
        try:
            yield from self._decode()
        except EventFormatError as exc:
            exc = exc.located(path=self.path)
            if self.on_error == "raise":
                raise exc from None
            warnings.warn(str(exc), EventFormatWarning, stacklevel=3)

    def iter_events(self, chunk_events: int | None = None, chunk_us: int | None = None
                    ) -> Iterator[np.ndarray]:
        """Consecutive event chunks in bounded memory (see :func:`rebatch`)."""
        return rebatch(self.blocks(), chunk_events=chunk_events, chunk_us=chunk_us)

    def read(self) -> np.ndarray:
        """All events.  With ``on_error="raise"`` the error's ``partial``
        attribute holds the events decoded before the damage."""
        parts: list[np.ndarray] = []
        try:
            for b in self.blocks():
                parts.append(b)
        except EventFormatError as exc:
            exc.partial = concat(parts)
            raise
        out = concat(parts)
        if out.dtype != EVENT_DTYPE:  # pragma: no cover - defensive
            raise TypeError(f"{type(self).__name__} produced dtype {out.dtype}")
        self._infer_size(out)
        return out

    def stats(self, chunk_events: int = 1 << 20) -> EventStats:
        """Stream once over the recording and summarise it."""
        st = EventStats()
        for chunk in self.iter_events(chunk_events=chunk_events):
            st.update(chunk)
        if self.info.sensor_size is None and st.inferred_size is not None:
            self.info.sensor_size = st.inferred_size
            self.info.sensor_size_source = "inferred"
        return st

    def _infer_size(self, events: np.ndarray) -> None:
        if self.info.sensor_size is None and len(events):
            self.info.sensor_size = (int(events["x"].max()) + 1, int(events["y"].max()) + 1)
            self.info.sensor_size_source = "inferred"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"
