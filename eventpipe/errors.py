"""Typed errors and warnings raised when input is malformed."""

from __future__ import annotations

import os


class EventFormatError(ValueError):
    """Malformed or unsupported event data.

    Always names where the problem is: the file (or stream), the byte offset and
    the field/what was wrong. ``partial`` holds the events decoded before the
    damage when a reader could recover them (``None`` otherwise).
    """

    def __init__(self, message: str, *, path: str | os.PathLike | None = None,
                 offset: int | None = None, field: str | None = None, partial=None):
        self.message = message
        self.path = None if path is None else os.fspath(path)
        self.offset = None if offset is None else int(offset)
        self.field = field
        self.partial = partial
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.path is not None:
            where.append(str(self.path))
        if self.offset is not None:
            where.append(f"byte {self.offset}")
        if self.field is not None:
            where.append(f"field {self.field!r}")
        prefix = ", ".join(where)
        return f"{prefix}: {self.message}" if prefix else self.message

    def located(self, *, path=None, offset=None) -> "EventFormatError":
        """Return a copy with the path/offset filled in where missing."""
        return EventFormatError(
            self.message,
            path=self.path if self.path is not None else path,
            offset=self.offset if self.offset is not None else offset,
            field=self.field,
            partial=self.partial,
        )


class UnknownFormatError(EventFormatError):
    """The file's format could not be recognised from content or extension."""


class EventFormatWarning(UserWarning):
    """Damage found in a file read with ``on_error="warn"``."""


class ConfigError(ValueError):
    """Invalid configuration: unknown keys, wrong types, out-of-range values."""
