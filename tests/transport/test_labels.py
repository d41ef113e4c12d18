"""LabelDecoder: EMA math, hysteresis, threshold, top-k, emission policy."""

from __future__ import annotations

import numpy as np
import pytest

from eventpipe.labels import LabelDecoder, choose_label, ema_update, softmax

NAMES = ["wave", "clap", "walk"]


def logits_for(p):
    return np.log(np.asarray(p, dtype=np.float64))


def test_softmax_and_ema_math():
    p1, p2 = np.array([0.7, 0.2, 0.1]), np.array([0.1, 0.8, 0.1])
    np.testing.assert_allclose(softmax(logits_for(p1)), p1)
    s = ema_update(None, p1, 0.6)
    np.testing.assert_allclose(s, p1)
    s = ema_update(s, p2, 0.6)
    np.testing.assert_allclose(s, 0.6 * p1 + 0.4 * p2)


def test_decoder_smooths_and_reports_topk():
    dec = LabelDecoder(NAMES, ema=0.5, topk=2)
    (m,) = dec.step(logits_for([[0.7, 0.2, 0.1]]), seq=3, t_us=1000)
    assert m["label"] == "wave" and m["stream"] == 0 and (m["seq"], m["t_us"]) == (3, 1000)
    assert m["topk"][0][0] == "wave" and len(m["topk"]) == 2
    assert m["score"] == pytest.approx(0.7)
    # clap wins on the raw step, but the smoothed average (0.4, 0.5, 0.1) only just
    msgs = dec.step(logits_for([[0.1, 0.8, 0.1]]), seq=4)
    assert msgs[0]["label"] == "clap"
    assert msgs[0]["score"] == pytest.approx(0.5)
    assert [n for n, _ in msgs[0]["topk"]] == ["clap", "wave"]
    assert msgs[0]["topk"][1][1] == pytest.approx(0.4)


def test_hysteresis_holds_label_until_margin():
    dec = LabelDecoder(NAMES, ema=0.0, hysteresis=0.2)
    assert dec.step(logits_for([0.6, 0.3, 0.1]))[0]["label"] == "wave"
    assert dec.step(logits_for([0.45, 0.5, 0.05])) == []  # clap ahead by 0.05 < 0.2
    assert dec.states[0].label == 0
    (m,) = dec.step(logits_for([0.3, 0.6, 0.1]))  # ahead by 0.3
    assert m["label"] == "clap"
    assert choose_label(np.array([0.4, 0.5, 0.1]), 0, 0.0, 0.2) == 0


def test_threshold_gives_no_label():
    dec = LabelDecoder(NAMES, ema=0.0, threshold=0.5)
    (m,) = dec.step(logits_for([0.4, 0.35, 0.25]))
    assert m["label"] is None and m["score"] is None and len(m["topk"]) == 3
    (m,) = dec.step(logits_for([0.8, 0.1, 0.1]))
    assert m["label"] == "wave"


def test_emit_every_and_on_change():
    dec = LabelDecoder(NAMES, ema=0.0, emit_every=3, emit_on_change=False)
    out = [len(dec.step(logits_for([0.8, 0.1, 0.1]))) for _ in range(7)]
    assert out == [0, 0, 1, 0, 0, 1, 0]
    dec = LabelDecoder(NAMES, ema=0.0)
    out = [len(dec.step(logits_for([0.8, 0.1, 0.1]))) for _ in range(3)]
    assert out == [1, 0, 0]


def test_batches_streams_truth_latency_and_torch():
    torch = pytest.importorskip("torch")
    dec = LabelDecoder(NAMES, ema=0.6)
    x = torch.tensor(logits_for([[0.8, 0.1, 0.1], [0.1, 0.1, 0.8]]), requires_grad=True)
    import time
    msgs = dec.step(x, streams=["a", "b"], seq=[1, 2], truth=["wave", 1],
                    t_arrival=time.monotonic())
    assert [(m["stream"], m["label"], m["truth"]) for m in msgs] == \
        [("a", "wave", "wave"), ("b", "walk", "clap")]
    assert all(m["latency_ms"] >= 0 for m in msgs)
    dec.reset("a")
    assert set(dec.states) == {"b"}


def test_bad_arguments():
    with pytest.raises(ValueError):
        LabelDecoder([])
    with pytest.raises(ValueError):
        LabelDecoder(NAMES, ema=1.0)
    with pytest.raises(ValueError):
        LabelDecoder(NAMES).step(np.zeros((1, 4)))
    with pytest.raises(ValueError):
        LabelDecoder(NAMES).step(np.zeros((2, 3)), streams=[0])
