"""LabelDecoder's ``rule="learned"``: a small network over the last k windows' log-probabilities
(eventpipe/learned_decoder.py) whose probabilities then go through the EMA rule."""

from __future__ import annotations

import math

import numpy as np
import pytest

from eventpipe.errors import ConfigError
from eventpipe.labels import LabelDecoder, decoder_settings
from eventpipe.learned_decoder import LearnedParamsError, params_from_stored

NAMES = ["a", "b"]

# k = 2 windows x 2 classes -> one linear layer: features [lp_prev_a, lp_prev_b, lp_a, lp_b]
STORED = {"version": 1, "k": 2, "classes": 2, "clip": 3.0,
          "layers": [{"weight": [[0.0, 0.0, 1.0, 0.0], [2.0, 0.0, 0.0, 1.0]], "bias": [0.5, 0.0]}]}


def hand_probs(feats):
    """softmax([0.5 + x2, 2 * x0 + x3]) of the 4 features, by hand."""
    sa = 0.5 + feats[2]
    sb = 2.0 * feats[0] + feats[3]
    pa = math.exp(sa) / (math.exp(sa) + math.exp(sb))
    return [pa, 1.0 - pa]


def scores(dec, seq, stream=0):
    return [dec.step(np.array(lg, float), streams=[stream])[0]["topk"] for lg in seq]


def test_step_against_a_hand_computation():
    # logits [0, ln 3] -> log-probs [ln 1/4, ln 3/4]; [0, 0] -> [ln 1/2, ln 1/2];
    # [10, 0]: log-prob of b = -10 - ln(1 + e^-10), clipped at -3
    seq = [[0.0, math.log(3.0)], [0.0, 0.0], [10.0, 0.0]]
    lp = [[math.log(0.25), math.log(0.75)], [math.log(0.5), math.log(0.5)],
          [-math.log(1.0 + math.exp(-10.0)), -3.0]]
    want = [hand_probs(lp[0] + lp[0]),          # first window: the history is that window twice
            hand_probs(lp[0] + lp[1]),
            hand_probs(lp[1] + lp[2])]
    dec = LabelDecoder(NAMES, rule="learned", learned=STORED, ema=0.0, emit_every=1, topk=2)
    for got, w in zip(scores(dec, seq), want):
        np.testing.assert_allclose(dict(got)["a"], w[0], rtol=1e-12)
        np.testing.assert_allclose(dict(got)["b"], w[1], rtol=1e-12)
    # the EMA rule then smooths the network's probabilities (ema 0.5: the mean of the first two)
    dec = LabelDecoder(NAMES, rule="learned", learned=STORED, ema=0.5, emit_every=1, topk=2)
    got = scores(dec, seq[:2])[1]
    np.testing.assert_allclose(dict(got)["a"], 0.5 * want[0][0] + 0.5 * want[1][0], rtol=1e-12)


def test_history_changes_the_label_where_the_window_alone_does_not():
    # the same window [0, 0] is labelled a after a window that said a, b after one that said b:
    # the learned rule reads the previous window's log-probability of a (weight 2 into b's score)
    stored = {"version": 1, "k": 2, "classes": 2, "clip": 5.0,
              "layers": [{"weight": [[0.0, 0.0, 0.0, 0.0], [-2.0, 0.0, 0.0, 0.0]], "bias": [0.0, -1.0]}]}
    dec = LabelDecoder(NAMES, rule="learned", learned=stored, ema=0.0, emit_every=1)
    after_b = [dec.step(np.array(lg, float))[0]["label"] for lg in ([0.0, 4.0], [0.0, 0.0])]
    dec.reset()
    after_a = [dec.step(np.array(lg, float))[0]["label"] for lg in ([4.0, 0.0], [0.0, 0.0])]
    assert after_b[1] == "b" and after_a[1] == "a"


def test_state_is_per_stream_and_reset_forgets_it():
    seq_a = [[1.0, 0.0], [0.0, 2.0], [3.0, 0.0], [0.0, 0.5]]
    seq_b = [[0.0, 1.0], [0.0, 0.0], [2.0, 1.0], [1.0, 1.0]]
    kw = dict(rule="learned", learned=STORED, ema=0.3, emit_every=1, topk=2)
    alone_a = scores(LabelDecoder(NAMES, **kw), seq_a)
    alone_b = scores(LabelDecoder(NAMES, **kw), seq_b)
    dec = LabelDecoder(NAMES, **kw)
    mixed_a, mixed_b = [], []
    for la, lb in zip(seq_a, seq_b):               # two streams stepped in one batch
        ma, mb = dec.step(np.array([la, lb]), streams=["s1", "s2"])
        mixed_a.append(ma["topk"])
        mixed_b.append(mb["topk"])
    assert mixed_a == alone_a and mixed_b == alone_b
    assert dec.states["s1"].history.shape == (2, 2)
    dec.reset("s1")
    assert "s1" not in dec.states and dec.states["s2"].history is not None
    # a reset stream starts again from its first window (history filled with it)
    assert scores(dec, seq_a, stream="s1") == alone_a


@pytest.mark.parametrize("mutate, key", [
    (lambda s: s.pop("layers"), r"decoder\.learned\.layers: missing"),
    (lambda s: s.update(version=2), r"decoder\.learned\.version"),
    (lambda s: s.update(k=0), r"decoder\.learned\.k"),
    (lambda s: s.update(k=True), r"decoder\.learned\.k"),
    (lambda s: s.update(clip=-1.0), r"decoder\.learned\.clip"),
    (lambda s: s.update(layers=[]), r"decoder\.learned\.layers"),
    (lambda s: s["layers"][0].update(weight=[[1.0, 2.0, 3.0]] * 2), r"decoder\.learned\.layers\[0\]\.weight: 3 inputs, expected 4"),
    (lambda s: s["layers"][0].update(bias=[0.0]), r"decoder\.learned\.layers\[0\]\.bias"),
    (lambda s: s["layers"][0].update(weight=[[0.0, "x", 0.0, 0.0]] * 2), r"decoder\.learned\.layers\[0\]\.weight"),
    (lambda s: s["layers"][0].update(weight=[[0.0, float("nan"), 0.0, 0.0]] * 2), r"decoder\.learned\.layers\[0\]\.weight: .*not finite"),
    (lambda s: s["layers"].append({"weight": [[1.0, 1.0]] * 3, "bias": [0.0] * 3}), r"decoder\.learned\.layers\[1\]\.weight: 3 outputs, expected 2"),
    (lambda s: s["layers"].__setitem__(0, [1, 2]), r"decoder\.learned\.layers\[0\]: expected a table"),
])
def test_malformed_stored_parameters_name_the_key(mutate, key):
    import copy

    bad = copy.deepcopy(STORED)
    mutate(bad)
    with pytest.raises(LearnedParamsError, match=key):
        LabelDecoder(NAMES, rule="learned", learned=bad)
    assert issubclass(LearnedParamsError, ConfigError)


def test_rule_learned_needs_parameters_for_the_models_classes():
    with pytest.raises(LearnedParamsError, match=r"decoder\.learned"):
        LabelDecoder(NAMES, rule="learned")
    with pytest.raises(LearnedParamsError, match=r"decoder\.learned\.classes: 2, but the model has 3"):
        LabelDecoder(["a", "b", "c"], rule="learned", learned=STORED)
    with pytest.raises(LearnedParamsError, match=r"decoder\.learned: expected a table"):
        params_from_stored([1, 2, 3])
    # stored parameters are ignored by the other rules (``decoder.rule = "ema"`` brings it back)
    assert LabelDecoder(NAMES, rule="ema", learned={"junk": 1}).learned is None


def test_run_config_and_the_checkpoint_select_the_rule():
    from eventpipe.runtime.config import load_run_config

    with pytest.raises(ConfigError, match=r"decoder\.rule"):
        load_run_config(None, ["decoder.rule=learnt"])
    assert load_run_config(None, ["decoder.rule=learned"]).decoder.rule == "learned"
    stored = {"ema": 0.4, "hysteresis": 0.1, "dwell": 1, "rule": "learned", "learned": STORED}
    unset = {"ema": None, "hysteresis": None, "dwell": None, "challenger_ema": None, "rule": None}
    got = decoder_settings(unset, stored)
    assert got["rule"] == "learned" and got["learned"] is STORED and got["ema"] == 0.4
    assert LabelDecoder(NAMES, **got).rule == "learned"
    # the run config's rule wins over the checkpoint's
    assert LabelDecoder(NAMES, **decoder_settings(dict(unset, rule="ema"), stored)).learned is None


def test_the_runtime_takes_the_learned_rule_from_the_checkpoint(tmp_path):
    import shutil

    from eventpipe.learned_decoder import LearnedParams
    from eventpipe.runtime.config import load_run_config
    from eventpipe.runtime.model_loader import load_model, resolve_checkpoint
    from eventpipe.runtime.pipeline import Pipeline
    from eventpipe.training.learned_tune import store

    loaded = load_model("default")
    # the shipped checkpoint has no learned parameters: asking for the rule names the key
    with pytest.raises(LearnedParamsError, match=r"decoder\.learned"):
        Pipeline(load_run_config(None, ["decoder.rule=learned"]), None, loaded, [], recipe=loaded.recipe)
    c = len(loaded.class_names)
    rng = np.random.default_rng(0)
    params = LearnedParams(k=3, classes=c, clip=12.0,
                           weights=((rng.normal(size=(c, 3 * c)), rng.normal(size=c)),))
    ckpt = tmp_path / "cand.pt"
    shutil.copy(resolve_checkpoint("default"), ckpt)
    store(ckpt, params, {"ema": 0.8, "hysteresis": 0.2, "dwell": 1, "challenger_ema": 0.4})
    cand = load_model(str(ckpt))
    dec = Pipeline(load_run_config(None, []), None, cand, [], recipe=cand.recipe).decoder
    assert dec.rule == "learned" and dec.learned.k == 3 and (dec.ema, dec.challenger_ema) == (0.8, 0.4)
    np.testing.assert_array_equal(dec.learned.weights[0][0], params.weights[0][0])
    # decoder.rule = "ema" in the run config brings the EMA rule back on the same checkpoint
    dec = Pipeline(load_run_config(None, ["decoder.rule=ema"]), None, cand, [], recipe=cand.recipe).decoder
    assert dec.rule == "ema" and dec.learned is None
