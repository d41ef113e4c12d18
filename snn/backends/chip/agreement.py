"""How closely the chip follows the float model: label agreement and per-layer spike agreement."""

from __future__ import annotations

from typing import Dict, Iterable

import numpy as np
import torch

from .compile import normalise
from .executor import Executor
from .program import Program


def _float_spikes(ctx, keys, shape):
    parts = [ctx.spikes[k][0] for k in keys]
    parts = [p.reshape(p.shape[0], -1, *shape[1:]) for p in parts]
    return torch.cat(parts, 1).numpy().reshape((-1,) + tuple(shape)) > 0


class Agreement:
    """Accumulates label and per-LIF spike agreement between a program and its float model."""

    def __init__(self, program: Program, model):
        self.program = program
        self.model = model.eval()
        self.executor = Executor(program)
        self.enc = program.meta["encoding"]
        self.labels_same = 0
        self.labels = 0
        self.spike_same: Dict[str, int] = {}
        self.spike_total: Dict[str, int] = {}

    def _step(self, counts: np.ndarray, cstate, fstate):
        logits, cstate, stats = self.executor.step(counts, cstate, record=True)
        with torch.no_grad():
            out, ctx = self.model.run(normalise(counts, self.enc)[None], fstate, record_spikes=True)
        for op in self.program.ops:
            if op.kind != "lif":
                continue
            c = stats.record[op.name] > 0
            f = _float_spikes(ctx, op.attrs["float_keys"], self.program.buffers[op.dst])
            self.spike_same[op.name] = self.spike_same.get(op.name, 0) + int((c == f).sum())
            self.spike_total[op.name] = self.spike_total.get(op.name, 0) + c.size
        fl = out[0] if not isinstance(out, tuple) else out[0][0]
        return logits, fl.numpy(), cstate, ctx.new

    def clips(self, clips: Iterable[np.ndarray]) -> None:
        """Clips ``[T, B, C, H, W]`` from rest; the label is the argmax of the mean logits over T."""
        for clip in clips:
            cs = fs = None
            lc, lf = 0, 0
            for t in range(clip.shape[0]):
                l1, l2, cs, fs = self._step(clip[t], cs, fs)
                lc, lf = lc + l1, lf + l2
            self.labels_same += int((np.argmax(lc, 1) == np.argmax(lf, 1)).sum())
            self.labels += clip.shape[1]

    def stream(self, frames: np.ndarray) -> None:
        """A stream ``[N, C, H, W]`` stepped with state carried; one label per step."""
        cs = fs = None
        for f in frames:
            l1, l2, cs, fs = self._step(f[None], cs, fs)
            self.labels_same += int(np.argmax(l1, 1)[0] == np.argmax(l2, 1)[0])
            self.labels += 1

    @property
    def top1(self) -> float:
        return self.labels_same / max(self.labels, 1)

    def per_layer(self) -> Dict[str, float]:
        return {k: self.spike_same[k] / self.spike_total[k] for k in self.spike_same}
