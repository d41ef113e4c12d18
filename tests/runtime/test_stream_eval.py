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
