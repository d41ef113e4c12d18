"""Source URIs, one table of schemes.

Network sources: ``zmq+tcp://HOST:PORT`` (alias ``tcp://``), ``udp://HOST:PORT``,
``dv://HOST:PORT``; a query string may set string options:
``udp://127.0.0.1:7777?format=t64_x16_y16_on8``,
``zmq+tcp://127.0.0.1:5555?mode=connect&socket=sub``.  Other sources:
``file:PATH`` (or a bare path), ``synthetic:[OPTIONS]``, ``camera:[INDEX]``,
``video:PATH``, ``dvcam:[NAME]``.  Bad URIs raise ``ValueError`` naming the
known schemes (a bare path with a colon in it needs ``file:``).
"""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import parse_qsl

from eventpipe.errors import ConfigError

#: every scheme :func:`eventpipe.sources.open_source` opens, with what it is (one literal
#: table: the dispatcher and the error messages read it)
SCHEMES: dict[str, str] = {
    "file": "a recording, file:PATH or a bare path (any format eventpipe reads)",
    "zmq+tcp": "eventpipe wire packets over ZeroMQ, zmq+tcp://HOST:PORT (alias tcp://)",
    "udp": "aestream / faery UDP datagrams, udp://HOST:PORT[?format=...]",
    "dv": "the DV TCP event stream (dv-processing NetworkWriter), dv://HOST:PORT",
    "dvcam": "an iniVation camera through dv-processing, dvcam:[NAME]",
    "camera": "a webcam through the DVS emulator, camera:[INDEX]",
    "video": "a video file through the DVS emulator, video:PATH",
    "synthetic": "the synthetic action stream, synthetic:[seed=N,switch_s=S,size=WxH,...]",
}
ALIASES = {"tcp": "zmq+tcp"}
NETWORK = ("zmq+tcp", "udp", "dv")          # SCHEME://HOST:PORT[?query]
QUERY_OPTIONS = {"format", "mode", "socket"}


class SourceURI(NamedTuple):
    scheme: str
    host: str | None
    port: int | None
    path: str | None        # file: and video: paths; the spec of synthetic:/camera:/dvcam:
    options: dict


def known_schemes() -> str:
    """``"file, zmq+tcp (tcp), udp, ..."`` for error messages."""
    alias = {v: k for k, v in ALIASES.items()}
    return ", ".join(f"{s} ({alias[s]})" if s in alias else s for s in SCHEMES)


def _host_port(rest: str, uri: str) -> tuple[str, int]:
    host, sep, port = rest.rpartition(":")
    if not sep or not host:
        raise ConfigError(f"{uri!r}: expected HOST:PORT")
    host = host.strip("[]")
    try:
        p = int(port)
    except ValueError:
        raise ConfigError(f"{uri!r}: port {port!r} is not a number") from None
    if not 0 <= p <= 65535:
        raise ConfigError(f"{uri!r}: port {p} out of range")
    return host, p


def parse_uri(uri: str) -> SourceURI:
    if not isinstance(uri, str) or not uri:
        raise ConfigError(f"source URI must be a non-empty string, got {uri!r}")
    scheme, sep, rest = uri.partition("://")
    if sep:
        scheme = ALIASES.get(scheme.lower(), scheme.lower())
        if scheme == "file":
            return parse_uri("file:" + rest)
        if scheme not in NETWORK:
            what = "not a network scheme" if scheme in SCHEMES else "unknown scheme"
            raise ConfigError(f"{uri!r}: {what} {scheme!r} for SCHEME://HOST:PORT "
                             f"(known schemes: {known_schemes()})")
        rest, _, query = rest.partition("?")
        opts = dict(parse_qsl(query, keep_blank_values=False, strict_parsing=False)) \
            if query else {}
        unknown = set(opts) - QUERY_OPTIONS
        if unknown:
            raise ConfigError(f"{uri!r}: unknown query option(s) {sorted(unknown)} "
                             f"(known: {sorted(QUERY_OPTIONS)})")
        host, port = _host_port(rest.rstrip("/"), uri)
        return SourceURI(scheme, host, port, None, opts)
    scheme, sep, rest = uri.partition(":")
    key = scheme.lower()
    if sep and key in SCHEMES and key not in NETWORK:
        if key in ("file", "video") and not rest:
            raise ConfigError(f"{uri!r}: {key}: needs a path")
        return SourceURI(key, None, None, rest, {})
    if sep and (key in NETWORK or key in ALIASES):
        raise ConfigError(f"{uri!r}: expected {key}://HOST:PORT")
    if sep:
        raise ConfigError(f"{uri!r}: unknown scheme {scheme!r} (known schemes: "
                         f"{known_schemes()}; a path with a colon: file:PATH)")
    return SourceURI("file", None, None, uri, {})  # a bare path


def source_file(uri: str) -> str | None:
    """The file a ``file:``/``video:`` URI (or a bare path) reads, else None (a bad URI
    too: opening the source says what is wrong with it)."""
    try:
        u = parse_uri(uri)
    except ConfigError:
        return None
    return u.path if u.scheme in ("file", "video") else None


def parse_tcp_endpoint(endpoint: str) -> tuple[str, int]:
    """``tcp://HOST:PORT`` or ``zmq+tcp://HOST:PORT`` -> (host, port)."""
    u = parse_uri(endpoint)
    if u.scheme != "zmq+tcp":
        raise ConfigError(f"{endpoint!r}: expected tcp://HOST:PORT")
    return u.host, u.port


def bound_port_note(uri: str, source) -> str:
    """``" (bound: tcp://127.0.0.1:43211)"`` for a URI that asked for port 0 (an ephemeral
    port: the sender must be told which), else ``""``."""
    try:
        port = parse_uri(uri).port
    except ConfigError:
        return ""
    endpoint = getattr(source, "endpoint", None)
    return f" (bound: {endpoint})" if port == 0 and endpoint else ""
