"""Event sources: sockets and files in, ``Batch`` (stream id + EVENT_DTYPE array) out.

``open_source(uri, **options)`` builds (and starts) the source for a URI::

    with open_source("zmq+tcp://127.0.0.1:0") as src:
        print(src.port)
        for batch in src.packets(timeout=1.0):
            ...

See :mod:`eventpipe.sources.base` for the protocol and ``docs/protocol.md`` for
the wire, UDP and DV formats.  Heavy modules are imported lazily.
"""

from __future__ import annotations

from eventpipe.sources.base import Batch, BoundedQueue, Source, SourceStats
from eventpipe.sources.uri import SourceURI, parse_uri


def open_source(uri: str, *, start: bool = True, **options) -> Source:
    u = parse_uri(uri)
    opts = {**u.options, **options}
    if u.scheme == "zmq+tcp":
        from eventpipe.sources.zmq_source import ZmqSource
        src = ZmqSource(u.host, u.port, **opts)
    elif u.scheme == "udp":
        from eventpipe.sources.udp import UdpSource
        src = UdpSource(u.host, u.port, **opts)
    elif u.scheme == "dv":
        from eventpipe.sources.dv import DvSource
        src = DvSource(u.host, u.port, **opts)
    else:
        from eventpipe.sources.file import FileSource
        src = FileSource(u.path, **opts)
    return src.start() if start else src


def send_recording(*args, **kwargs):
    """See :func:`eventpipe.sources.sender.send_recording`."""
    from eventpipe.sources.sender import send_recording as _send
    return _send(*args, **kwargs)


__all__ = ["Batch", "BoundedQueue", "Source", "SourceStats", "SourceURI", "open_source",
           "parse_uri", "send_recording"]
