"""Fitting the learned temporal decoder (eventpipe/learned_decoder.py ``fit``) and tuning and
storing it (eventpipe/training/learned_tune.py) on toy streams."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eventpipe.labels import LabelDecoder
from eventpipe.learned_decoder import fit, forward, params_from_stored, params_to_stored, stream_features
from eventpipe.training import learned_tune as lt

NAMES = ["left", "both", "right"]


def toy_stream(seed: int, segments: int = 12, length: int = 20):
    """Truth: segments of 0 / 1 / 2.  The "model" says 0 for class 0 and 2 for class 2, but never
    1: a window of class 1 says 0 and 2 in turn (a transient confusion pattern, as a rotation read
    window by window).  The argmax of one window is thus always wrong on class 1; the last two
    windows together tell it."""
    rng = np.random.default_rng(seed)
    truth = np.repeat(rng.integers(0, 3, segments), length)
    said = truth.copy()
    ones = truth == 1
    said[ones] = np.where(np.arange(len(truth))[ones] % 2 == 0, 0, 2)
    logits = rng.normal(0.0, 0.3, (len(truth), 3))
    logits[np.arange(len(truth)), said] += 2.0
    t_end = 100_000 + 50_000 * np.arange(len(truth))
    return logits, truth, t_end


def accuracy(params, streams, cls):
    right = total = 0
    for lg, tr, _ in streams:
        p = forward(params, stream_features(lg, params.k, params.clip))
        m = tr == cls
        right += int((p.argmax(1)[m] == cls).sum())
        total += int(m.sum())
    return right / total


def test_it_learns_a_class_that_argmax_alone_never_says():
    train = [toy_stream(s) for s in range(4)]
    test = [toy_stream(s) for s in range(100, 102)]
    assert all((lg.argmax(1)[tr == 1] != 1).all() for lg, tr, _ in test)   # argmax: never right
    with_history = fit(train, 3, k=2, hidden=8, steps=60, seed=0)
    assert accuracy(with_history, test, 1) > 0.9
    assert accuracy(with_history, test, 0) > 0.9 and accuracy(with_history, test, 2) > 0.9
    # the same network on one window (history ignored) cannot tell class 1
    alone = fit(train, 3, k=1, hidden=8, steps=60, seed=0)
    assert accuracy(alone, test, 1) < 0.6
    # the runtime's decoder (stored form, window by window) gives the same labels
    dec = LabelDecoder(NAMES, rule="learned", learned=params_to_stored(with_history), ema=0.0,
                       emit_every=1)
    lg, tr, _ = test[0]
    got = [dec.step(x)[0]["label"] for x in lg]
    want = forward(with_history, stream_features(lg, 2, with_history.clip)).argmax(1)
    assert got == [NAMES[i] for i in want]


def test_fit_is_seeded_and_deterministic():
    train = [toy_stream(s, segments=6) for s in range(2)]
    a = fit(train, 3, k=3, hidden=4, steps=30, seed=1)
    b = fit(train, 3, k=3, hidden=4, steps=30, seed=1)
    c = fit(train, 3, k=3, hidden=4, steps=30, seed=2)
    for (wa, ba), (wb, bb) in zip(a.weights, b.weights):
        assert np.array_equal(wa, wb) and np.array_equal(ba, bb)
    assert not np.array_equal(a.weights[0][0], c.weights[0][0])
    # the stored form round-trips
    back = params_from_stored(params_to_stored(a), 3)
    assert all(np.array_equal(x, y) for (x, _), (y, _) in zip(a.weights, back.weights))


def test_network_streams_replay_as_the_learned_rule_and_store_keeps_extra(tmp_path):
    from eventpipe.training.decoder_tune import score_settings

    train = [toy_stream(s, segments=8) for s in range(3)]
    val = [toy_stream(s, segments=8) for s in (50, 51)]
    grid = dict(ema=(0.0, 0.4), hysteresis=(0.0, 0.2), dwell=(1,), challenger_ema=(None,),
                release=(None,), release_hysteresis=(None,))
    params, best, rows = lt.tune(train, val, NAMES, grid=grid, k=2, hidden=8, steps=100, seed=0)
    assert len(rows) == 4
    setting = {k: best[k] for k in ("ema", "hysteresis", "dwell")}
    via_logs = score_settings(lt.network_streams(params, val), NAMES, **setting)
    via_rule = score_settings(val, NAMES, rule="learned", learned=params_to_stored(params), **setting)
    assert via_logs["settled_accuracy"] == via_rule["settled_accuracy"] == best["settled_accuracy"]
    assert via_logs["switches_caught"] == via_rule["switches_caught"]
    assert best["settled_accuracy"] > 0.9   # the argmax alone gets no class-1 window right
    # --store: rule, network and EMA settings in extra["decoder"], the rest of extra kept
    ckpt = tmp_path / "m.pt"
    torch.save({"state_dict": {}, "extra": {"other": [1, 2], "decoder": {"ema": 0.9}}}, ckpt)
    lt.store(ckpt, params, dict(best))
    raw = torch.load(ckpt, weights_only=True)
    dec = raw["extra"]["decoder"]
    assert raw["extra"]["other"] == [1, 2]
    assert dec["rule"] == "learned" and dec["ema"] == best["ema"]
    assert params_from_stored(dec["learned"], 3).k == 2


def test_seeds_must_be_training_seeds():
    assert lt.parse_seeds("10048-10050,10100") == [10048, 10049, 10050, 10100]
    for bad in ("20000", "1000-1002", "9999-10001"):
        with pytest.raises(ValueError, match="--seeds"):
            lt.parse_seeds(bad)


def test_fit_refuses_streams_without_a_known_truth():
    lg, tr, te = toy_stream(0, segments=2)
    with pytest.raises(ValueError, match="no window with a known truth"):
        fit([(lg, np.full_like(tr, -1), te)], 3, k=2)


@pytest.mark.parametrize("argv, message", [
    (["--seeds", "abc"], "--seeds: 'abc' is not a seed or a range"),
    (["--seeds", "5-6"], "--seeds: training seeds are 10000-19999, got [5, 6]"),
    (["--k", "0"], "--k must be >= 1"),
    (["--hidden", "-2"], "--hidden must be >= 0"),
    (["--switch-weight", "-1"], "--switch-weight must be >= 0"),
    (["--switch-weight", "nan"], "--switch-weight must be >= 0"),
    (["--l2=-1e-3"], "--l2 must be >= 0"),
    (["--steps", "0"], "--steps must be >= 1"),
    (["--seed", "-1"], "--seed must be >= 0"),
    (["--max-changes", "0"], "--max-changes must be > 0"),
])
def test_bad_arguments_are_one_line_usage_errors_before_anything_loads(argv, message, capsys):
    # the checkpoint does not exist: an argument error must come first, as a usage error
    with pytest.raises(SystemExit) as e:
        lt.main(["--config", "nope.toml", "--checkpoint", "nope.pt", *argv])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_decoder_tune_max_changes_must_be_positive(capsys):
    from eventpipe.training import decoder_tune as dt

    with pytest.raises(SystemExit) as e:
        dt.main(["--config", "nope.toml", "--checkpoint", "nope.pt", "--max-changes", "-1"])
    assert e.value.code == 2 and "--max-changes must be > 0" in capsys.readouterr().err


def test_the_grid_after_the_network_is_decoder_tunes_with_dwell_1():
    """docs/training.md: ``learned_tune.GRID``, the ``decoder_tune`` grid with dwell 1, 1,050 settings."""
    from eventpipe.training import decoder_tune as dt

    settings = dt.grid_settings(lt.GRID)
    assert len(settings) == 1050 and {s["dwell"] for s in settings} == {1}
    full = dt.grid_settings(dt.GRID)
    assert [s for s in full if s["dwell"] == 1] == settings
