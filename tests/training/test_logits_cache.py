"""The stream-logit caches of decoder_tune / learned_tune are keyed by the model and the data
config: a cache made from another model is made again, never silently reused."""

from types import SimpleNamespace

import numpy as np
import torch

import eventpipe.training.config as train_config
import eventpipe.training.decoder_tune as dt
import eventpipe.training.learned_tune as lt
import eventpipe.training.stream_data as stream_data


def model(seed):
    torch.manual_seed(seed)
    return torch.nn.Linear(2, 3)


def fake_validation(calls):
    def validation_streams(cfg, m):
        calls.append(m)
        w = float(m.weight.detach().sum())                # what this model "says"
        return [(np.full((4, 3), w), np.arange(4) % 3, 100_000 + 50_000 * np.arange(4))]
    return validation_streams


def test_the_validation_cache_is_reused_for_the_same_model_and_made_again_for_another(tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(dt, "validation_streams", fake_validation(calls))
    cfg = SimpleNamespace(data=SimpleNamespace(seeds=(20000,)))
    path = str(tmp_path / "val.npz")
    a, b = model(0), model(1)
    first = dt.cached_validation_streams(cfg, a, path)
    again = dt.cached_validation_streams(cfg, a, path)
    assert len(calls) == 1 and np.array_equal(first[0][0], again[0][0])
    other = dt.cached_validation_streams(cfg, b, path)
    assert len(calls) == 2 and calls[-1] is b
    assert np.array_equal(other[0][0], np.full((4, 3), float(b.weight.detach().sum())))
    assert "another model or data config" in capsys.readouterr().err
    # another data config with the same model is another set of streams
    dt.cached_validation_streams(SimpleNamespace(data=SimpleNamespace(seeds=(20001,))), b, path)
    assert len(calls) == 3
    # a file from before the key (no "key" entry) is not trusted either
    np.savez(path, n=1, logits0=np.zeros((4, 3)), truth0=np.zeros(4), t_end0=np.zeros(4))
    dt.cached_validation_streams(cfg, b, path)
    assert len(calls) == 4
    # model=None reads the file back whatever made it (the tests' replay path)
    assert len(dt.cached_validation_streams(None, None, path)) == 1 and len(calls) == 4


def test_the_key_follows_every_parameter():
    cfg = SimpleNamespace(data=SimpleNamespace(seeds=(1,)))
    a = model(0)
    k = dt.logits_key(cfg, a)
    assert k == dt.logits_key(cfg, model(0))
    with torch.no_grad():
        a.bias[2] += 1e-6
    assert dt.logits_key(cfg, a) != k


def test_training_logit_files_are_made_again_for_another_model(tmp_path, monkeypatch):
    rendered = []
    monkeypatch.setattr(train_config, "data_recipe", lambda d: None)
    monkeypatch.setattr(stream_data, "render_stream", lambda seed, d: rendered.append(seed) or dict(
        frames=np.zeros((4, 1)), scale=1.0, truth=np.arange(4) % 3, t_end=np.arange(4)))
    monkeypatch.setattr(dt, "stream_logits", lambda m, frames, recipe, scale: np.full(
        (len(frames), 3), float(m.weight.detach().sum())))
    cfg = SimpleNamespace(data=SimpleNamespace(n_streams=2))
    a, b = model(0), model(1)
    out_a = lt.training_logits(cfg, a, [10000, 10001], str(tmp_path))
    assert rendered == [10000, 10001]
    lt.training_logits(cfg, a, [10000, 10001], str(tmp_path))
    assert rendered == [10000, 10001]                                  # reused
    out_b = lt.training_logits(cfg, b, [10000], str(tmp_path))
    assert rendered == [10000, 10001, 10000]                           # made again
    assert not np.array_equal(out_a[0][0], out_b[0][0])
    assert np.array_equal(out_b[0][0], np.full((4, 3), float(b.weight.detach().sum())))
