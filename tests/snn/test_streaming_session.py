"""StreamingSession: batched streams equal separate runs; reset/snapshot behave."""

import torch

from snn import create_model
from snn.streaming import StreamingSession

torch.manual_seed(0)


def _model():
    torch.manual_seed(0)
    m = create_model("meta_spikeformer_tiny", embed_dims=(8, 16, 32, 48), num_classes=5, T=4)
    return m.eval()


def _frames(n, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 2, 32, 32, generator=g) < 0.2).float() * 3


def test_batched_streams_equal_sequence_forward():
    m = _model()
    a, b = _frames(4, 1), _frames(4, 2)
    sess = StreamingSession(m)
    got_a, got_b = [], []
    for t in range(4):
        frames = {"a": a[t], "b": b[t]} if t != 1 else {"a": a[t]}
        out = sess.step(frames)
        got_a.append(out["a"])
        if "b" in out:
            got_b.append(out["b"])
    out = sess.step({"b": b[1]})  # b catches up alone: state must not depend on batching
    with torch.no_grad():
        ref_a, _ = m.forward_sequence(a[:, None])
        ref_b, _ = m.forward_sequence(torch.stack([b[0], b[2], b[3], b[1]])[:, None])
    assert torch.allclose(torch.stack(got_a), ref_a[:, 0], atol=1e-6)
    assert torch.allclose(torch.stack(got_b + [out["b"]]), ref_b[:, 0], atol=1e-6)


def test_reset_and_snapshot():
    m = _model()
    x = _frames(3, 3)
    sess = StreamingSession(m)
    first = sess.step({0: x[0]})[0]
    snap = sess.snapshot()
    second = sess.step({0: x[1]})[0]
    sess.restore(snap)
    assert torch.equal(sess.step({0: x[1]})[0], second)
    sess.reset(0)
    assert torch.equal(sess.step({0: x[0]})[0], first)


def test_forward_per_step_equals_sequence_logits():
    m = _model()
    x = _frames(4, 9)[:, None]
    with torch.no_grad():
        seq, _ = m.forward_sequence(x)
        assert torch.equal(m(x, per_step=True), seq)
        assert torch.allclose(m(x), seq.mean(0))
