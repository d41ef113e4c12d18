"""LabelDecoder's ``rule="hmm"``: an online Bayes (HMM forward) filter over the classes
(eventpipe/labels.py); posteriors worked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from eventpipe.labels import (LabelDecoder, choose_hmm_label, decoder_settings, hmm_likelihood,
                              hmm_update)
from tests.transport.test_labels_dwell import NAMES, C, K, W, labels


@pytest.fixture(autouse=True)
def _log_of_zero_is_minus_inf():
    with np.errstate(divide="ignore"):
        yield


def posteriors(dec, seq, stream=0):
    out = []
    for p in seq:
        (m,) = dec.step(np.log(np.asarray(p, np.float64)), streams=[stream])
        out.append(dec.states[stream].smooth.copy())
    return out


def test_two_classes_by_hand():
    dec = LabelDecoder(["a", "b"], rule="hmm", hazard=0.1, emit_every=1)
    p1, p2 = posteriors(dec, [[0.8, 0.2], [0.3, 0.7]])
    # step 1: uniform prior x (0.8, 0.2) -> (0.8, 0.2)
    np.testing.assert_allclose(p1, [0.8, 0.2], rtol=1e-12)
    # step 2: prior 0.9 * (0.8, 0.2) + 0.1 * (0.2, 0.8) = (0.74, 0.26); x (0.3, 0.7) = (0.222, 0.182)
    np.testing.assert_allclose(p2, [0.222 / 0.404, 0.182 / 0.404], rtol=1e-12)


def test_three_classes_temperature_and_floor_by_hand():
    # temperature 2: softmax(log p / 2) is proportional to sqrt(p); floor 0.1 mixes in 0.1 / 3
    like = hmm_likelihood(np.log(np.array([0.64, 0.32, 0.04])), 2.0, 0.1)
    s = np.array([0.8, np.sqrt(0.32), 0.2])
    np.testing.assert_allclose(like, 0.9 * s / s.sum() + 0.1 / 3, rtol=1e-12)
    # a hazard of 0.3 over 3 classes: the other two classes get 0.15 each of the mass that leaves
    prev = np.array([0.7, 0.2, 0.1])
    prior = np.array([0.7 * 0.7 + 0.15 * 0.3, 0.7 * 0.2 + 0.15 * 0.8, 0.7 * 0.1 + 0.15 * 0.9])
    np.testing.assert_allclose(prior.sum(), 1.0)
    e = np.array([0.2, 0.5, 0.3])
    np.testing.assert_allclose(hmm_update(prev, e, 0.3), prior * e / (prior * e).sum(), rtol=1e-12)


def test_no_hazard_is_the_normalised_product_of_the_evidence():
    rng = np.random.default_rng(3)
    seq = rng.dirichlet(np.ones(3), size=12)
    seq[4] = [0.5, 0.5, 0.0]      # evidence that rules a class out for good
    dec = LabelDecoder(NAMES, rule="hmm", hazard=0.0, emit_every=1)
    got = posteriors(dec, seq)
    prod = np.cumprod(seq, axis=0)
    for t in range(len(seq)):
        np.testing.assert_allclose(got[t], prod[t] / prod[t].sum(), rtol=1e-9, atol=1e-15)
    assert got[-1][2] == 0.0
    # one-hot evidence: the product pins the posterior to the one class it allows
    dec = LabelDecoder(NAMES, rule="hmm", hazard=0.0, emit_every=1)
    assert np.array_equal(posteriors(dec, [[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])[-1], [1.0, 0.0, 0.0])
    # evidence against every class still possible changes nothing (the prior is kept)
    assert np.array_equal(hmm_update(np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]), 0.0),
                          [1.0, 0.0, 0.0])


def test_a_challenger_wins_once_its_posterior_reaches_min_posterior():
    # hazard 0.2, 3 classes: wave 0.8 then clap 0.8 (others 0.1 each)
    # t0 post (.8, .1, .1); t1 prior (.66, .17, .17) x (.1, .8, .1) -> clap .136 / .219 = .621
    dec = LabelDecoder(NAMES, rule="hmm", hazard=0.2, min_posterior=0.7, emit_every=1)
    post = posteriors(LabelDecoder(NAMES, rule="hmm", hazard=0.2, emit_every=1), [W, C, C])
    assert post[1][1] == pytest.approx(0.136 / 0.219, rel=1e-12)
    assert 0.5 < post[1][1] < 0.7 < post[2][1]
    assert labels(dec, [W, C, C]) == ["wave", "wave", "clap"]
    # min_posterior 0.5: the argmax of the posterior at once
    assert labels(LabelDecoder(NAMES, rule="hmm", hazard=0.2, min_posterior=0.5, emit_every=1),
                  [W, C, C]) == ["wave", "clap", "clap"]
    # a rare switch (hazard 0.001) needs more evidence than a common one (0.2): clap's posterior
    # after 1, 2, 3, 4 clap windows is .005, .04, .26, .73; with hazard 0.2 .50, .87
    slow = LabelDecoder(NAMES, rule="hmm", hazard=0.001, min_posterior=0.6, emit_every=1)
    assert labels(slow, [W] * 5 + [C] * 5) == ["wave"] * 8 + ["clap"] * 2
    fast = LabelDecoder(NAMES, rule="hmm", hazard=0.2, min_posterior=0.6, emit_every=1)
    assert labels(fast, [W] * 5 + [C] * 5) == ["wave"] * 6 + ["clap"] * 4
    # the message's score and topk are the posterior
    dec = LabelDecoder(NAMES, rule="hmm", hazard=0.2, emit_every=1, topk=3)
    dec.step(np.log(W))
    (m,) = dec.step(np.log(C))
    assert m["label"] == "clap" and m["score"] == pytest.approx(0.136 / 0.219)
    assert [n for n, _ in m["topk"]] == ["clap", "wave", "walk"]


def test_choose_hmm_label_by_hand():
    post = np.array([0.3, 0.6, 0.1])
    assert choose_hmm_label(post, None, 0.0, 0.9) == 1       # no label yet: the argmax
    assert choose_hmm_label(post, 0, 0.0, 0.7) == 0          # .6 < .7: the current label stays
    assert choose_hmm_label(post, 0, 0.0, 0.6) == 1          # .6 >= .6
    assert choose_hmm_label(post, 2, 0.0, 0.7) == 2
    assert choose_hmm_label(post, 0, 0.65, 0.5) is None      # below threshold: no confident class
    assert choose_hmm_label(post, 0, 0.0, 0.0, 0.3) == 1     # leads .3 by .3
    assert choose_hmm_label(post, 0, 0.0, 0.0, 0.31) == 0    # ... not by .31
    assert choose_hmm_label(post, 0, 0.0, 0.7, 0.1) == 0     # both barriers must be passed


def test_each_stream_has_its_own_posterior_and_reset_forgets_it():
    rng = np.random.default_rng(7)
    a, b = rng.dirichlet(np.ones(3), size=20), rng.dirichlet(np.ones(3), size=20)
    alone_a = posteriors(LabelDecoder(NAMES, rule="hmm", hazard=0.05, emit_every=1), a)
    alone_b = posteriors(LabelDecoder(NAMES, rule="hmm", hazard=0.05, emit_every=1), b)
    dec = LabelDecoder(NAMES, rule="hmm", hazard=0.05, emit_every=1)
    for t in range(20):
        dec.step(np.log(np.stack([a[t], b[t]])), streams=["a", "b"])
        np.testing.assert_allclose(dec.states["a"].smooth, alone_a[t], rtol=1e-12)
        np.testing.assert_allclose(dec.states["b"].smooth, alone_b[t], rtol=1e-12)
    dec.reset("a")
    assert "a" not in dec.states and "b" in dec.states
    # after a reset the stream starts from the uniform prior again
    np.testing.assert_allclose(posteriors(dec, a[:3], "a"), alone_a[:3], rtol=1e-12)


def test_bad_settings_name_the_key():
    for key, bad in [("hazard", -0.1), ("hazard", 1.0), ("hazard", float("nan")), ("hazard", "0.1"),
                     ("temperature", 0.0), ("temperature", -1.0), ("temperature", float("inf")),
                     ("floor", -0.01), ("floor", 1.0), ("min_posterior", 1.5),
                     ("min_posterior", -0.1), ("min_posterior", True)]:
        with pytest.raises(ValueError, match=key):
            LabelDecoder(NAMES, rule="hmm", **{key: bad})
    with pytest.raises(ValueError, match="rule"):
        LabelDecoder(NAMES, rule="bayes")
    # the bounds themselves are allowed
    for key, ok in [("hazard", 0.0), ("floor", 0.0), ("min_posterior", 0.0), ("min_posterior", 1.0),
                    ("margin", 0.0), ("margin", 1.0), ("hazard_ramp", 0), ("temperature", 1e-3)]:
        assert getattr(LabelDecoder(NAMES, rule="hmm", **{key: ok}), key) == ok


def test_the_ema_rule_is_unchanged_by_the_hmm_settings():
    rng = np.random.default_rng(11)
    seq = rng.dirichlet(np.ones(3) * 0.7, size=100)
    want = labels(LabelDecoder(NAMES, ema=0.6, hysteresis=0.3, emit_every=1), seq)
    got = labels(LabelDecoder(NAMES, ema=0.6, hysteresis=0.3, hazard=0.2, temperature=3.0,
                              floor=0.1, min_posterior=0.9, emit_every=1), seq)
    assert got == want
    assert labels(LabelDecoder(NAMES, ema=0.6, hysteresis=0.3, rule="hmm", hazard=0.2,
                               temperature=3.0, min_posterior=0.9, emit_every=1), seq) != want


def test_the_hmm_rule_ignores_the_ema_settings():
    rng = np.random.default_rng(12)
    seq = rng.dirichlet(np.ones(3) * 0.7, size=100)
    kw = dict(rule="hmm", hazard=0.1, temperature=0.8, min_posterior=0.7, emit_every=1)
    want = labels(LabelDecoder(NAMES, **kw), seq)
    assert labels(LabelDecoder(NAMES, ema=0.7, hysteresis=0.5, challenger_ema=0.2, release=0.3,
                               **kw), seq) == want
    assert want != labels(LabelDecoder(NAMES, ema=0.0, emit_every=1), seq)


def test_hmm_settings_come_from_the_config_or_the_checkpoint():
    unset = {"ema": None, "hysteresis": None, "dwell": None, "challenger_ema": None, "rule": None,
             "hazard": None, "temperature": None, "floor": None, "min_posterior": None}
    stored = {"ema": 0.6, "hysteresis": 0.4, "dwell": 1, "rule": "hmm", "hazard": 0.1,
              "temperature": 0.6, "min_posterior": 0.8}
    got = decoder_settings(unset, stored)
    assert got == dict(stored, challenger_ema=None)
    # the run config picks the EMA rule back: the checkpoint's EMA settings apply
    got = decoder_settings(dict(unset, rule="ema"), stored)
    assert got["rule"] == "ema" and got["ema"] == 0.6
    dec = LabelDecoder(NAMES, **got)
    assert dec.rule == "ema"
    assert decoder_settings(dict(unset, hazard=0.3), stored)["hazard"] == 0.3
    assert "rule" not in decoder_settings(unset, {"ema": 0.7})


def test_bad_run_config_values_name_the_decoder_key():
    from eventpipe.errors import ConfigError
    from eventpipe.runtime.config import load_run_config

    for key, bad in [("rule", "bayes"), ("hazard", "1"), ("hazard", "-0.1"), ("temperature", "0"),
                     ("floor", "1"), ("min_posterior", "1.1"), ("margin", "-0.1"),
                     ("hazard_ramp", "-1"), ("hazard_ramp", "1.5")]:
        with pytest.raises(ConfigError, match=rf"decoder\.{key}"):
            load_run_config(None, [f"decoder.{key}={bad}"])
    cfg = load_run_config(None, ["decoder.rule=hmm", "decoder.hazard=0.05", "decoder.temperature=0.5"])
    assert (cfg.decoder.rule, cfg.decoder.hazard, cfg.decoder.temperature) == ("hmm", 0.05, 0.5)


def test_sticky_prior_beats_a_blip_that_the_raw_argmax_follows():
    # the filter's point: one window saying clap inside a run of wave moves no label
    seq = [W] * 6 + [C] + [W] * 3 + [K] * 4
    assert labels(LabelDecoder(NAMES, ema=0.0, emit_every=1), seq)[6] == "clap"
    got = labels(LabelDecoder(NAMES, rule="hmm", hazard=0.05, min_posterior=0.5, emit_every=1), seq)
    assert got[:10] == ["wave"] * 10 and got[-1] == "walk"


def test_hazard_ramp_by_hand():
    # hazard 0.4 reached over 4 steps after the last label change: the step after a change uses
    # 0.4 * 1/4, then 0.4 * 2/4, 3/4, 4/4, 4/4 ...
    seq = [W, W, W, W, W, C]
    dec = LabelDecoder(NAMES, rule="hmm", hazard=0.4, hazard_ramp=4, min_posterior=0.6, emit_every=1)
    got = posteriors(dec, seq)
    post = np.array(W)
    for t, h in zip(range(1, 6), (0.1, 0.2, 0.3, 0.4, 0.4)):
        post = hmm_update(post, np.array(seq[t]), h)
        np.testing.assert_allclose(got[t], post, rtol=1e-12)
    # a label that just changed (or a stream that just started) is stickier: with the ramp clap
    # needs two windows (posterior .56 then .88 against .72 at once without it), and wave back too
    seq = [W, C, C, W, W, W]
    assert labels(LabelDecoder(NAMES, rule="hmm", hazard=0.4, min_posterior=0.6, emit_every=1),
                  seq) == ["wave", "clap", "clap", "wave", "wave", "wave"]
    assert labels(LabelDecoder(NAMES, rule="hmm", hazard=0.4, hazard_ramp=4, min_posterior=0.6,
                               emit_every=1), seq) == ["wave", "wave", "clap", "clap", "wave", "wave"]
    # a change restarts the ramp: right after wave -> clap the hazard is 0.1 again
    dec = LabelDecoder(NAMES, rule="hmm", hazard=0.4, hazard_ramp=4, min_posterior=0.5, emit_every=1)
    got = posteriors(dec, [W, C, C])
    assert dec.states[0].label == 1 and dec.states[0].since_change == 1
    p1 = hmm_update(np.array(W), np.array(C), 0.1)
    assert p1[1] >= 0.5        # clap took over at step 1 (since_change restarted there)
    np.testing.assert_allclose(got[2], hmm_update(p1, np.array(C), 0.1), rtol=1e-12)
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="hazard_ramp"):
            LabelDecoder(NAMES, rule="hmm", hazard_ramp=bad)


def test_dwell_applies_to_the_hmm_rule_and_the_runtime_builds_it_from_the_config():
    seq = [W, W, C, C, C]
    kw = dict(rule="hmm", hazard=0.2, min_posterior=0.5, emit_every=1)
    assert labels(LabelDecoder(NAMES, **kw), seq) == ["wave"] * 2 + ["clap"] * 3
    assert labels(LabelDecoder(NAMES, dwell=2, **kw), seq) == ["wave"] * 3 + ["clap"] * 2

    from eventpipe.runtime.config import load_run_config
    from eventpipe.runtime.model_loader import load_model
    from eventpipe.runtime.pipeline import Pipeline

    cfg = load_run_config(None, ["decoder.rule=hmm", "decoder.hazard=0.4", "decoder.temperature=0.8",
                                 "decoder.min_posterior=0.9", "decoder.hazard_ramp=20"])
    loaded = load_model("default")
    dec = Pipeline(cfg, None, loaded, [], recipe=loaded.recipe).decoder
    assert (dec.rule, dec.hazard, dec.temperature, dec.min_posterior, dec.hazard_ramp) == (
        "hmm", 0.4, 0.8, 0.9, 20)
    assert (dec.floor, dec.margin) == (0.0, 0.0)
    # the default is unchanged: the shipped checkpoint names no rule, so `eventpipe run` decodes
    # with the EMA rule
    assert "rule" not in loaded.extra["decoder"]
    dec = Pipeline(load_run_config(None, []), None, loaded, [], recipe=loaded.recipe).decoder
    assert dec.rule == "ema" and LabelDecoder(NAMES).rule == "ema"
