"""The chip follows the float model: labels on synthetic test clips, spikes layer by layer."""

import numpy as np
import pytest

import snn
import snn.chip
from snn.backends.chip.agreement import Agreement

from .conftest import SHIPPED

pytestmark = pytest.mark.timeout(900)


def test_clip_labels_and_spikes_agree(shipped_program):
    from eventpipe.runtime.chip_counts import checkpoint_channels, count_clips

    model, meta = snn.load_checkpoint(SHIPPED)
    clips = count_clips(12, seed=0, split="test", channels=checkpoint_channels(meta))          # one clip per class
    a = Agreement(shipped_program, model)
    a.clips([c[:, None] for c in clips])
    assert a.labels == 12
    assert a.top1 >= 11 / 12
    per = a.per_layer()
    assert len(per) == sum(op.kind == "lif" for op in shipped_program.ops)
    # quantisation flips few spikes in the first layers; divergence grows with depth but stays small
    assert per["ConvBlock1_1.0.Conv.lif1"] > 0.99
    assert min(per.values()) > 0.8


def test_stream_spikes_agree(shipped_program, stream_frames):
    model, _ = snn.load_checkpoint(SHIPPED)
    b = Agreement(shipped_program, model)
    b.stream(stream_frames[:20].astype(np.int32))
    assert b.labels == 20
    per = b.per_layer()
    assert per["ConvBlock1_1.0.Conv.lif1"] > 0.99 and min(per.values()) > 0.8


class _Echo:
    """An 'executor' that replays the float model itself, with hand-made differences: the label of
    chosen steps moved to another class, one spike of one op flipped at one step."""

    def __init__(self, program, model, flip_label_steps=(), flip_spike=None):
        from snn.backends.chip.agreement import _float_spikes
        from snn.backends.chip.compile import normalise

        self.p, self.m, self.n = program, model, 0
        self.flip_label_steps, self.flip_spike = set(flip_label_steps), flip_spike
        self._spk, self._norm = _float_spikes, normalise

    def step(self, counts, state=None, record=True):
        import torch

        from snn.backends.chip.stats import Stats

        with torch.no_grad():
            out, ctx = self.m.run(self._norm(counts, self.p.meta["encoding"])[None], state, record_spikes=True)
        logits = out[0].numpy().astype(np.float64) / self.p.logit_scale
        if self.n in self.flip_label_steps:      # negated: the argmax becomes the argmin
            logits = -logits
        st = Stats.empty(self.p, True)
        for op in self.p.ops:
            if op.kind == "lif":
                s = self._spk(ctx, op.attrs["float_keys"], self.p.buffers[op.dst]).astype(np.uint8)
                if self.flip_spike is not None and self.flip_spike == (self.n, op.name):
                    s.reshape(-1)[0] ^= 1
                st.record[op.name] = s
        self.n += 1
        return logits, ctx.new, st


def _small_compiled():
    import torch

    torch.manual_seed(0)
    model = snn.create_model("meta_spikeformer_tiny", embed_dims=(8, 16, 16, 16), depths=(1, 1), num_classes=5,
                             in_channels=2, T=2, v_threshold=0.5).eval()
    with torch.no_grad():    # distinct logits even where the head neuron is silent: no ties
        model.head.bias.copy_(torch.linspace(-0.2, 0.2, 5))
    enc = {"norm": "log1p", "scale": 0.25, "clip": 255}
    return model, snn.chip.compile(model, input_size=(16, 16), encoding=enc)


def test_agreement_counts_a_hand_made_stream():
    """10 stream steps; the 'chip' differs from the float model only in the raw label of steps 3 and 7
    and one spike of one op at step 5: raw 8/10 (and 8/10 decoded: with ema 0 the decoder's label is
    the argmax), per-layer 1 - 1/(pairs) for that op only, the first divergence is that op; the
    per-step labels name exactly those two steps."""
    from snn.backends.chip.agreement import runtime_decoder

    model, prog = _small_compiled()
    lifs = [op for op in prog.ops if op.kind == "lif"]
    target = lifs[3].name
    frames = np.random.default_rng(0).poisson(2.0, (10, 2, 16, 16)).astype(np.int32)
    a = Agreement(prog, model, executor=_Echo(prog, model, flip_label_steps=(3, 7), flip_spike=(5, target)),
                  decoder=runtime_decoder([str(i) for i in range(5)], ema=0.0))
    a.stream(frames)
    assert (a.labels_same, a.labels) == (8, 10)
    assert (a.decoded_same, a.decoded) == (8, 10)      # ema 0: the decoder's label is the argmax
    # per step: (chip raw, float raw, chip decoded, float decoded); they differ at steps 3 and 7 only
    assert len(a.step_labels) == 10
    assert [i for i, (c, f, cd, fd) in enumerate(a.step_labels) if c != f] == [3, 7]
    assert [i for i, (c, f, cd, fd) in enumerate(a.step_labels) if cd != fd] == [3, 7]
    assert all(cd == c and fd == f for c, f, cd, fd in a.step_labels)
    per = a.per_layer()
    c, h, w = prog.buffers[lifs[3].dst]
    assert per[target] == 1 - 1 / (10 * c * h * w)
    assert all(v == 1.0 for k, v in per.items() if k != target)
    assert a.first_divergence() == target
    assert list(per) == [op.name for op in lifs]          # program order


def test_agreement_counts_hand_made_clips():
    """Clip labels: the argmax of the summed step logits - identical steps agree on every clip; with
    every step's logits negated, the clip's label is the float's argmin: no clip agrees."""
    model, prog = _small_compiled()
    rng = np.random.default_rng(1)
    clips = rng.poisson(2.0, (2, 3, 2, 16, 16)).astype(np.int32)     # T=2, 3 clips in one batch
    a = Agreement(prog, model, executor=_Echo(prog, model))
    a.clips([clips])
    assert (a.labels_same, a.labels) == (3, 3) and a.first_divergence() is None
    b = Agreement(prog, model, executor=_Echo(prog, model, flip_label_steps=(0, 1)))
    b.clips([clips])
    assert (b.labels_same, b.labels) == (0, 3)
    assert [f for _, f in b.clip_labels] == [f for _, f in a.clip_labels]


def test_benchmark_missing_checkpoint_is_one_usage_line(tmp_path):
    """``benchmarks/chip_agreement.py --checkpoint MISSING`` (with or without ``--attribute``)
    was a FileNotFoundError traceback; it is one argparse error line, exit 2."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "chip_agreement.py"
    for extra in ([], ["--attribute"]):
        proc = subprocess.run([sys.executable, str(script), "--checkpoint", str(tmp_path / "no.pt"), *extra],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr.strip().splitlines()[-1].endswith(f"--checkpoint {tmp_path / 'no.pt'}: no such file")


def test_benchmark_unknown_profile_is_one_usage_line():
    """``--profile spek``: one argparse error line naming the closest profile, exit 2, before any work
    (the default ``auto`` is the profile the checkpoint was snapped for)."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "chip_agreement.py"
    proc = subprocess.run([sys.executable, str(script), "--profile", "spek"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "--profile" in proc.stderr and "did you mean 'speck'" in proc.stderr
