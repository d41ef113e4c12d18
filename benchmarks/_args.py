"""argparse types the benchmarks share: a bad value is one usage line naming the flag."""

from __future__ import annotations

import argparse
import math


def at_least(low: int):
    """An integer ``>= low`` (``--repeat``, ``--frames``)."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
        if v < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {v}")
        return v
    return parse


def positive_seconds(text: str) -> float:
    """A finite number > 0 (a duration: ``inf`` would never end)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number: {text!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return v
