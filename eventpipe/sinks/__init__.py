"""Label sinks: where label messages (dicts from :class:`eventpipe.labels.LabelDecoder`) go.

Every sink has ``write(msg)``, ``flush()``, ``close()`` and is a context manager.

- :class:`ZmqPubSink` - ZeroMQ PUB (XPUB) on ``tcp://127.0.0.1:5556`` by default;
  frames ``[topic, json]`` with topic = the stream id as ASCII;
- :class:`JsonLinesSink` - one JSON object per line to a path or ``"-"`` (stdout);
- :class:`ConsoleSink` - a human-readable line per message;
- :class:`CallbackSink` - calls a function.

:func:`listen` is the other end of the PUB sink (``eventpipe listen``).
"""

from __future__ import annotations

from eventpipe.sinks.base import CallbackSink, ConsoleSink, JsonLinesSink, Sink, format_line
from eventpipe.sinks.zmq_pub import DEFAULT_ENDPOINT, ZmqPubSink, listen

__all__ = ["CallbackSink", "ConsoleSink", "DEFAULT_ENDPOINT", "JsonLinesSink", "Sink",
           "ZmqPubSink", "format_line", "listen"]
