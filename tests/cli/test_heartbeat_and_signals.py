"""An idle live source still sends periodic metrics (a heartbeat); a SIGTERM during start-up
still ends the run with its summary."""

from __future__ import annotations

import json
import os
import signal

import pytest

from eventpipe.errors import ExitStatus

TINY = ["--model", "meta_spikeformer_tiny", "--set", "model.num_classes=12",
        "--set", "input.size=[32,32]", "--set", "model.threads=1"]


def test_idle_live_source_sends_periodic_metrics(cli, tmp_path):
    out = tmp_path / "labels.jsonl"
    res = cli(["run", "--source", "udp://127.0.0.1:0", "--set", "source.sensor_size=[64,48]",
               *TINY, "--set", "runtime.metrics_every_s=0.2", "--duration", "1.5",
               "--jsonl", out, "--quiet"])
    assert res.rc == 0, res
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert rows and all(r["type"] == "metrics" for r in rows)  # nothing arrived: no labels
    assert rows[-1]["events_in"] == 0
    # 1.5 s at one every 0.2 s, less start-up: several before the final one
    assert len(rows) - 1 >= 3, rows


@pytest.mark.parametrize("stage", ["preflight", "model load"])
def test_sigterm_during_start_up_still_ends_with_a_summary(cli, monkeypatch, stage):
    import eventpipe.runtime.run as run_mod

    def term_then(real):
        def f(*a, **k):
            os.kill(os.getpid(), signal.SIGTERM)  # arrives while the run is starting
            return real(*a, **k)
        return f

    if stage == "preflight":
        monkeypatch.setattr(run_mod, "preflight", term_then(run_mod.preflight))
    else:
        monkeypatch.setattr(run_mod, "load_model", term_then(run_mod.load_model))
    before = signal.getsignal(signal.SIGTERM)
    res = cli(["run", "--source", "synthetic:", *TINY])
    assert res.rc == ExitStatus.OK, res
    lines = res.err_lines
    assert "eventpipe: stopped during start-up" in lines, res
    assert lines[-1].startswith("eventpipe: events in 0 ") and " steps 0," in lines[-1], res
    assert signal.getsignal(signal.SIGTERM) is before  # the handlers are put back


def test_a_second_signal_during_start_up_gives_up(cli, monkeypatch):
    import eventpipe.runtime.run as run_mod

    def twice(*a, **k):
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
        raise AssertionError("not reached: the second signal interrupts")

    monkeypatch.setattr(run_mod, "load_model", twice)
    res = cli(["run", "--source", "synthetic:", *TINY])
    assert res.rc == ExitStatus.INTERRUPTED and res.err_lines == ["eventpipe: error: interrupted"]
