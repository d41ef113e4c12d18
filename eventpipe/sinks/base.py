"""File-like sinks: JSON lines, console lines, callbacks."""

from __future__ import annotations

import abc
import json
import os
import sys
from typing import Callable, TextIO


def to_json(msg: dict) -> str:
    return json.dumps(msg, separators=(",", ":"), allow_nan=False, default=_default)


def _default(o):
    if hasattr(o, "item"):  # numpy scalars
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def format_line(msg: dict) -> str:
    """``[stream 0] #12 t=1.234567s wave 0.870 | wave 0.87 clap 0.05 | 3.1 ms (truth: wave)``"""
    parts = [f"[stream {msg.get('stream')}]"]
    if msg.get("seq") is not None:
        parts.append(f"#{msg['seq']}")
    if msg.get("t_us") is not None:
        parts.append(f"t={msg['t_us'] / 1e6:.6f}s")
    label = msg.get("label")
    parts.append("-" if label is None else f"{label} {msg.get('score', 0.0):.3f}")
    top = msg.get("topk") or []
    if top:
        parts.append("| " + " ".join(f"{n} {p:.2f}" for n, p in top))
    if msg.get("latency_ms") is not None:
        parts.append(f"| {msg['latency_ms']:.1f} ms")
    if "truth" in msg:
        parts.append(f"(truth: {msg['truth']})")
    return " ".join(parts)


class Sink(abc.ABC):
    """Base: subclasses implement ``write``; ``flush``/``close`` default to no-ops."""

    closed = False

    @abc.abstractmethod
    def write(self, msg: dict) -> None:
        """Deliver one message."""

    def write_many(self, msgs) -> None:
        for m in msgs:
            self.write(m)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _TextSink(Sink):
    def __init__(self, target: str | os.PathLike | TextIO = "-"):
        self.count = 0
        if target == "-":
            self._f, self._own = sys.stdout, False
        elif hasattr(target, "write"):
            self._f, self._own = target, False
        else:
            self._f, self._own = open(target, "a", encoding="utf-8"), True

    @abc.abstractmethod
    def _line(self, msg: dict) -> str:
        """The text line for one message."""

    def write(self, msg: dict) -> None:
        if self.closed:
            raise ValueError("write to a closed sink")
        self._f.write(self._line(msg) + "\n")
        self.count += 1

    def flush(self) -> None:
        if not self.closed:
            self._f.flush()

    def close(self) -> None:
        if self.closed:
            return
        self.flush()
        if self._own:
            self._f.close()
        self.closed = True


class JsonLinesSink(_TextSink):
    """One compact JSON object per line (appends to a path; ``"-"`` = stdout)."""

    def _line(self, msg: dict) -> str:
        return to_json(msg)


class ConsoleSink(_TextSink):
    """A readable line per message (see :func:`format_line`); default stdout."""

    human = True  # metrics messages are not printed line by line

    def _line(self, msg: dict) -> str:
        return format_line(msg)


class CallbackSink(Sink):
    def __init__(self, fn: Callable[[dict], None]):
        if not callable(fn):
            raise ValueError("CallbackSink needs a callable")
        self.fn = fn
        self.count = 0

    def write(self, msg: dict) -> None:
        if self.closed:
            raise ValueError("write to a closed sink")
        self.fn(msg)
        self.count += 1
