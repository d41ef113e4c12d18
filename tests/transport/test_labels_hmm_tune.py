"""decoder_tune's HMM grid on a tiny cached fake stream, and storing its choice
(eventpipe/training/decoder_tune.py, rule="hmm" of eventpipe/labels.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eventpipe.labels import LabelDecoder, decoder_settings
from eventpipe.training import decoder_tune as dt

NAMES = ["wave", "clap", "walk"]


def fake_stream():
    """4 segments of 20 windows (50 ms stride); the new class leads from the 3rd window after a
    switch; one-window blips of another class inside every segment."""
    truth = np.repeat([0, 1, 2, 0], 20)
    p = np.full((80, 3), 0.1)
    p[np.arange(80), truth] = 0.8
    for s in range(1, 4):                        # the first two windows still say the old class
        a = 20 * s
        p[a:a + 2] = p[a - 1]
    for i in (8, 33, 52, 71):                   # blips
        p[i] = 0.05
        p[i, (truth[i] + 1) % 3] = 0.9
    t_end = 100_000 + 50_000 * np.arange(80)
    return np.log(p), truth, t_end


def test_the_hmm_grid_replays_the_cached_logits_and_picks_a_steady_setting(tmp_path):
    lg, tr, te = fake_stream()
    path = tmp_path / "logits.npz"
    np.savez(path, n=1, logits0=lg, truth0=tr, t_end0=te)
    streams = dt.cached_validation_streams(None, None, str(path))   # no model runs: read back
    assert np.array_equal(streams[0][0], lg)
    raw = dt.score_settings(streams, NAMES, ema=0.0)
    assert raw["label_changes"] == 3 + 2 * 4 and raw["switches_caught"] == 3
    small = dict(rule=("hmm",), hazard=(0.02, 0.5), temperature=(1.0,), floor=(0.0,),
                 min_posterior=(0.0, 0.5), margin=(0.0, 0.3))
    rows = dt.grid(streams, NAMES, small)
    assert len(rows) == 2 * (2 * 2 - 1)         # min_posterior and margin: one barrier at a time
    for r in rows:                               # each row is the real decoder's figures
        setting = {k: r[k] for k in dt.HMM_KEYS if k in r}
        f = dt.score_settings(streams, NAMES, **setting)
        assert (r["label_changes_per_switch"], r["switch_catch_rate"]) == (
            f["label_changes_per_switch"], f["switch_catch_rate"])
    best = dt.pick(rows)
    # hazard 0.02: a blip moves a settled label's posterior to ~0.15 and no further
    assert best["hazard"] == 0.02
    assert best["label_changes_per_switch"] == 1.0 and best["switch_catch_rate"] == 1.0
    # hazard 0.5 with no barrier follows every blip (as the raw argmax)
    loose = [r for r in rows if r["hazard"] == 0.5 and r["min_posterior"] == 0 and r["margin"] == 0]
    assert loose[0]["label_changes_per_switch"] == pytest.approx(11 / 3)
    assert "rule=hmm hazard=0.02" in dt.setting_text(best) and "hazard=0.02" in dt.format_rows(rows)


def test_storing_an_hmm_choice_keeps_the_ema_settings_and_the_rest(tmp_path):
    ckpt = tmp_path / "m.pt"
    w = torch.arange(6.0)
    torch.save({"state_dict": {"w": w}, "extra": {"decoder": {"ema": 0.6, "hysteresis": 0.4,
                                                              "dwell": 1, "release": 0.2},
                                                  "test_accuracy": 0.9}}, ckpt)
    best = dict(rule="hmm", hazard=0.1, temperature=0.8, floor=0.0, min_posterior=0.7, margin=0.0,
                dwell=1, settled_accuracy=1.0)
    dt.store_settings(ckpt, best)
    raw = torch.load(ckpt, weights_only=True)
    assert torch.equal(raw["state_dict"]["w"], w) and raw["extra"]["test_accuracy"] == 0.9
    stored = raw["extra"]["decoder"]
    assert stored == {"ema": 0.6, "hysteresis": 0.4, "dwell": 1, "release": 0.2, "rule": "hmm",
                      "hazard": 0.1, "temperature": 0.8, "floor": 0.0, "min_posterior": 0.7,
                      "margin": 0.0}
    unset = {k: None for k in ("ema", "hysteresis", "dwell", "challenger_ema", "rule")}
    dec = LabelDecoder(NAMES, **decoder_settings(unset, stored))
    assert (dec.rule, dec.hazard, dec.temperature, dec.min_posterior) == ("hmm", 0.1, 0.8, 0.7)
    dec = LabelDecoder(NAMES, **decoder_settings(dict(unset, rule="ema"), stored))
    assert (dec.rule, dec.ema, dec.hysteresis, dec.release) == ("ema", 0.6, 0.4, 0.2)
    # an EMA choice stored afterwards drops the HMM rule
    dt.store_settings(ckpt, {"ema": 0.5, "hysteresis": 0.3, "dwell": 1})
    assert torch.load(ckpt, weights_only=True)["extra"]["decoder"] == {"ema": 0.5, "hysteresis": 0.3,
                                                                       "dwell": 1}


def test_the_hmm_grid_has_432_settings_each_with_one_barrier():
    settings = dt.grid_settings(dt.HMM_GRID)
    assert len(settings) == 6 * 3 * 2 * (3 + 3) * 2 == 432
    assert all(s["min_posterior"] == 0 or s["margin"] == 0 for s in settings)
    assert all(s["rule"] == "hmm" for s in settings)


def test_evidence_runs_by_hand():
    # truth 0 0 1 1 1 1 | 2 2 2 ; argmax 0 0 1 0 1 1 | 0 2 0 (steps = 3 windows after a switch)
    truth = np.array([0, 0, 1, 1, 1, 1, 2, 2, 2])
    am = np.array([0, 0, 1, 0, 1, 1, 0, 2, 0])
    logits = np.eye(3)[am]
    ev = dt.evidence_runs([(logits, truth, None)], steps=3)
    # switch 1 (windows 2-4: 1 0 1): a run of 1; switch 2 (windows 6-8: 0 2 0): a run of 1
    assert ev == {"switches": 2, 1: 2, 2: 0, 3: 0}
    ev = dt.evidence_runs([(logits, truth, None)], steps=4)   # switch 1 sees 1 0 1 1: a run of 2
    assert ev == {"switches": 2, 1: 2, 2: 1, 3: 0}
    S = [fake_stream()]
    assert dt.evidence_runs(S) == {"switches": 3, 1: 3, 2: 3, 3: 3}


def test_the_tool_searches_the_hmm_grid_on_cached_logits_and_stores_the_choice(tmp_path, capsys):
    """``python -m eventpipe.training.decoder_tune --rule hmm --store`` end to end, on cached
    logits of a fake 12-class stream (the model does not run: ``--logits`` is reused)."""
    import shutil
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    shipped = root / "snn" / "weights" / "meta_spikeformer_tiny_synthetic.pt"
    ckpt = tmp_path / "m.pt"
    shutil.copy(shipped, ckpt)
    lg3, tr, te = fake_stream()
    lg = np.full((len(tr), 12), np.log(0.01))
    lg[:, :3] = lg3
    path = tmp_path / "logits.npz"
    import snn
    from eventpipe.training.config import load_train_config

    config = root / "configs" / "train_synthetic_halves_switch.toml"
    key = dt.logits_key(load_train_config(str(config)), snn.load_checkpoint(str(ckpt))[0].float())
    np.savez(path, n=1, logits0=lg, truth0=tr, t_end0=te, key=key)   # made from this model
    assert dt.main(["--config", str(config),
                    "--checkpoint", str(ckpt), "--logits", str(path), "--rule", "hmm", "--store"]) == 0
    out = capsys.readouterr().out
    assert "at least 1 / 2 / 3 windows in a row: 3 / 3 / 3 of 3" in out
    assert len([ln for ln in out.splitlines() if ln.startswith("rule=hmm")]) == 432
    assert "best (<= 1.5 changes per switch): rule=hmm" in out
    before = torch.load(shipped, weights_only=True)
    after = torch.load(ckpt, weights_only=True)
    stored = after["extra"]["decoder"]
    assert stored["rule"] == "hmm" and {k: stored[k] for k in before["extra"]["decoder"]} == (
        before["extra"]["decoder"])
    assert before.keys() == after.keys()
    for key in before:              # every other byte of meaning stays
        if key == "state_dict":
            assert before[key].keys() == after[key].keys()
            assert all(torch.equal(before[key][k], after[key][k]) for k in before[key])
        elif key != "extra":
            assert before[key] == after[key], key
    assert {k: v for k, v in after["extra"].items() if k != "decoder"} == {
        k: v for k, v in before["extra"].items() if k != "decoder"}


def test_training_streams_are_the_training_seeds_stepped_through_the_model():
    """``training_streams``: where an emission model may be estimated (seeds 10000.., never the
    validation 20000.. or the held-out ones)."""
    from pathlib import Path

    import snn
    from eventpipe.training.config import load_train_config
    from eventpipe.training.stream_data import TRAIN_SEED0, render_stream

    root = Path(__file__).resolve().parents[2]
    cfg = load_train_config(str(root / "configs" / "train_synthetic_halves_switch.toml"))
    cfg.data.stream_seconds = 1.0
    model, _ = snn.load_checkpoint(root / "snn" / "weights" / "meta_spikeformer_tiny_synthetic.pt")
    model = model.float().eval()
    (lg, tr, te), = dt.training_streams(cfg, model, 1, progress=False)
    r = render_stream(TRAIN_SEED0, cfg.data)
    assert np.array_equal(tr, r["truth"]) and np.array_equal(te, r["t_end"])
    assert lg.shape == (len(r["truth"]), 12) and np.isfinite(lg).all()
    # the same logits as stepping the model over the rendered windows from rest
    from eventpipe.training.config import data_recipe
    np.testing.assert_allclose(lg, dt.stream_logits(model, r["frames"], data_recipe(cfg.data),
                                                    float(r["scale"])), rtol=0, atol=0)
    for bad in (0, cfg.data.n_streams + 1):
        with pytest.raises(ValueError, match="n must be"):
            dt.training_streams(cfg, model, bad, progress=False)
