"""LabelDecoder's challenger EMA: a challenger is judged on a faster EMA than the current
label's (hand-worked logit sequences, eventpipe/labels.py)."""

from __future__ import annotations

import numpy as np
import pytest

from eventpipe.labels import LabelDecoder, choose_label, decoder_settings
from tests.transport.test_labels_dwell import NAMES, C, W, labels


def test_a_clear_challenger_is_taken_a_step_sooner_and_a_blip_is_not():
    seq = [W, W, C, W, C, C, C]
    # slow EMA 0.5 (by hand): t2 [.45 .45 .1], t3 [.625 .275 .1], t4 [.3625 .5375 .1],
    # t5 [.23125 .66875 .1]
    # single EMA, hysteresis 0.4: clap needs smooth >= wave + 0.4: not at t4 (.5375 < .7625),
    # at t5 (.66875 >= .63125)
    single = LabelDecoder(NAMES, ema=0.5, hysteresis=0.4, emit_every=1)
    assert labels(single, seq) == ["wave"] * 5 + ["clap"] * 2
    # challenger EMA 0 (the raw probabilities): t2's one-step clap (0.8) does not beat wave's
    # support max(.45, .1) + 0.4 = .85; t4's clap does: 0.8 >= max(.3625, .1) + 0.4 = .7625
    fast = LabelDecoder(NAMES, ema=0.5, hysteresis=0.4, challenger_ema=0.0, emit_every=1)
    assert labels(fast, seq) == ["wave"] * 4 + ["clap"] * 3


def test_the_current_labels_fast_support_counts_too():
    smooth, fast = np.array([0.3, 0.5, 0.2]), np.array([0.45, 0.55, 0.0])
    # the challenger (class 1) leads the current label's slow support (.3) by .25, but its
    # fast support (.45) only by .10: with hysteresis .2 the label stays
    assert choose_label(smooth, 0, 0.0, 0.2, fast) == 0
    assert choose_label(smooth, 0, 0.0, 0.1, fast) == 1
    # without a fast EMA: the single-EMA rule on smooth (.5 >= .3 + .2)
    assert choose_label(smooth, 0, 0.0, 0.2) == 1
    # the threshold applies to the challengers' EMA
    assert choose_label(np.array([0.6, 0.4, 0.0]), None, 0.55, 0.0, np.array([0.5, 0.5, 0.0])) is None


def test_no_faster_challenger_ema_is_the_single_ema_rule():
    rng = np.random.default_rng(3)
    seq = rng.dirichlet(np.ones(3) * 0.7, size=200)
    want = labels(LabelDecoder(NAMES, ema=0.5, hysteresis=0.2, emit_every=1), seq)
    for ch in (None, 0.5, 0.8):
        got = labels(LabelDecoder(NAMES, ema=0.5, hysteresis=0.2, challenger_ema=ch, emit_every=1), seq)
        assert got == want
    assert labels(LabelDecoder(NAMES, ema=0.5, hysteresis=0.2, challenger_ema=0.0, emit_every=1), seq) != want


def test_bad_challenger_ema_and_stored_settings():
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="challenger_ema"):
            LabelDecoder(NAMES, ema=0.5, challenger_ema=bad)
    stored = {"ema": 0.7, "hysteresis": 0.3, "dwell": 1, "challenger_ema": 0.2}
    cfg = {"ema": None, "hysteresis": None, "dwell": None, "challenger_ema": None}
    assert decoder_settings(cfg, stored) == stored
    assert decoder_settings(dict(cfg, challenger_ema=0.4), stored)["challenger_ema"] == 0.4
    # a checkpoint without one: the single-EMA rule
    assert decoder_settings(cfg, {"ema": 0.7})["challenger_ema"] is None
