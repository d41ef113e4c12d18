"""Typed errors and warnings raised when input is malformed, and the CLI's exit statuses.

Each error class belongs to one :class:`ExitStatus`: the command-line door
(:mod:`eventpipe.cli`) maps an exception to its status in one place.
"""

from __future__ import annotations

import enum
import os


class ExitStatus(enum.IntEnum):
    """What ``eventpipe`` returns to the shell (documented in ``docs/runtime.md``).

    ``OK`` 0; ``RUNTIME`` 1: the work failed for a reason that is not the input's
    (a socket error, a peer that never answered, an internal error); ``USAGE`` 2:
    bad command-line arguments (argparse's own code); ``DATA`` 3: a bad input file,
    stream or checkpoint (missing, empty, damaged, of another kind); ``CONFIG`` 4:
    a bad configuration value (unknown key, wrong type, out of range, unknown model
    or scheme), found before anything loads; ``BROKEN_PIPE`` 141: the reader of our
    output went away (``| head``), as a process killed by SIGPIPE; ``INTERRUPTED``
    130: Ctrl-C with no graceful stop.
    """

    OK = 0
    RUNTIME = 1
    USAGE = 2
    DATA = 3
    CONFIG = 4
    INTERRUPTED = 130
    BROKEN_PIPE = 141


class UsageError(Exception):
    """Bad command-line arguments (exit status ``USAGE``)."""


class DataError(ValueError):
    """A bad input file, stream or checkpoint (exit status ``DATA``)."""


class CheckpointError(DataError):
    """A file given as a model checkpoint that is not one we can load."""


class EventFormatError(DataError):
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
    """Invalid configuration: unknown keys, wrong types, out-of-range values (exit ``CONFIG``)."""


class reading_checkpoint:
    """``with reading_checkpoint(path): load(path)`` turns whatever a loader raises on a
    file that is not a loadable checkpoint into a :class:`CheckpointError` naming the file
    and what it is (empty, not a PyTorch file, a PyTorch file of another kind).  The
    unpickler's own advice (``weights_only=False``, which would run arbitrary code) is
    never passed on."""

    _FAILURES = (EOFError, KeyError, IndexError, TypeError, AttributeError, ValueError,
                 RuntimeError, UnicodeDecodeError)

    MODEL = ("a model checkpoint", "a file saved by snn.save_checkpoint (training's best.pt) or "
             "an official Meta-SpikeFormer checkpoint")

    def __init__(self, path, what: tuple[str, str] = MODEL):
        self.path = os.fspath(path)
        self.what = what

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        import pickle
        import zipfile

        if exc_type is None or isinstance(exc, CheckpointError):
            return False
        if not issubclass(exc_type, self._FAILURES + (pickle.UnpicklingError,
                                                      zipfile.BadZipFile)):
            return False
        raise CheckpointError(f"{self.path}: {self.describe(exc)}") from exc

    def describe(self, exc: BaseException) -> str:
        try:
            with open(self.path, "rb") as f:
                head = f.read(4)
        except OSError:
            head = b""
        if not head:
            return "empty file, not a checkpoint"
        if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):
            return "not a PyTorch checkpoint (neither a zip archive nor a pickle)"
        text = " ".join(str(exc).split())
        if text.startswith(self.path + ": "):
            text = text[len(self.path) + 2:]
        ours = isinstance(exc, ValueError) and "weights_only" not in text
        detail = f" ({text})" if ours and text else ""
        return (f"a PyTorch file but not {self.what[0]} eventpipe can load{detail}; "
                f"expected {self.what[1]}")


def run_tool(main, prog: str) -> int:
    """Run the ``main()`` of a ``python -m`` tool (the training diagnostics): an error of the
    input - a usage, configuration or data error, a missing file - is one ``PROG: error:``
    line on stderr and its :class:`ExitStatus`, not a traceback."""
    import sys

    try:
        return int(main() or 0)
    except (UsageError, ConfigError, DataError, FileNotFoundError, IsADirectoryError) as exc:
        err = exc
    status = (ExitStatus.USAGE if isinstance(err, UsageError) else
              ExitStatus.CONFIG if isinstance(err, ConfigError) else ExitStatus.DATA)
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    print(f"{prog}: error: {text}", file=sys.stderr)
    return int(status)
