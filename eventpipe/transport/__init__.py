"""Transport: the eventpipe wire format and the broker.

- :mod:`eventpipe.transport.wire` - one self-describing binary message per event packet
  (``encode_packet``, ``decode_packet``, ``peek_header``; ``docs/protocol.md``);
- :mod:`eventpipe.transport.broker` - ``Broker``: fans packets out to N ``eventpipe run``
  workers by stream id and proxies their labels (``docs/scaleout.md``);
- :mod:`eventpipe.transport.scaleout` - ``run_broker``, the broker as a command.

Sources (:mod:`eventpipe.sources`) and sinks (:mod:`eventpipe.sinks`) use the wire format;
nothing here knows about models.  The modules are imported on use (the broker needs ZeroMQ).
"""
