"""UDP burst delivery: how much of a real peer's burst ``eventpipe run``'s pipeline takes in.

The real peers send a whole sample as fast as they can over loopback (docs/protocol.md, UDP):

- the aestream CLI: ``aestream input file evt3_sample.raw output udp`` (219,600 events);
- faery ``to_udp`` of the EVT2 sample (539,481 events) in ``t64_x16_y16_on8`` and
  ``t32_x16_y15_on1``.

Each burst goes into ``build_pipeline`` (what ``eventpipe run`` builds: a small random
``meta_spikeformer_tiny``, 32x32 input) with the shipped settings, and, as the anchor in the
same run, with the queue of 256 datagrams the UDP source had before issue 15
(``source.queue_size=256``).  A line per sender and setting: events in as a share of the
sample, dropped by the full queue, datagrams the kernel dropped (``SO_RXQ_OVFL``), and the
receive buffer granted.  The worst share over the senders with the shipped settings is the
figure.  ``--repeat`` sends each burst R times per setting and prints the lowest and highest;
``--only`` picks senders.

    python benchmarks/udp_burst.py [--repeat 1] [--only aestream t64_x16_y16_on8 t32_x16_y15_on1]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._args import at_least  # noqa: E402

EVENTS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "events"
EVT3, EVT2 = EVENTS / "evt3" / "evt3_sample.raw", EVENTS / "evt2" / "evt2_sample.raw"
SETTINGS = {"shipped": [], "queue_size=256": ["source.queue_size=256"]}
SENDERS = ("aestream", "t64_x16_y16_on8", "t32_x16_y15_on1")


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pipeline(uri: str, size, *extra: str):
    """``build_pipeline`` for ``uri`` with the shipped settings (plus ``extra`` overrides), a
    small random model, warmed up and started (tests/runtime/test_udp_defaults.py uses it)."""
    from eventpipe.runtime.config import load_run_config
    from eventpipe.runtime.run import build_pipeline

    cfg = load_run_config(None, [f"source.uri={uri}", f"source.sensor_size=[{size[0]}, {size[1]}]",
                                 "model.name=meta_spikeformer_tiny", "model.num_classes=4",
                                 "input.size=[32, 32]", "sinks.console=false", *extra])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random weights
        pipe = build_pipeline(cfg, io.StringIO())
    pipe.warm_up()
    return pipe.start()


def settle(pipe, n: int, quiet_s: float = 2.0, limit_s: float = 60.0) -> None:
    """Wait until every event is in or dropped, or nothing has moved for ``quiet_s``."""
    src, wait = pipe.source, threading.Event()
    last, since, start = -1, time.monotonic(), time.monotonic()
    while time.monotonic() - start < limit_s:
        seen = pipe.metrics.events_in + src.stats.dropped
        if seen >= n:
            return
        if seen != last:
            last, since = seen, time.monotonic()
        elif time.monotonic() - since > quiet_s:
            return
        wait.wait(0.02)


def burst(sender: str, extra: list[str]) -> dict:
    """One burst from ``sender`` into a fresh pipeline; the summary's counts."""
    port = free_udp_port()
    if sender == "aestream":
        n, size = 219_600, (1280, 720)
        pipe = pipeline(f"udp://127.0.0.1:{port}", size, *extra)
        exe = shutil.which("aestream") or shutil.which(
            "aestream", path=os.path.dirname(sys.executable))
        subprocess.run([exe, "input", "file", str(EVT3), "output", "udp", "127.0.0.1", str(port)],
                       check=True, capture_output=True, timeout=120)
    else:
        import faery
        n, size = 539_481, (640, 480)
        pipe = pipeline(f"udp://127.0.0.1:{port}?format={sender}", size, *extra)
        faery.events_stream_from_file(str(EVT2)).to_udp(("127.0.0.1", port), format=sender)
    settle(pipe, n)
    pipe.stop()
    pipe.wait()
    pipe.source.close()
    summary, src = pipe.summary(), pipe.source
    return {"n": n, "in": summary["events_in"], "dropped": summary["source"]["dropped"],
            "kernel": summary["source"]["kernel_dropped"], "rcvbuf": src.rcvbuf}


def span(values: list, fmt: str) -> str:
    """``low-high`` of ``values`` (one value when they agree)."""
    lo, hi = format(min(values), fmt), format(max(values), fmt)
    return lo if lo == hi else f"{lo}-{hi}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=at_least(1), default=1,
                    help="bursts per sender and setting (default 1)")
    ap.add_argument("--only", nargs="+", choices=SENDERS, default=list(SENDERS), metavar="SENDER",
                    help=f"senders, of {', '.join(SENDERS)}")
    args = ap.parse_args(argv)
    senders = []
    if "aestream" in args.only and (shutil.which("aestream") or shutil.which(
            "aestream", path=os.path.dirname(sys.executable))):
        senders.append("aestream")
    try:
        import faery  # noqa: F401  (the faery senders need it)
        senders += [s for s in args.only if s != "aestream"]
    except ImportError:
        pass
    if not senders:
        ap.error("needs the aestream CLI or faery (pip install 'eventpipe[interop]')")
    print(f"udp_burst benchmark ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}): "
          f"{args.repeat} burst(s) per sender and setting over loopback; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; anchor: source.queue_size=256 "
          f"(before issue 15)", flush=True)
    worst = None
    for sender in senders:
        name = "aestream CLI, EVT3 sample" if sender == "aestream" else f"faery, EVT2 {sender}"
        for setting, extra in SETTINGS.items():
            runs = [burst(sender, extra) for _ in range(args.repeat)]
            share = sorted(r["in"] / r["n"] for r in runs)
            r = runs[0]
            print(f"udp  {name:<32} {setting:<15} in {span([100 * x for x in share], '5.1f')}% "
                  f"of {r['n']:,}  queue dropped {span([x['dropped'] for x in runs], ',')} "
                  f"events  kernel dropped {span([x['kernel'] for x in runs], ',')} datagrams  "
                  f"rcvbuf {r['rcvbuf']:,}", flush=True)
            if setting == "shipped":
                worst = min(worst or (share[0], name), (share[0], name))
    print(f"worst share with the shipped settings: {100 * worst[0]:.1f}% ({worst[1]}); load "
          f"average {os.getloadavg()[0]:.1f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
