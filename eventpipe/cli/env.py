"""The environment a command runs in: its streams, injected so tests drive commands in-process."""

from __future__ import annotations

import dataclasses
import io
import sys
from typing import TextIO


@dataclasses.dataclass
class Env:
    """``stdout`` for results, ``stderr`` for progress, warnings and the one error line,
    ``stdin`` for commands that read it.  ``system`` is true for the process's own streams
    (the door then silences a closed stdout after a broken pipe)."""

    stdout: TextIO
    stderr: TextIO
    stdin: TextIO = dataclasses.field(default_factory=io.StringIO)
    system: bool = False

    @classmethod
    def from_sys(cls) -> "Env":
        return cls(sys.stdout, sys.stderr, sys.stdin, system=True)
