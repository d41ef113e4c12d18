"""LabelDecoder's release: a label whose slow EMA has fallen below ``release`` keeps only its
fast support (hand-worked logit sequences, eventpipe/labels.py)."""

from __future__ import annotations

import numpy as np
import pytest

from eventpipe.labels import LabelDecoder, choose_label, decoder_settings
from tests.transport.test_labels_dwell import NAMES, C, W, labels


def test_choose_label_release_by_hand():
    smooth, fast = np.array([0.25, 0.45, 0.3]), np.array([0.05, 0.6, 0.35])
    # without release: clap (1) must beat wave's support max(.25, .05) + .4 = .65: .6 is not enough
    assert choose_label(smooth, 0, 0.0, 0.4, fast) == 0
    # wave's slow EMA .25 < release .3: its support is its fast EMA .05; .6 >= .05 + .4
    assert choose_label(smooth, 0, 0.0, 0.4, fast, release=0.3) == 1
    # ... with a margin of its own: .6 < .05 + .6
    assert choose_label(smooth, 0, 0.0, 0.4, fast, release=0.3, release_hysteresis=0.6) == 0
    # slow EMA .25 is not below release .25: the full support counts
    assert choose_label(smooth, 0, 0.0, 0.4, fast, release=0.25) == 0
    # single EMA: the support is smooth[L] either way; only the margin changes
    assert choose_label(smooth, 0, 0.0, 0.3, release=0.3) == 0              # .45 < .25 + .3
    assert choose_label(smooth, 0, 0.0, 0.3, release=0.3, release_hysteresis=0.1) == 1


def test_a_dropped_label_is_let_go_of_a_step_sooner():
    # W = wave at 0.8 (others 0.1), C = clap at 0.8.  ema 0.5, challenger_ema 0, hysteresis 0.5
    # slow EMA of wave: t0 .8, t1 .8, t2 .45, t3 .275; fast = the raw probabilities (wave .1 from t2)
    # without release clap needs .8 >= max(slow wave, .1) + .5: t2 .95 no, t3 .775 yes
    seq = [W, W, C, C, C]
    plain = LabelDecoder(NAMES, ema=0.5, hysteresis=0.5, challenger_ema=0.0, emit_every=1)
    assert labels(plain, seq) == ["wave"] * 3 + ["clap"] * 2
    # release 0.5: at t2 wave's slow EMA .45 < .5, its support is its fast .1: .8 >= .1 + .5
    rel = LabelDecoder(NAMES, ema=0.5, hysteresis=0.5, challenger_ema=0.0, release=0.5, emit_every=1)
    assert labels(rel, seq) == ["wave"] * 2 + ["clap"] * 3
    # a settled label with a one-step blip keeps its full support (slow EMA .45 at the blip is
    # below release .5, but the blip's .8 must beat wave's fast .1 + the release margin .75)
    strict = LabelDecoder(NAMES, ema=0.5, hysteresis=0.5, challenger_ema=0.0, release=0.5,
                          release_hysteresis=0.75, emit_every=1)
    assert labels(strict, [W, W, C, W, W]) == ["wave"] * 5


def test_release_off_is_the_old_rule_and_bad_values_are_named():
    rng = np.random.default_rng(5)
    seq = rng.dirichlet(np.ones(3) * 0.7, size=200)
    want = labels(LabelDecoder(NAMES, ema=0.6, hysteresis=0.3, challenger_ema=0.2, emit_every=1), seq)
    got = labels(LabelDecoder(NAMES, ema=0.6, hysteresis=0.3, challenger_ema=0.2, release=None,
                              release_hysteresis=0.1, emit_every=1), seq)
    assert got == want
    assert labels(LabelDecoder(NAMES, ema=0.6, hysteresis=0.3, challenger_ema=0.2, release=0.3,
                               emit_every=1), seq) != want
    for key in ("release", "release_hysteresis"):
        for bad in (-0.1, 1.5):
            with pytest.raises(ValueError, match=key):
                LabelDecoder(NAMES, **{key: bad})


def test_release_settings_come_from_the_config_or_the_checkpoint_only_when_set():
    unset = {"ema": None, "hysteresis": None, "dwell": None, "challenger_ema": None,
             "release": None, "release_hysteresis": None}
    assert "release" not in decoder_settings(unset, {"ema": 0.7})
    stored = {"ema": 0.8, "hysteresis": 0.3, "dwell": 1, "challenger_ema": 0.4, "release": 0.2,
              "release_hysteresis": 0.1}
    assert decoder_settings(unset, stored) == stored
    assert decoder_settings(dict(unset, release=0.3), stored)["release"] == 0.3
