"""The door: the literal table of commands, the parser, and the one error boundary.

:func:`main` parses, runs the command's ``run(args, env)`` and maps exceptions to
one line on stderr and an :class:`~eventpipe.errors.ExitStatus` (:func:`classify`).
"""

from __future__ import annotations

import argparse
import functools
import importlib
import os
import sys
import warnings
from types import ModuleType

from eventpipe.cli.env import Env
from eventpipe.errors import ConfigError, DataError, ExitStatus, UsageError

# The commands: modules of this package, in the order of `eventpipe --help`.  Adding one:
# eventpipe/cli/<name>.py with add_parser(subparsers) and run(args, env) -> int, and one
# line here.
COMMANDS = (
    "info",
    "formats",
    "view",
    "convert",
    "run",
    "send",
    "listen",
    "broker",
    "train",
    "evaluate",
    "chip",
    "demo",
    "record",
    "label",
    "replay_labels",
)


def command_modules() -> list[ModuleType]:
    """The modules of :data:`COMMANDS`, imported (each imports only argparse-level code at
    module level; the work is imported inside its ``run``)."""
    return [importlib.import_module(f"eventpipe.cli.{name}") for name in COMMANDS]

DESCRIPTION = "Event-camera action recognition: read, convert, stream, train, evaluate."


class Parser(argparse.ArgumentParser):
    """argparse with its messages routed to the injected streams and its errors raised
    (as :class:`UsageError`) instead of printed with a usage block."""

    def __init__(self, *args, env: Env | None = None, **kwargs):
        self.env = env
        super().__init__(*args, **kwargs)

    def add_subparsers(self, **kwargs):
        kwargs.setdefault("parser_class", functools.partial(Parser, env=self.env))
        return super().add_subparsers(**kwargs)

    def error(self, message: str):
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")

    def _print_message(self, message, file=None):
        if not message:
            return
        env = self.env or Env.from_sys()
        if file is None or file is sys.stdout:
            file = env.stdout
        elif file is sys.stderr:
            file = env.stderr
        file.write(message)


def build_parser(env: Env | None = None) -> Parser:
    p = Parser(prog="eventpipe", description=DESCRIPTION, env=env)
    p.add_argument("--traceback", action="store_true",
                   help="show the full Python traceback of an error")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in command_modules():
        sp = module.add_parser(sub)
        sp.add_argument("--traceback", action="store_true", default=argparse.SUPPRESS,
                        help=argparse.SUPPRESS)
        sp.set_defaults(_run=module.run)
    return p


def _one_line(text: str) -> str:
    text = " ".join(str(text).split())
    # torch's unpickler advice must never reach a user as if it were ours
    return text.split(" WeightsUnpickler error")[0].split(" Weights only load failed")[0]


def _message(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    return str(exc) or type(exc).__name__


def _recording_hint(exc: BaseException) -> str:
    """For a decode error in a file whose content no format recognises (only its extension
    chose the reader): say that it is probably not a recording at all."""
    from eventpipe.errors import EventFormatError

    path = getattr(exc, "path", None)
    if not isinstance(exc, EventFormatError) or not path or not os.path.isfile(path):
        return ""
    try:
        from eventpipe.info import recognised_by_content

        if recognised_by_content(path) is not None:
            return ""
    except Exception:  # noqa: BLE001 - a hint must never hide the error itself
        return ""
    if "not a recording" in str(exc):
        return ""
    return " (no known format recognises this content, only the extension chose the reader: " \
           "not a recording?)"


def classify(exc: BaseException) -> tuple[ExitStatus, str | None]:
    """The exit status and the one line for ``exc`` (``None``: say nothing)."""
    try:
        import zmq
        zmq_error: type = zmq.ZMQError
    except ImportError:  # pragma: no cover
        zmq_error = OSError
    if isinstance(exc, KeyboardInterrupt):
        return ExitStatus.INTERRUPTED, "interrupted"
    if isinstance(exc, BrokenPipeError):
        return ExitStatus.BROKEN_PIPE, None
    if isinstance(exc, UsageError):
        return ExitStatus.USAGE, _message(exc)
    if isinstance(exc, ConfigError):
        return ExitStatus.CONFIG, _message(exc)
    if isinstance(exc, (DataError, FileNotFoundError, IsADirectoryError, NotADirectoryError)):
        return ExitStatus.DATA, _message(exc) + _recording_hint(exc)
    if isinstance(exc, MemoryError):
        return ExitStatus.RUNTIME, "out of memory (lower the sizes in the configuration)"
    if isinstance(exc, (OSError, zmq_error, RuntimeError, ValueError, TimeoutError)):
        return ExitStatus.RUNTIME, _message(exc)
    return ExitStatus.RUNTIME, (f"internal error: {type(exc).__name__}: {_message(exc)} "
                                f"(rerun with --traceback and report it)")


def _show_warning(env: Env, message, category, filename, lineno, file=None, line=None) -> None:
    try:
        env.stderr.write(f"eventpipe: warning: {_one_line(str(message))}\n")
    except (OSError, ValueError):  # pragma: no cover - stderr gone
        pass


def _silence_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so the interpreter's final flush
    does not print a second error."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # pragma: no cover - no real stdout
        pass


def main(argv: list[str] | None = None, env: Env | None = None, *, out=None,
         err=None) -> int:
    """Run one ``eventpipe`` command and return its :class:`ExitStatus` (as an int).

    ``env`` (or ``out``/``err``) replaces the process's streams."""
    if env is None:
        system = Env.from_sys()
        env = Env(out or system.stdout, err or system.stderr, system.stdin,
                  system=out is None and err is None)
    # torch's and numba's OpenMP pools share the cores: idle workers must sleep, not spin (a
    # spinning pool doubles a model step on 2 cores).  Read when OpenMP starts, i.e. at the first
    # torch/numba import, which the commands do lazily; an explicit setting wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(env)
    show_traceback = "--traceback" in argv
    try:
        try:
            args, extra = parser.parse_known_args(argv)
        except SystemExit as exc:  # --help
            return int(exc.code or 0)
        if extra:
            hint = "; config overrides are --set KEY=VALUE" if any("=" in a for a in extra) else ""
            prog = f"eventpipe {args.command}"
            raise UsageError(f"{prog}: unrecognized arguments: {' '.join(extra)}{hint} "
                             f"(see {prog} --help)")
        show_traceback = bool(getattr(args, "traceback", False))
        with warnings.catch_warnings():
            # a warning is one line on the injected stderr, like an error
            warnings.showwarning = functools.partial(_show_warning, env)
            status = args._run(args, env)
        return int(ExitStatus.OK if status is None else status)
    except BaseException as exc:  # noqa: BLE001 - the one error boundary
        if isinstance(exc, SystemExit):
            raise
        if show_traceback and not isinstance(exc, (KeyboardInterrupt, BrokenPipeError)):
            raise
        status, line = classify(exc)
        if isinstance(exc, BrokenPipeError) and env.system:
            _silence_stdout()
        if line is not None:
            try:
                env.stderr.write(f"eventpipe: error: {_one_line(line)}\n")
                env.stderr.flush()
            except (OSError, ValueError):  # pragma: no cover - stderr gone too
                pass
        return int(status)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
