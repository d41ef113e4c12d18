"""Event sources: sockets, files, cameras and generators in, ``Batch`` (stream id +
EVENT_DTYPE array) out.

``open_source(uri, **options)`` is the one place that turns a URI into a source and
(unless ``start=False``) starts it::

    with open_source("zmq+tcp://127.0.0.1:0") as src:
        print(src.port, src.live)
        for batch in src.packets(timeout=1.0):
            ...

``SCHEMES`` lists every scheme it opens (see :mod:`eventpipe.sources.uri`).  See
:mod:`eventpipe.sources.base` for the protocol (``live``, the bounded queue, counters)
and ``docs/protocol.md`` for the wire, UDP and DV formats.  Heavy modules are imported
lazily.
"""

from __future__ import annotations

from eventpipe.errors import ConfigError
from eventpipe.sources.base import Batch, BoundedQueue, Source, SourceStats
from eventpipe.sources.uri import SCHEMES, SourceURI, known_schemes, parse_uri

#: a paced file replay that falls behind should not hide seconds in its queue
PACED_FILE_QUEUE = 16
#: the DVS emulator's output size when the caller gives none (camera:, video:)
EMULATOR_SIZE = (128, 128)


def _file(u: SourceURI, o: dict):
    from eventpipe.sources.file import FileSource
    if o.get("speed") and "queue_size" not in o:
        o["queue_size"] = PACED_FILE_QUEUE
    o.pop("queue_events", None)  # files block instead of dropping: the packet bound holds
    return FileSource(u.path, **o)


def _zmq(u: SourceURI, o: dict):
    from eventpipe.sources.zmq_source import ZmqSource
    return ZmqSource(u.host, u.port, **o)


def _udp(u: SourceURI, o: dict):
    from eventpipe.sources.udp import UdpSource
    return UdpSource(u.host, u.port, **o)


def _dv(u: SourceURI, o: dict):
    from eventpipe.sources.dv import DvSource
    return DvSource(u.host, u.port, **o)


def _dvcam(u: SourceURI, o: dict):
    from eventpipe.sources.dv_camera import DvCameraSource
    o.pop("sensor_size", None)  # the camera says
    return DvCameraSource(u.path, **o)


def _camera(u: SourceURI, o: dict):
    from eventpipe.sources.generated import emulated_source
    if u.path and not u.path.isdigit():
        raise ConfigError(f"'camera:{u.path}': the camera index must be a number "
                          "(camera:0 is the first webcam)")
    o.pop("queue_events", None)
    return emulated_source("camera", u.path, **o)


def _video(u: SourceURI, o: dict):
    from eventpipe.sources.generated import emulated_source
    o.pop("queue_events", None)
    return emulated_source("video", u.path, **o)


def _synthetic(u: SourceURI, o: dict):
    from eventpipe.sources.generated import synthetic_source
    o.pop("queue_events", None)
    o.pop("sensor_size", None)  # size= in the spec
    return synthetic_source(u.path, **o)


_OPEN = {"file": _file, "zmq+tcp": _zmq, "udp": _udp, "dv": _dv, "dvcam": _dvcam,
         "camera": _camera, "video": _video, "synthetic": _synthetic}
# which of the common keywords each kind takes
_TAKES = {"file": ("speed", "loop", "sensor_size"), "synthetic": ("speed",),
          "video": ("speed", "sensor_size"), "camera": ("sensor_size",), "dvcam": (),
          "zmq+tcp": ("sensor_size",), "udp": ("sensor_size",), "dv": ("sensor_size",)}


_UNSET = object()


def open_source(uri: str, *, start: bool = True, speed=_UNSET,
                loop: bool | None = None, sensor_size=None, queue_size: int | None = None,
                queue_events: int | None = None, **options) -> Source:
    """Open the source for ``uri`` (any of ``SCHEMES``) and, with ``start``, start it.

    Common keywords go where they mean something (``speed``: file/synthetic/video
    pacing, None = as fast as the consumer takes, unset = each source's default (files:
    None, synthetic and video: 1.0); ``loop``: files; ``sensor_size``:
    files without one, sockets (coordinates outside it are malformed input), the
    emulator); ``queue_size``/``queue_events`` (None: the source's default) bound its
    queue.  Other ``options`` go to the source's class; the URI's query options too.
    """
    u = parse_uri(uri)
    if u.scheme not in _OPEN:  # the table and the openers must agree
        raise ValueError(f"{uri!r}: no opener for scheme {u.scheme!r} "
                         f"(known schemes: {known_schemes()})")
    opts = {**u.options, **options}
    common = {"speed": speed, "loop": loop, "sensor_size": sensor_size}
    for key in _TAKES[u.scheme]:
        if common[key] is not None and common[key] is not _UNSET:
            opts.setdefault(key, common[key])
        elif key == "speed" and common[key] is None:
            opts.setdefault(key, None)
    if u.scheme in ("camera", "video"):
        opts.setdefault("sensor_size", EMULATOR_SIZE)
    if queue_size is not None:
        opts["queue_size"] = queue_size
    if queue_events is not None:
        opts["queue_events"] = queue_events
    src = _OPEN[u.scheme](u, opts)
    return src.start() if start else src


def send_recording(*args, **kwargs):
    """See :func:`eventpipe.sources.sender.send_recording`."""
    from eventpipe.sources.sender import send_recording as _send
    return _send(*args, **kwargs)


__all__ = ["Batch", "BoundedQueue", "SCHEMES", "Source", "SourceStats", "SourceURI",
           "known_schemes", "open_source", "parse_uri", "send_recording"]
