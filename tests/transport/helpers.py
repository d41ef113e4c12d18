"""Shared helpers for the transport tests: collecting from sources, peers, ports."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import threading
import time

import numpy as np
import pytest

from eventpipe.events import EVENT_DTYPE


def collect(src, n_events: int, timeout: float = 10.0) -> np.ndarray:
    """Read batches until ``n_events`` arrived, the source ended, or ``timeout`` passed
    (each read waits at most the time left)."""
    parts, total = [], 0
    deadline = time.monotonic() + timeout
    while total < n_events:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        b = src.read(min(left, 0.5))
        if b is None:
            if src.done:
                break
            continue
        parts.append(b.events)
        total += len(b.events)
    return np.concatenate(parts) if parts else np.empty(0, EVENT_DTYPE)


def wait_for(pred, timeout: float = 5.0, interval: float = 0.01) -> bool:
    """Poll ``pred`` until it is true or ``timeout`` passes (bounded, never forever)."""
    deadline = time.monotonic() + timeout
    ev = threading.Event()
    while not pred():
        if time.monotonic() >= deadline:
            return False
        ev.wait(interval)
    return True


def free_tcp_port() -> int:
    """A port the OS just handed out (for servers that cannot bind port 0 themselves)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def eventpipe_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("eventpipe-") and t.is_alive()]


def peer_command(name: str) -> str:
    """Path of a peer CLI installed in this interpreter's environment, or skip."""
    path = shutil.which(name) or shutil.which(name, path=os.path.dirname(sys.executable))
    if path is None:
        pytest.skip(f"peer CLI {name!r} is not installed (pip install eventpipe[interop])")
    return path


def peer_module(name: str):
    return pytest.importorskip(name, reason=f"peer package {name!r} is not installed "
                                            "(pip install eventpipe[interop])")
