"""How closely the chip follows the float model: label agreement and per-layer spike agreement.

The measurement (``docs/chip.md``, "Agreement with the float model"; ``benchmarks/chip_agreement.py``):

* **clips**: each clip runs ``T`` steps from rest on both forms; its label is the argmax of the
  mean of the ``T`` step logits (the chip's integer logits: their sum - the same argmax, as one
  scale holds all logits).  Agreement = clips with the same label / clips.
* **streams**: frames stepped in order with the state carried from rest at the stream's start.
  Two labels per step, both counted: the raw ``argmax`` of the step's logits, and the label a user
  sees, out of a decoder (``eventpipe.labels.LabelDecoder`` with the runtime's defaults; one decoder
  per form, fed that form's logits).  Agreement = steps with the same label / steps (``None`` =
  ``None`` counts as the same).
* **spikes**: per LIF op, the fraction of (neuron, step) pairs where both forms spike or both do
  not, over everything stepped; :meth:`Agreement.first_divergence` is the first op, in program
  order, whose spikes ever differed.
"""

from __future__ import annotations

from typing import Callable, Dict, Iterable, Optional

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
    """Accumulates label and per-LIF spike agreement between a program and its float model.

    ``executor``: how to step the program (default :class:`Executor`; anything with its ``step(frame,
    state, record=True)``).  ``decoder``: a factory returning a fresh label decoder (an object with
    ``step(logits) -> messages`` and ``states[0].label``, e.g. ``eventpipe.labels.LabelDecoder``) for
    the decoded stream labels."""

    def __init__(self, program: Program, model, *, executor=None, decoder: Optional[Callable[[], object]] = None):
        self.program = program
        self.model = model.eval()
        self.executor = executor if executor is not None else Executor(program)
        self.enc = program.meta["encoding"]
        self.decoder = decoder
        self.labels_same = 0
        self.labels = 0
        self.decoded_same = 0
        self.decoded = 0
        self.spike_same: Dict[str, int] = {}
        self.spike_total: Dict[str, int] = {}
        self.diverged: Dict[str, bool] = {}
        self.clip_labels: list = []   # (chip label, float label) of every clip, in order
        self.step_labels: list = []   # per stream step: (chip raw, float raw, chip decoded, float decoded)

    def _step(self, counts: np.ndarray, cstate, fstate):
        logits, cstate, stats = self.executor.step(counts, cstate, record=True)
        with torch.no_grad():
            out, ctx = self.model.run(normalise(counts, self.enc)[None], fstate, record_spikes=True)
        for op in self.program.ops:
            if op.kind != "lif":
                continue
            c = stats.record[op.name] > 0
            f = _float_spikes(ctx, op.attrs["float_keys"], self.program.buffers[op.dst])
            same = int((c == f).sum())
            self.spike_same[op.name] = self.spike_same.get(op.name, 0) + same
            self.spike_total[op.name] = self.spike_total.get(op.name, 0) + c.size
            self.diverged[op.name] = self.diverged.get(op.name, False) or same != c.size
        fl = out[0] if not isinstance(out, tuple) else out[0][0]
        return np.asarray(logits), fl.numpy(), cstate, ctx.new

    def clips(self, clips: Iterable[np.ndarray]) -> None:
        """Batches of clips ``[T, B, C, H, W]`` from rest; the label is the argmax of the mean logits over T."""
        for clip in clips:
            cs = fs = None
            lc, lf = 0, 0
            for t in range(clip.shape[0]):
                l1, l2, cs, fs = self._step(clip[t], cs, fs)
                lc, lf = lc + l1, lf + l2
            a, b = np.argmax(lc, 1), np.argmax(lf, 1)
            self.clip_labels += list(zip(a.tolist(), b.tolist()))
            self.labels_same += int((a == b).sum())
            self.labels += clip.shape[1]

    def stream(self, frames: np.ndarray) -> None:
        """A stream ``[N, C, H, W]`` stepped with state carried; one label per step (raw argmax, and
        decoded when the agreement has a decoder)."""
        cs = fs = None
        dec = (self.decoder(), self.decoder()) if self.decoder is not None else None
        for f in frames:
            l1, l2, cs, fs = self._step(f[None], cs, fs)
            a, b = int(np.argmax(l1, 1)[0]), int(np.argmax(l2, 1)[0])
            self.labels_same += int(a == b)
            self.labels += 1
            da = db = None
            if dec is not None:
                scale = float(self.program.logit_scale)
                dec[0].step(l1.astype(np.float64) * scale)
                dec[1].step(l2.astype(np.float64))
                da, db = dec[0].states[0].label, dec[1].states[0].label
                self.decoded_same += int(da == db)
                self.decoded += 1
            self.step_labels.append((a, b, da, db))

    @property
    def top1(self) -> float:
        return self.labels_same / max(self.labels, 1)

    @property
    def decoded_top1(self) -> float:
        return self.decoded_same / max(self.decoded, 1)

    def per_layer(self) -> Dict[str, float]:
        """Per LIF op (program order): the fraction of (neuron, step) pairs with the same spike."""
        return {k: self.spike_same[k] / self.spike_total[k] for k in self.spike_same}

    def first_divergence(self) -> Optional[str]:
        """The first LIF op (program order) whose spikes ever differed from the float model's."""
        for k, d in self.diverged.items():
            if d:
                return k
        return None


def runtime_decoder(class_names, stored=None, **overrides) -> Callable[[], object]:
    """A factory of the label decoder ``eventpipe run`` builds: the ``[decoder]`` defaults, with
    ``ema``/``hysteresis``/``dwell`` from the checkpoint's ``extra["decoder"]`` (``stored``) where
    the config leaves them unset (``eventpipe.labels.decoder_settings``); ``overrides`` win."""
    import dataclasses

    from eventpipe.labels import LabelDecoder, decoder_settings
    from eventpipe.runtime.config import DecoderConfig

    cfg = DecoderConfig()
    kw = dict(topk=cfg.topk, threshold=cfg.threshold, emit_every=cfg.emit_every, emit_on_change=cfg.emit_on_change)
    kw.update(decoder_settings(dataclasses.asdict(cfg), stored))
    kw.update(overrides)
    return lambda: LabelDecoder(class_names, **kw)
