"""Source URIs: ``zmq+tcp://HOST:PORT``, ``udp://HOST:PORT``, ``dv://HOST:PORT``, ``file:PATH``.

A query string may set string options: ``udp://127.0.0.1:7777?format=t64_x16_y16_on8``,
``zmq+tcp://127.0.0.1:5555?mode=connect&socket=sub``.  Bad URIs raise ``ValueError``.
"""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import parse_qsl

SCHEMES = ("zmq+tcp", "tcp", "udp", "dv", "file")

# Every scheme ``eventpipe run --source`` takes, one literal table: errors about an unknown
# scheme list all of it.  (synthetic, dvcam, camera and video are opened by
# eventpipe.runtime.sources.)
SOURCE_SCHEMES = {
    "file": "file:PATH or a bare path: a recording (any format `eventpipe formats` lists)",
    "zmq+tcp": "zmq+tcp://HOST:PORT: eventpipe wire packets (tcp:// is the same)",
    "tcp": "tcp://HOST:PORT: as zmq+tcp://",
    "udp": "udp://HOST:PORT: SPIF/aestream/faery UDP words (needs source.sensor_size)",
    "dv": "dv://HOST:PORT: a DV (iniVation) TCP event stream",
    "synthetic": "synthetic:[seed=N,switch_s=S,size=WxH,duration_s=S]: the synthetic stream",
    "dvcam": "dvcam:[NAME]: an iniVation camera through dv-processing",
    "camera": "camera:INDEX: a webcam through the DVS emulator",
    "video": "video:PATH: a video file through the DVS emulator",
}
QUERY_OPTIONS = {"format", "mode", "socket"}


class SourceURI(NamedTuple):
    scheme: str
    host: str | None
    port: int | None
    path: str | None
    options: dict


def _host_port(rest: str, uri: str) -> tuple[str, int]:
    host, sep, port = rest.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{uri!r}: expected HOST:PORT")
    host = host.strip("[]")
    try:
        p = int(port)
    except ValueError:
        raise ValueError(f"{uri!r}: port {port!r} is not a number") from None
    if not 0 <= p <= 65535:
        raise ValueError(f"{uri!r}: port {p} out of range")
    return host, p


def parse_uri(uri: str) -> SourceURI:
    if not isinstance(uri, str) or not uri:
        raise ValueError(f"source URI must be a non-empty string, got {uri!r}")
    if uri.startswith("file:"):
        path = uri[5:]
        if path.startswith("//"):
            path = path[2:]
        if not path:
            raise ValueError(f"{uri!r}: file: needs a path")
        return SourceURI("file", None, None, path, {})
    scheme, sep, rest = uri.partition("://")
    if not sep:
        raise ValueError(f"{uri!r}: expected SCHEME://HOST:PORT or file:PATH "
                         f"(schemes: {', '.join(SOURCE_SCHEMES)})")
    scheme = scheme.lower()
    if scheme not in SCHEMES:
        raise ValueError(f"{uri!r}: unknown scheme {scheme!r} (known: {', '.join(SOURCE_SCHEMES)})")
    rest, _, query = rest.partition("?")
    opts = dict(parse_qsl(query, keep_blank_values=False, strict_parsing=False)) if query else {}
    unknown = set(opts) - QUERY_OPTIONS
    if unknown:
        raise ValueError(f"{uri!r}: unknown query option(s) {sorted(unknown)} "
                         f"(known: {sorted(QUERY_OPTIONS)})")
    host, port = _host_port(rest.rstrip("/"), uri)
    return SourceURI("zmq+tcp" if scheme == "tcp" else scheme, host, port, None, opts)


def parse_tcp_endpoint(endpoint: str) -> tuple[str, int]:
    """``tcp://HOST:PORT`` or ``zmq+tcp://HOST:PORT`` -> (host, port)."""
    u = parse_uri(endpoint)
    if u.scheme != "zmq+tcp":
        raise ValueError(f"{endpoint!r}: expected tcp://HOST:PORT")
    return u.host, u.port
