"""docs/own_actions.md, the defaults it quotes: a clip spans `(T - 1) x stride + window` =
800 ms with `T = 8` and 100 ms windows without overlap; `data.test_fraction` 0.2;
`eval --stream`'s `--max-latency-ms` 500."""

from __future__ import annotations

from eventpipe.training.config import DataConfig, data_recipe


def test_clip_span_and_split_defaults():
    d = DataConfig()
    r = data_recipe(d)
    assert (d.T, r.window_us, r.stride) == (8, 100_000, 100_000)
    assert (d.T - 1) * r.stride + r.window_us == 800_000
    assert d.test_fraction == 0.2


def test_eval_stream_max_latency_default_is_500_ms():
    import argparse

    from eventpipe.cli import evaluate

    sub = argparse.ArgumentParser().add_subparsers()
    sp = evaluate.add_parser(sub)
    assert sp.parse_args(["ckpt.pt"]).max_latency_ms == 500.0
