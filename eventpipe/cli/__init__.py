"""The ``eventpipe`` command line: one door for every command.

Every command goes through :func:`main` (``eventpipe ...``, ``python -m eventpipe``
and ``python -m eventpipe.training`` alike), which parses the arguments, runs the
command and maps whatever it raises to one line on stderr and an
:class:`~eventpipe.errors.ExitStatus` in one place (``door.py``); ``--traceback``
(before or after the command name) shows the full trace instead.  Output goes
through an injected :class:`Env` (``stdout``, ``stderr``, ``stdin``), so tests
drive commands in-process: ``main(["info", path], Env(out, err, io.StringIO()))``.

Adding a command is one module and one line:

1. ``eventpipe/cli/<name>.py`` with ``add_parser(subparsers) -> ArgumentParser``
   (``subparsers.add_parser("<name>", help=...)`` plus its arguments; a group of
   commands such as ``chip compile|report`` adds its own nested subparsers) and
   ``run(args, env) -> int`` (write to ``env.stdout``/``env.stderr``, return an
   ``ExitStatus``, raise a typed error from :mod:`eventpipe.errors` for bad input:
   ``ConfigError``, ``DataError``/``EventFormatError``/``CheckpointError``,
   ``UsageError``).  Import heavy modules inside ``run``, so ``eventpipe --help``
   stays fast.  A group's ``run`` dispatches on its own sub-command.
2. One line with the module's name in the literal ``COMMANDS`` table in
   ``door.py`` (order = the order of ``eventpipe --help``).  Nothing registers
   itself at import.

Shared argument helpers (``--config``/``--set``, ``--format``/``--sensor-size``,
range checks of flags) are in ``common.py``.
"""

from __future__ import annotations

from eventpipe.cli.env import Env
from eventpipe.errors import ExitStatus


def main(argv=None, env: Env | None = None, *, out=None, err=None) -> int:
    """Run one command; see :func:`eventpipe.cli.door.main`."""
    from eventpipe.cli.door import main as _main

    return _main(argv, env, out=out, err=err)


__all__ = ["Env", "ExitStatus", "main"]
