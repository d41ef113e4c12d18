"""LabelDecoder at its boundaries: the documented rules (eventpipe/labels.py docstring)
checked with probabilities that are exact in binary, so ``<`` and ``<=`` differ.

- the label is None when ``max(smooth) < threshold`` (equal: a label);
- a current label L yields to K when ``smooth[K] >= smooth[L] + hysteresis`` (equal: switch);
- softmax is exact for huge logits (no overflow to nan);
- ``latency_ms`` is milliseconds; an integer truth names ``class_names[truth]``.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from eventpipe.labels import LabelDecoder, choose_label, softmax

NAMES = ["wave", "clap", "walk"]


@pytest.mark.parametrize("threshold,label", [(0.5, 0), (0.5 + 2 ** -20, None), (0.0, 0),
                                             (1.0, None)])
def test_threshold_boundary(threshold, label):
    assert choose_label(np.array([0.5, 0.25, 0.25]), None, threshold, 0.0) == label


def test_threshold_one_still_labels_a_certain_class():
    assert choose_label(np.array([1.0, 0.0, 0.0]), None, 1.0, 0.0) == 0


@pytest.mark.parametrize("hysteresis,label", [(0.25, 1), (0.25 + 2 ** -20, 0), (0.0, 1)])
def test_hysteresis_boundary(hysteresis, label):
    # clap 0.5 against the current wave 0.25: ahead by exactly 0.25
    assert choose_label(np.array([0.25, 0.5, 0.25]), 0, 0.0, hysteresis) == label


def test_current_label_kept_when_it_is_still_the_best_and_none_stays_none_below_threshold():
    assert choose_label(np.array([0.25, 0.5, 0.25]), 1, 0.0, 0.9) == 1
    assert choose_label(np.array([0.375, 0.25, 0.375]), None, 0.5, 0.0) is None


def test_decoder_threshold_equal_gives_a_label():
    dec = LabelDecoder(NAMES, ema=0.0, threshold=0.5)
    (m,) = dec.step(np.log([0.5, 0.25, 0.25]))
    assert m["label"] == "wave" and m["score"] == pytest.approx(0.5)


def test_softmax_of_huge_logits_is_exact():
    p = softmax(np.array([[1000.0, 0.0, -1000.0], [800.0, 800.0, 0.0]]))
    assert np.isfinite(p).all()
    np.testing.assert_allclose(p, [[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]], atol=1e-300)
    # shift invariance: exp(a + c) / sum exp(b + c)
    x = np.array([0.3, -1.2, 2.0])
    np.testing.assert_allclose(softmax(x + 700.0), softmax(x), rtol=1e-12)
    np.testing.assert_allclose(softmax(x), np.exp(x) / np.exp(x).sum(), rtol=1e-12)


def test_decoder_survives_huge_logits():
    dec = LabelDecoder(NAMES, ema=0.5)
    (m,) = dec.step(np.array([2000.0, 10.0, -3000.0]))
    assert m["label"] == "wave" and m["score"] == 1.0


def test_latency_is_in_milliseconds():
    dec = LabelDecoder(NAMES)
    before = time.monotonic()
    arrival = before - 0.25                  # the newest events arrived 250 ms ago
    threading.Event().wait(0.01)
    (m,) = dec.step(np.zeros(3), t_arrival=arrival)
    after = time.monotonic()
    assert 250.0 <= m["latency_ms"] <= (after - arrival) * 1e3
    assert m["latency_ms"] < 250.0 + 10_000  # not microseconds


def test_latency_per_stream_of_a_batch():
    dec = LabelDecoder(NAMES)
    now = time.monotonic()
    a, b = dec.step(np.zeros((2, 3)), t_arrival=[now - 1.0, now - 2.0])
    assert 1000.0 <= a["latency_ms"] < 1500.0 and 2000.0 <= b["latency_ms"] < 2500.0
    assert LabelDecoder(NAMES).step(np.zeros(3))[0]["latency_ms"] is None


@pytest.mark.parametrize("truth,name", [(0, "wave"), (1, "clap"), (2, "walk"), (3, 3), (-1, -1),
                                        ("jump", "jump"), (np.int64(2), "walk")])
def test_truth_index_names_the_class(truth, name):
    (m,) = LabelDecoder(NAMES).step(np.zeros(3), truth=truth)
    assert m["truth"] == name


def test_topk_is_ordered_by_smoothed_probability_and_stable_on_ties():
    dec = LabelDecoder(NAMES, ema=0.0, topk=3)
    (m,) = dec.step(np.log([0.25, 0.5, 0.25]))
    assert [n for n, _ in m["topk"]] == ["clap", "wave", "walk"]
    assert [p for _, p in m["topk"]] == pytest.approx([0.5, 0.25, 0.25])
    assert LabelDecoder(NAMES, topk=99).topk == 3


def test_ema_weights_the_previous_state():
    dec = LabelDecoder(NAMES, ema=0.75, emit_every=1)
    dec.step(np.log([0.5, 0.25, 0.25]))
    (m,) = dec.step(np.log([0.25, 0.5, 0.25]))
    # 0.75 * (0.5, 0.25, 0.25) + 0.25 * (0.25, 0.5, 0.25)
    assert m["topk"][0] == ["wave", pytest.approx(0.4375)]
    assert m["topk"][1] == ["clap", pytest.approx(0.3125)]


def test_emit_every_counts_steps_since_the_last_message():
    dec = LabelDecoder(NAMES, ema=0.0, emit_every=2, emit_on_change=True)
    p, q = np.log([0.5, 0.25, 0.25]), np.log([0.25, 0.5, 0.25])
    # step 1 first label (emit), 2 same (since 1), 3 same (since 2: emit), 4 change (emit),
    # 5 same (since 1), 6 same (since 2: emit)
    out = [len(dec.step(x)) for x in (p, p, p, q, q, q)]
    assert out == [1, 0, 1, 1, 0, 1]


@pytest.mark.parametrize("kw", [{"threshold": -0.1}, {"threshold": 1.1}, {"hysteresis": -0.1},
                                {"hysteresis": 1.5}, {"emit_every": -1}, {"topk": 0},
                                {"ema": -0.1}])
def test_out_of_range_options_are_rejected(kw):
    with pytest.raises(ValueError):
        LabelDecoder(NAMES, **kw)


@pytest.mark.parametrize("kw", [{"threshold": 0.0}, {"threshold": 1.0}, {"hysteresis": 0.0},
                                {"hysteresis": 1.0}, {"emit_every": 0}, {"topk": 1},
                                {"ema": 0.0}])
def test_edge_options_are_accepted(kw):
    LabelDecoder(NAMES, **kw)


@pytest.mark.parametrize("key,inside,outside", [
    ("challenger_ema", 1 - 2 ** -20, 1.0), ("challenger_ema", 0.0, -2 ** -20),
    ("release", 1.0, 1 + 2 ** -20), ("release", 0.0, -2 ** -20),
    ("release_hysteresis", 1.0, 1 + 2 ** -20), ("release_hysteresis", 0.0, -2 ** -20),
])
def test_decoder_setting_ranges_at_both_edges(key, inside, outside):
    """challenger_ema in [0, 1), release and release_hysteresis in [0, 1], as documented."""
    ema = 1 - 2 ** -21  # above every inside challenger_ema (one no faster than ema is dropped)
    assert getattr(LabelDecoder(NAMES, ema=ema, **{key: inside}), key) == inside
    with pytest.raises(ValueError, match=key):
        LabelDecoder(NAMES, **{key: outside})


@pytest.mark.parametrize("hysteresis,label", [(0.125, 1), (0.125 + 2 ** -20, 0), (0.25, 0)])
def test_challenger_must_beat_the_current_labels_fast_support_too(hysteresis, label):
    """With a challenger EMA the current label's support is the larger of its slow and fast
    EMA: wave's slow 0.25 but fast 0.375 against clap's fast 0.5 - clap is ahead of the fast
    support by exactly 0.125 (equal: switch), of the slow one by 0.25."""
    smooth = np.array([0.25, 0.5, 0.25])
    fast = np.array([0.375, 0.5, 0.125])
    assert choose_label(smooth, 0, 0.0, hysteresis, fast) == label


@pytest.mark.parametrize("key", ["ema", "threshold", "hysteresis", "challenger_ema", "release",
                                 "release_hysteresis", "margin"])
@pytest.mark.parametrize("bad", ["0.5", float("nan"), True, None])
def test_fraction_settings_that_are_not_numbers_name_the_key(key, bad):
    """A string, NaN or bool for a fraction is a ValueError naming the setting (a string was a
    TypeError from the comparison); None is allowed only where the setting is optional."""
    if bad is None and key in ("challenger_ema", "release", "release_hysteresis"):
        assert getattr(LabelDecoder(NAMES, **{key: bad}), key) is None
        return
    with pytest.raises(ValueError, match=f"^{key} must be in \\[0, 1"):
        LabelDecoder(NAMES, **{key: bad})
