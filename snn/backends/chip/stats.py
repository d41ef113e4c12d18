"""Per-step, per-layer operation counts of the chip (the executor and the reference count the same)."""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional

import numpy as np

#: the counters, per op and step (summed over the batch rows)
COUNTERS = (
    "ac",              # synaptic accumulates: one weight added because one binary spike arrived
    "mac",             # multiply-accumulates on graded inputs (the first layer's codes; graded maps)
    "neuron_updates",  # membrane updates (every neuron, every step: synchronous time steps)
    "spikes",          # spikes emitted
    "attn_increments",  # SDSA: +1 into K^T V for each (k, v) spike pair of a token and head
    "attn_row_adds",   # SDSA: one row of K^T V added for each q spike
    "other_adds",      # adds without a weight (the head's token sum)
    "saturations",     # values clamped to the membrane / accumulator / input range
    "weight_bytes",    # bytes of weights read by the accumulates and MACs
)
IDX = {k: i for i, k in enumerate(COUNTERS)}


@dataclasses.dataclass
class Stats:
    """``counts[i, j]``: counter ``COUNTERS[j]`` of op ``i`` for one step (batch summed)."""

    names: List[str]
    kinds: List[str]
    counts: np.ndarray
    record: Optional[Dict[str, np.ndarray]] = None  # spike maps per LIF op, [B, C, H, W] (if asked)

    @classmethod
    def empty(cls, program, record: bool = False) -> "Stats":
        return cls([op.name for op in program.ops], [op.kind for op in program.ops],
                   np.zeros((len(program.ops), len(COUNTERS)), np.int64), {} if record else None)

    def add(self, i: int, key: str, n) -> None:
        self.counts[i, IDX[key]] += int(n)

    @property
    def total(self) -> Dict[str, int]:
        return {k: int(v) for k, v in zip(COUNTERS, self.counts.sum(0))}

    def layer(self, name: str) -> Dict[str, int]:
        i = self.names.index(name)
        return {k: int(v) for k, v in zip(COUNTERS, self.counts[i])}

    def as_rows(self) -> List[Dict]:
        return [{"layer": n, "kind": k, **{c: int(v) for c, v in zip(COUNTERS, row)}}
                for n, k, row in zip(self.names, self.kinds, self.counts)]

    def __iadd__(self, other: "Stats") -> "Stats":
        self.counts = self.counts + other.counts
        return self

    def __eq__(self, other) -> bool:
        return isinstance(other, Stats) and self.names == other.names and np.array_equal(self.counts, other.counts)


def weight_bytes(entries: int, weight_bits: int) -> int:
    return (int(entries) * int(weight_bits) + 7) // 8
