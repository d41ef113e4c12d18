"""UDP through the run's pipeline with DEFAULT settings, from the real peer programs.

Issue 15: with ``queue_size=256`` packets the aestream CLI sending the EVT3 sample
delivered 65,488 of 219,600 events, faery ``to_udp`` 14-27% of the EVT2 sample.  Here
``build_pipeline`` (what ``eventpipe run`` builds) gets only the URI, the sensor size and
a small random model; everything else is the shipped default.  Goal: >= 99% of each
sample in; kernel drops (if the system caps the receive buffer) are reported apart,
with the cause and the fix in the summary.
"""

from __future__ import annotations

import socket
import struct
import subprocess

import numpy as np
import pytest

from eventpipe.runtime.metrics import format_summary
from tests.benchmark_script import load
from tests.conftest import expected_events, sample_path
from tests.transport.helpers import peer_command, peer_module, wait_for


_bench = load("udp_burst")
_free_udp_port, _pipeline = _bench.free_udp_port, _bench.pipeline


def _finish(pipe, n: int) -> dict:
    src = pipe.source
    wait_for(lambda: pipe.metrics.events_in + src.stats.dropped >= n, timeout=30)
    pipe.stop()
    pipe.wait()
    src.close()
    return pipe.summary()


def _check_delivery(pipe, summary, n: int) -> None:
    src = pipe.source
    st = summary["source"]
    if st["kernel_dropped"] and src.rcvbuf_capped:
        text = format_summary(summary)
        assert "net.core.rmem_max" in text and "datagrams dropped by the kernel" in text
        pytest.skip(f"this system caps SO_RCVBUF at {src.rcvbuf} bytes; the kernel dropped "
                    f"{st['kernel_dropped']} datagrams (reported: {summary['advice']})")
    assert summary["events_in"] >= 0.99 * n, format_summary(summary)
    assert st["dropped"] == 0 and st["malformed"] == 0 and summary["advice"] == []


def test_aestream_cli_evt3_sample_with_defaults():
    exe = peer_command("aestream")
    path = sample_path("evt3_sample.raw")
    n = 219_600
    port = _free_udp_port()
    pipe = _pipeline(f"udp://127.0.0.1:{port}", (1280, 720))
    proc = subprocess.run([exe, "input", "file", str(path), "output", "udp", "127.0.0.1",
                           str(port)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    summary = _finish(pipe, n)
    _check_delivery(pipe, summary, n)
    assert summary["events_in"] == n  # loopback, nothing lost: all of it


# faery 0.7.1's UDP encoder never closes its socket (not ours to fix)
@pytest.mark.filterwarnings("ignore::ResourceWarning",
                            "ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("fmt", ["t64_x16_y16_on8", "t32_x16_y15_on1"])
def test_faery_evt2_sample_with_defaults(fmt):
    faery = peer_module("faery")
    path = sample_path("evt2_sample.raw")
    n = len(expected_events("evt2_sample.raw"))
    port = _free_udp_port()
    pipe = _pipeline(f"udp://127.0.0.1:{port}?format={fmt}", (640, 480))
    faery.events_stream_from_file(str(path)).to_udp(("127.0.0.1", port), format=fmt)
    summary = _finish(pipe, n)
    _check_delivery(pipe, summary, n)


def test_queue_drops_are_explained(tmp_path):
    """A queue too small for a burst: the summary names the loss, the cause and the fix."""
    port = _free_udp_port()
    pipe = _pipeline(f"udp://127.0.0.1:{port}", (64, 48), "source.queue_events=100")
    words = (0x80000000 | (np.arange(100, dtype=np.uint32) % 64 << 16)).astype("<u4").tobytes()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        for _ in range(200):
            tx.sendto(words, ("127.0.0.1", port))
    wait_for(lambda: pipe.source.stats.packets == 200, timeout=10)
    pipe.stop()
    pipe.wait()
    pipe.source.close()
    summary = pipe.summary()
    st = summary["source"]
    # every event is accounted for: stepped, dropped by the full queue, or still queued when
    # the run stopped (a stop can come while the last datagrams wait in the queue)
    assert st["dropped"] > 0
    assert st["dropped"] + summary["events_in"] + st["unread"] == 200 * 100
    assert summary["advice"] and "source.queue_events" in summary["advice"][0]
    assert f"{st['dropped']:,} events" in format_summary(summary)


def test_words_outside_the_sensor_are_malformed_input():
    """docs/protocol.md: a datagram with x or y outside source.sensor_size is malformed
    (dropped whole, counted), not events the pipeline later counts as out of bounds."""
    port = _free_udp_port()
    pipe = _pipeline(f"udp://127.0.0.1:{port}", (64, 48))
    good = (0x80000000 | (np.arange(10, dtype=np.uint32) << 16) | 5).astype("<u4").tobytes()
    bad = struct.pack("<3I", *[0x80000000 | (64 << 16) | 5] * 3)  # x = 64
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        for d in (good, bad, good, bad, bad):
            tx.sendto(d, ("127.0.0.1", port))
    wait_for(lambda: pipe.source.stats.packets == 5, timeout=10)
    summary = _finish(pipe, 20)
    assert summary["events_in"] == 20 and summary["events_out_of_bounds"] == 0
    assert summary["source"]["malformed"] == 3
    assert any("x=64 outside the 64x48 sensor" in line for line in summary["advice"])


def test_events_still_queued_at_close_are_counted_and_named():
    """Received but never read: counted in ``unread`` and named in the advice, not lost."""
    from eventpipe.sources import open_source

    port = _free_udp_port()
    src = open_source(f"udp://127.0.0.1:{port}", sensor_size=(64, 48))
    words = (0x80000000 | (np.arange(100, dtype=np.uint32) % 64 << 16)).astype("<u4").tobytes()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        for _ in range(3):
            tx.sendto(words, ("127.0.0.1", port))
    assert wait_for(lambda: src.stats.packets == 3, timeout=10)
    src.close()  # nothing read: all three datagrams are still queued
    assert src.stats.unread == 300
    assert src.stats.dropped == 0
    assert any(f"{src.stats.unread:,} events were still queued" in a for a in src.drop_advice())
