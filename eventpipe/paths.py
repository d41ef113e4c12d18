"""What an existing path is, for the checks that want a regular file (a config, a checkpoint)."""

from __future__ import annotations

import os
import stat


def special_kind(path) -> str | None:
    """``None`` for a regular file (a symlink counts as what it points at), else what the path
    is: ``"a directory"``, ``"a character device"``, ``"a block device"``, ``"a named pipe"``,
    ``"a socket"`` (reading a device or a pipe could block for ever or never end)."""
    mode = os.stat(path).st_mode
    if stat.S_ISREG(mode):
        return None
    return ("a directory" if stat.S_ISDIR(mode) else "a character device" if stat.S_ISCHR(mode)
            else "a block device" if stat.S_ISBLK(mode) else "a named pipe" if stat.S_ISFIFO(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
