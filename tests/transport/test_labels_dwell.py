"""LabelDecoder's dwell: a challenger must win ``dwell`` steps in a row (hand-made logits)."""

from __future__ import annotations

import numpy as np
import pytest

from eventpipe.labels import LabelDecoder

NAMES = ["wave", "clap", "walk"]
W, C, K = [0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]


def labels(dec, seq):
    out = []
    for p in seq:
        (m,) = dec.step(np.log(np.asarray(p, np.float64)))
        out.append(m["label"])
    return out


def test_dwell_one_is_the_raw_argmax():
    dec = LabelDecoder(NAMES, ema=0.0, emit_every=1)
    assert labels(dec, [W, C, W, K]) == ["wave", "clap", "wave", "walk"]


def test_dwell_holds_the_label_until_a_challenger_wins_that_many_steps_in_a_row():
    dec = LabelDecoder(NAMES, ema=0.0, dwell=3, emit_every=1)
    seq = [W, C, W, C, C, C, C, K, K, C, K, K, K]
    # one- and two-step blips of clap stay wave; the third clap in a row switches
    # walk,walk then clap breaks walk's streak; walk needs three in a row again
    assert labels(dec, seq) == ["wave", "wave", "wave", "wave", "wave", "clap", "clap",
                                "clap", "clap", "clap", "clap", "clap", "walk"]


def test_dwell_streak_restarts_when_the_challenger_changes():
    dec = LabelDecoder(NAMES, ema=0.0, dwell=2, emit_every=1)
    # clap then walk: each challenger wins once, never twice in a row -> wave stays
    assert labels(dec, [W, C, K, C, K, K]) == ["wave", "wave", "wave", "wave", "wave", "walk"]


def test_dwell_combines_with_ema_and_hysteresis_per_stream():
    dec = LabelDecoder(NAMES, ema=0.5, hysteresis=0.1, dwell=2)
    first = dec.step(np.log(np.array([W, C])), streams=["a", "b"])
    assert [m["label"] for m in first] == ["wave", "clap"]
    # stream a: smoothed (0.45, 0.45, 0.1): clap does not beat wave by 0.1 -> no challenge
    assert dec.step(np.log(np.array([C])), streams=["a"]) == []
    # (0.275, 0.625, 0.1): clap wins once; (0.19, 0.71, 0.1): twice -> switches
    assert dec.step(np.log(np.array([C])), streams=["a"]) == []
    (m,) = dec.step(np.log(np.array([C])), streams=["a"])
    assert m["label"] == "clap" and m["score"] == pytest.approx(0.7125)
    assert dec.states["b"].label == 1


def test_changed_label_is_emitted_once_when_it_finally_switches():
    dec = LabelDecoder(NAMES, ema=0.0, dwell=2)
    msgs = [dec.step(np.log(np.asarray(p)))for p in [W, C, C, C]]
    assert [len(m) for m in msgs] == [1, 0, 1, 0]
    assert msgs[2][0]["label"] == "clap"


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_bad_dwell_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="dwell"):
        LabelDecoder(NAMES, dwell=bad)


def test_decoder_settings_config_then_checkpoint_then_none():
    from eventpipe.labels import decoder_settings

    stored = {"ema": 0.6, "hysteresis": 0.3, "dwell": 2}
    unset = {"ema": None, "hysteresis": None, "dwell": None, "topk": 3}
    # (challenger_ema: None where neither sets it; tests/transport/test_labels_challenger.py)
    assert decoder_settings(unset, stored) == dict(stored, challenger_ema=None)
    assert decoder_settings(unset, None) == {"ema": 0.0, "hysteresis": 0.0, "dwell": 1,
                                             "challenger_ema": None}
    assert decoder_settings({"ema": 0.0, "hysteresis": None, "dwell": 3}, stored) == {
        "ema": 0.0, "hysteresis": 0.3, "dwell": 3, "challenger_ema": None}
    assert decoder_settings(unset, {"ema": 0.2}) == {"ema": 0.2, "hysteresis": 0.0, "dwell": 1,
                                                     "challenger_ema": None}


def test_no_confident_class_must_also_win_dwell_steps_in_a_row():
    # threshold 0.5: a flat step has no candidate (None); with dwell 2 the label drops to None
    # only after two flat steps in a row, also right after the current label won a step; wave
    # then needs two steps in a row again
    U = [1 / 3, 1 / 3, 1 / 3]
    dec = LabelDecoder(NAMES, ema=0.0, dwell=2, threshold=0.5, emit_every=1)
    assert labels(dec, [W, W, U, U, W, U, W, W]) == ["wave", "wave", "wave", None, None, None,
                                                     None, "wave"]
