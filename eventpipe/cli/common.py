"""Argument helpers shared by the commands: config flags, reading flags, range checks."""

from __future__ import annotations

import argparse
import math

from eventpipe.errors import ConfigError


def sensor_size(text: str) -> tuple[int, int]:
    """``640x480`` -> (640, 480); argparse reports a bad value as a usage error."""
    try:
        w, h = (int(v) for v in text.lower().replace(",", "x").split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"sensor size must look like 640x480, got {text!r}")
    if not (w >= 1 and h >= 1):
        raise argparse.ArgumentTypeError(f"sensor size must be positive, got {text!r}")
    if max(w, h) > 65536:  # x and y are uint16
        raise argparse.ArgumentTypeError(f"sensor size must be at most 65536x65536, got {text!r}")
    return w, h


def add_reading_options(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--format", default=None, help="force a format (see `eventpipe formats`)")
    sp.add_argument("--sensor-size", type=sensor_size, default=None, metavar="WxH",
                    help="sensor size when the file has none (or to override it)")


def add_config_options(sp: argparse.ArgumentParser, what: str = "a TOML config") -> None:
    """``--config FILE`` and repeatable ``--set KEY=VALUE``: the one override syntax."""
    sp.add_argument("--config", "-c", default=None, metavar="FILE", help=what)
    sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config value, e.g. --set window.window_us=50000 "
                         "(value parsed as TOML; repeatable)")


def check_flag(flag: str, value, *, gt=None, ge=None, le=None, optional: bool = True) -> None:
    """A flag's value in range (finite numbers only), else a ``ConfigError`` naming the flag."""
    if value is None and optional:
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{flag}: expected a finite number, got {value}")
    rules = [(gt, lambda v, b: v > b, ">"), (ge, lambda v, b: v >= b, ">="),
             (le, lambda v, b: v <= b, "<=")]
    for bound, ok, text in rules:
        if bound is not None and not ok(value, bound):
            raise ConfigError(f"{flag}: {value} is out of range (must be {text} {bound})")


def check_output(flag: str, path, *, suffixes: tuple[str, ...] | None = None) -> None:
    """An output file we will write later (after a long run): its folder must exist and the
    path must not be a folder; with ``suffixes``, its suffix must be one of them.  Checked
    before the work starts, as a ``ConfigError`` naming the flag."""
    import shlex
    from pathlib import Path

    if path is None or str(path) == "-":
        return
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{flag} {path}: is a folder, expected a file")
    in_the_way = _file_in_the_way(p.parent)
    if in_the_way is not None:
        raise ConfigError(f"{flag} {path}: {str(in_the_way)!r} is a file, not a folder")
    if not p.parent.is_dir():
        raise ConfigError(f"{flag} {path}: the folder {str(p.parent)!r} does not exist "
                          f"(mkdir -p {shlex.quote(str(p.parent))} first)")
    if suffixes is not None and p.suffix.lower() not in suffixes:
        raise ConfigError(f"{flag} {path}: unknown extension {p.suffix!r}; "
                          f"expected one of {', '.join(suffixes)}")


def _file_in_the_way(folder):
    """The nearest of ``folder`` and its parents that exists, if it is not a folder."""
    for p in (folder, *folder.parents):
        if p.exists():
            return None if p.is_dir() else p
    return None


def check_output_folder(flag: str, path) -> None:
    """An output folder, made (with its parents) when missing: neither it nor the nearest of
    its parents that exists may be a file.  Checked before the work starts, as a
    ``ConfigError`` naming the flag."""
    from pathlib import Path

    if path is None:
        return
    p = Path(path)
    in_the_way = _file_in_the_way(p)
    if in_the_way == p:
        raise ConfigError(f"{flag} {path}: exists and is not a folder")
    if in_the_way is not None:
        raise ConfigError(f"{flag} {path}: {str(in_the_way)!r} is a file, not a folder")


def check_not_input(flag: str, out, source) -> None:
    """An output that is the input file (also through a link) would be overwritten while
    it is read: a ``ConfigError`` naming both."""
    import os

    if out is None or source is None or not os.path.exists(out) or not os.path.exists(source):
        return
    if os.path.samefile(out, source):
        raise ConfigError(f"{flag} {out} is the input {source}: writing it would destroy what "
                          "is being read; choose another output")


#: the ZeroMQ transports the label sinks, ``listen``, ``send`` and the broker speak (they parse
#: HOST:PORT; ZeroMQ's ipc:// and inproc:// are not supported)
ENDPOINT_SCHEMES = ("tcp", "zmq+tcp")


def check_endpoint(flag: str, endpoint, *, connects: bool = False) -> None:
    """A ZeroMQ endpoint such as ``tcp://127.0.0.1:5556`` (a query string may follow).  Port 0
    (a free port, chosen when a socket binds) is refused where the socket connects
    (``connects``, or ``?mode=connect``): nothing can ever listen there."""
    if endpoint is None:
        return
    scheme, sep, rest = str(endpoint).partition("://")
    if sep and scheme.lower() not in ENDPOINT_SCHEMES:
        raise ConfigError(f"{flag} {endpoint!r}: scheme {scheme!r} is not supported (supported: "
                          f"{', '.join(ENDPOINT_SCHEMES)}; e.g. tcp://127.0.0.1:5556)")
    host, colon, port = rest.partition("?")[0].rpartition(":")
    if not sep or not (colon and host and port.isdigit()):
        raise ConfigError(f"{flag} {endpoint!r}: expected an endpoint like tcp://127.0.0.1:5556")
    if int(port) == 0 and (connects or "mode=connect" in rest.partition("?")[2]):
        raise ConfigError(f"{flag} {endpoint!r}: port 0 picks a free port when a socket binds; "
                          "this one connects, so nothing could answer: give the port the other "
                          "side listens on")
