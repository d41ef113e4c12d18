"""faery's own UDP encoder, paced so that the kernel never drops a datagram.

faery's ``to_udp`` sends as fast as it can; on a loaded machine the receive buffer then
overflows and the kernel drops datagrams (18 of 21 runs here), which made the UDP tests
skip.  ``send_paced`` runs the same encoder (``faery.udp_encoder.encode``) over faery's
own decoded stream, handing it ``chunk`` events at a time and waiting, before each
chunk, until the receiving source has taken every datagram sent so far (flow control on
the source's counters, with a timeout).  The bytes on the wire are faery's.
"""

from __future__ import annotations

import math

from tests.transport.helpers import wait_for


def send_paced(faery, path, address, fmt: str, src, *, chunk: int = 2000,
               events_per_packet: int = 100, timeout: float = 20.0) -> int:
    """Send the recording at ``path`` with faery's encoder; returns the datagrams sent."""
    from faery import udp_encoder

    sent = [0]

    def paced():
        for events in faery.events_stream_from_file(str(path)):
            for i in range(0, len(events), chunk):
                want = sent[0]
                if not wait_for(lambda: src.stats.packets + src.stats.kernel_dropped >= want,
                                timeout=timeout):
                    raise AssertionError(f"the source took {src.stats.packets} of {want} "
                                         f"datagrams within {timeout} s")
                part = events[i:i + chunk]
                sent[0] += math.ceil(len(part) / events_per_packet)
                yield part

    udp_encoder.encode(stream=paced(), address=address, events_per_packet=events_per_packet,
                       format=fmt)
    return sent[0]
