from eventpipe.runtime.stream_eval import summarise, switch_latencies


def _msgs(truths, labels, window_us=50_000):
    return [{"t_us": (i + 1) * window_us, "truth": t, "label": l}
            for i, (t, l) in enumerate(zip(truths, labels))]


def test_switch_latency_counts_from_the_last_old_window():
    truths = ["a"] * 4 + ["b"] * 6 + ["c"] * 3
    labels = ["a"] * 4 + ["a", "a", "b", "b", "a", "b"] + ["b", "b", "b"]
    sw = switch_latencies(_msgs(truths, labels))
    assert [(s.old, s.new) for s in sw] == [("a", "b"), ("b", "c")]
    assert sw[0].t_switch_us == 200_000 and sw[0].latency_us == 150_000  # window 7 ends at 350 ms
    assert sw[1].latency_us is None  # never said "c"
    res = summarise(_msgs(truths, labels), max_latency_us=100_000)
    assert res["switches"] == 2 and res["switches_caught"] == 0
    assert res["window_accuracy"] == (4 + 3) / 13
    assert summarise(_msgs(truths, labels))["switches_caught"] == 1


def test_eval_cli_on_the_synthetic_stream_with_the_shipped_model(tmp_path):
    """The shipped model on a held-out stream seed: every window is labelled and scored."""
    import io
    import json

    from eventpipe.cli import main

    out = io.StringIO()
    rc = main(["eval", "--stream", "synthetic:seed=4242", "--duration", "6.5", "--max-speed",
               "--json-out", str(tmp_path / "r.json"), "--png", str(tmp_path / "trace.png")],
              out=out, err=io.StringIO())
    assert rc == 0
    res = json.loads((tmp_path / "r.json").read_text())
    # 100 ms windows every 50 ms (the checkpoint's stream stride) over 6.5 s; switches every 3 s
    assert res["windows"] == 129 and res["switches"] == 2
    assert res["window_accuracy"] > 0.5  # chance is 1/12; the shipped model measured 0.75 here
    assert "window accuracy" in out.getvalue()
    # the per-window trace behind the figures, and its picture
    assert len(res["trace"]) == 129
    assert sum(m["label"] == m["truth"] for m in res["trace"]) == round(res["window_accuracy"] * 129)
    import matplotlib.image

    img = matplotlib.image.imread(tmp_path / "trace.png")
    assert img.shape[0] > 100 and img.shape[1] > 500 and img[..., :3].std() > 0.05


def test_settled_accuracy_flicker_and_confusion_on_a_hand_made_sequence():
    from eventpipe.runtime.stream_eval import settled_figures

    # windows end every 100 ms; truth a (1.0 s) then b (1.0 s); settle after 300 ms
    truths = ["a"] * 10 + ["b"] * 10
    labels = (["a", "a", "a", "b", "a", "a", "a", "a", "a", "a"]       # one blip at 400 ms
              + ["a", "a", "b", "b", "b", "c", "b", "b", "b", "b"])    # switch at 1.3 s, blip
    res = settled_figures(_msgs(truths, labels, window_us=100_000), settle_us=300_000)
    # first segment counts from its first window (100 ms): windows ending at >= 400 ms (7 of
    # them, one wrong); second from the last "a" window (1.0 s): windows ending at >= 1.3 s
    assert res["settled_windows"] == 7 + 8
    assert res["settled_accuracy"] == (6 + 7) / 15
    assert res["per_class_settled"] == {"a": 6 / 7, "b": 7 / 8}
    assert res["confusion_names"] == ["a", "b", "c"]
    assert res["confusion"] == [[6, 1, 0], [0, 7, 1], [0, 0, 0]]
    # label changes: a->b, b->a (first segment), a->b, b->c, c->b: 5 for one switch
    assert res["label_changes"] == 5 and res["label_changes_per_switch"] == 5.0


def test_figures_of_several_streams_add_up():
    from eventpipe.runtime.stream_eval import combine

    # windows end every 50 ms; settled = at least 100 ms after the last old window
    s1 = summarise(_msgs(["a"] * 4 + ["b"] * 6, ["a"] * 5 + ["b", "b", "a", "b", "b"]),
                   settle_us=100_000)
    s2 = summarise(_msgs(["c"] * 5 + ["a"] * 5, ["c"] * 5 + ["b", "a", "a", "a", "a"]),
                   settle_us=100_000)
    both = combine([s1, s2])
    assert both["windows"] == 20 and both["windows_right"] == 8 + 9
    assert both["switches"] == 2 and both["switches_caught"] == 2
    assert both["latencies_ms"] == [100.0, 100.0]
    assert both["label_changes"] == 3 + 2 and both["label_changes_per_switch"] == 2.5
    assert both["confusion_names"] == ["a", "b", "c"]
    # s1 settled: a at 150, 200 ms (right); b at 300-500 ms (the 'a' at 400 ms wrong)
    # s2 settled: c at 150-250 ms; a at 350-500 ms (the 'b' at 300 ms is not settled)
    assert both["confusion"] == [[6, 0, 0], [1, 4, 0], [0, 0, 3]]
    assert both["settled_accuracy"] == 13 / 14
    assert both["per_class_settled"] == {"a": 1.0, "b": 0.8, "c": 1.0}


def test_eval_cli_several_streams_goal_figures_and_event_time_duration(tmp_path):
    """Two short held-out streams: a synthetic URI with its own duration_s runs to its end
    (``--duration`` is then no wall-clock limit), each stream gets its lines, then "all"; the
    JSON and the confusion PNG hold the settled figures of both together."""
    import io
    import json

    import matplotlib.image

    from eventpipe.cli import main

    out = io.StringIO()
    rc = main(["eval", "--stream", "synthetic:seed=4242,duration_s=3.5", "--stream",
               "synthetic:seed=4243,duration_s=3.5", "--duration", "0.001", "--max-speed",
               "--json-out", str(tmp_path / "r.json"), "--confusion-png", str(tmp_path / "c.png")],
              out=out, err=io.StringIO())
    assert rc == 0
    res = json.loads((tmp_path / "r.json").read_text())
    assert [s["windows"] for s in res["streams"]] == [69, 69] and res["windows"] == 138
    assert res["switches"] == 2
    assert res["settled_windows"] == sum(s["settled_windows"] for s in res["streams"])
    assert sum(map(sum, res["confusion"])) == res["settled_windows"]
    text = out.getvalue()
    assert text.count("settled (>= 500 ms after a switch)") == 3 and "\nall: windows 138" in text
    assert "label changes" in text and "per class (settled)" in text
    img = matplotlib.image.imread(tmp_path / "c.png")
    assert img.shape[0] > 100 and img[..., :3].std() > 0.05


def test_the_runtime_decodes_with_the_checkpoints_stored_settings_unless_the_config_says(tmp_path):
    """The shipped model carries its decoder settings (chosen by decoder_tune, docs/training.md);
    a run config value wins; a checkpoint without them decodes without smoothing."""
    import dataclasses

    import torch

    from eventpipe.runtime.config import load_run_config
    from eventpipe.runtime.model_loader import DEFAULT_WEIGHTS, load_model
    from eventpipe.runtime.pipeline import Pipeline
    from eventpipe.training.decoder_tune import store_settings

    raw = torch.load(DEFAULT_WEIGHTS, weights_only=True)
    assert raw["extra"]["decoder"] == {"ema": 0.6, "hysteresis": 0.4, "dwell": 1, "challenger_ema": 0.4,
                                       "release": 0.2}

    def decoder_of(model, sets=()):
        cfg = load_run_config(None, list(sets))
        loaded = load_model(model)
        return Pipeline(cfg, None, loaded, [], recipe=loaded.recipe).decoder

    d = decoder_of("default")
    assert (d.ema, d.hysteresis, d.dwell, d.challenger_ema, d.release, d.release_hysteresis) == (
        0.6, 0.4, 1, 0.4, 0.2, None)
    d = decoder_of("default", ["decoder.ema=0", "decoder.dwell=2"])
    assert (d.ema, d.hysteresis, d.dwell) == (0.0, 0.4, 2)
    assert d.challenger_ema is None   # the stored 0.4 is no faster than ema 0: the single-EMA rule
    d = decoder_of("default", ["decoder.challenger_ema=0.2", "decoder.release=0.1"])
    assert (d.ema, d.challenger_ema, d.release) == (0.6, 0.2, 0.1)
    bare = tmp_path / "bare.pt"
    del raw["extra"]["decoder"]
    torch.save(raw, bare)
    d = decoder_of(str(bare))
    assert (d.ema, d.hysteresis, d.dwell) == (0.0, 0.0, 1)
    store_settings(bare, {"ema": 0.5, "hysteresis": 0.1, "dwell": 3})
    d = decoder_of(str(bare))
    assert (d.ema, d.hysteresis, d.dwell) == (0.5, 0.1, 3)
    assert dataclasses.asdict(load_run_config(None, []).decoder)["ema"] is None


def test_eval_line_prints_latencies_to_one_decimal():
    """A percentile's float noise (570.0000000000002) and a stream with no caught switch (None)
    print as a reader expects: ``570.0`` and ``-``."""
    from eventpipe.cli.evaluate import _line

    res = dict(window_accuracy=0.5, label_changes_per_switch=1.0, per_class_settled={"a": 1.0}, windows=10,
               max_latency_ms=500.0, switches=2, switches_caught=1, switch_catch_rate=0.5,
               latency_ms_median=400.0, latency_ms_p90=570.0000000000002, settle_ms=500.0, settled_windows=4,
               settled_accuracy=1.0, label_changes=2)
    line = _line("all", res)
    assert "latency median 400.0 ms, p90 570.0 ms" in line, line
    res.update(latency_ms_median=None, latency_ms_p90=None, switches_caught=0, switch_catch_rate=0.0)
    assert "latency median - ms, p90 - ms" in _line("", res)
