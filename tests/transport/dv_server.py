"""A dv-processing NetworkWriter in its own process, driven over stdin/stdout.

The tests run the vendor server (and the vendor's NetworkReader) here rather
than in the pytest process: NetworkWriter calls a Python callback from its own
thread when a client goes away, and its destructor, holding the GIL, can then
deadlock.  This process ends with ``os._exit`` and never runs that destructor.

    python dv_server.py PORT COMPRESSION NPZ START STOP PER_PACKET CLIENTS [VENDOR_OUT]

prints ``listening``, waits for CLIENTS clients (ours; plus its own NetworkReader
when VENDOR_OUT is given), writes events[START:STOP] in packets of PER_PACKET,
saves what the NetworkReader got to VENDOR_OUT, prints ``sent`` and exits on
the next stdin line (or EOF).
"""

import os
import sys
import threading
import time

import numpy as np


def main(argv):
    import dv_processing as dv

    port, comp, npz, start, stop, per, clients = argv[:7]
    vendor_out = argv[7] if len(argv) > 7 else None
    with np.load(npz) as z:
        t, x, y, p = (z[k][int(start):int(stop)] for k in ("t", "x", "y", "p"))
    stream = dv.io.Stream.EventStream(0, "events", "TEST_CAMERA", (320, 240))
    stream.setCompression(getattr(dv.CompressionType, comp))
    writer = dv.io.NetworkWriter("127.0.0.1", int(port), stream, 10, lambda code, msg: None)
    print("listening", flush=True)
    want = int(clients)
    reader = dv.io.NetworkReader("127.0.0.1", int(port)) if vendor_out else None
    deadline = time.monotonic() + 15
    pause = threading.Event()
    while writer.getClientCount() < want + (1 if reader else 0):
        if time.monotonic() > deadline:
            print("timeout waiting for clients", flush=True)
            os._exit(2)
        pause.wait(0.005)
    per = int(per)
    for i in range(0, len(t), per):
        store = dv.EventStore()
        for k in range(i, min(i + per, len(t))):
            store.push_back(int(t[k]), int(x[k]), int(y[k]), bool(p[k]))
        writer.writeEvents(store)
    if reader is not None:
        parts, total = [], 0
        deadline = time.monotonic() + 15
        while total < len(t) and time.monotonic() < deadline:
            b = reader.getNextEventBatch()
            if b is None:
                pause.wait(0.002)
                continue
            a = b.numpy()
            parts.append(a)
            total += len(a)
        np.save(vendor_out, np.concatenate(parts) if parts else np.zeros(0))
    print("sent", flush=True)
    sys.stdin.readline()
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
