"""docs/runtime.md, the claims no other test held: the config bounds at both edges, each
source's queue defaults, the recipe defaults, and the ``OMP_WAIT_POLICY`` the command sets."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import numpy as np
import pytest

from eventpipe.errors import ConfigError
from eventpipe.runtime.config import RunConfig, load_run_config
from tests.conftest import REPO, sample_path

# "The bounds: `runtime.max_batch` 1..4096, `runtime.frame_queue` 1..100000, ...": (key, the
# last value inside, the first value outside); both edges of each range the doc states
EDGES = [
    ("runtime.max_batch", "1", "0"), ("runtime.max_batch", "4096", "4097"),
    ("runtime.frame_queue", "1", "0"), ("runtime.frame_queue", "100000", "100001"),
    ("runtime.duration_s", "1e-6", "0"),
    ("source.speed", "1e-6", "0"),
    ("window.window_us", "100", "99"), ("window.window_us", "60000000", "60000001"),
    ("window.stride_us", "100", "99"), ("window.stride_us", "60000000", "60000001"),
    ("window.timeout_s", "1e-6", "0"),
    ("input.size", "[1,1]", "[0,1]"), ("input.size", "[1024,1024]", "[1025,1024]"),
    ("input.size", "[1024,1024]", "[1024,1025]"),
    ("source.sensor_size", "[1,1]", "[0,1]"), ("source.sensor_size", "[65536,1]", "[65537,1]"),
    ("source.sensor_size", "[1,65536]", "[1,65537]"),
    # at most 4096 x 4096 pixels: 8192 x 2048 is exactly that many, one column more is not
    ("source.sensor_size", "[8192,2048]", "[8193,2048]"),
    ("decoder.ema", "0", "-0.01"), ("decoder.ema", "0.999", "1"),
    ("decoder.threshold", "0", "-0.01"), ("decoder.threshold", "1", "1.01"),
    ("decoder.hysteresis", "0", "-0.01"), ("decoder.hysteresis", "1", "1.01"),
    ("decoder.dwell", "1", "0"),
]


@pytest.mark.parametrize("key,inside,outside", EDGES)
def test_run_config_bounds_are_the_documented_ones(key, inside, outside):
    section, name = key.split(".")
    cfg = load_run_config(None, [f"{key}={inside}"])
    got = getattr(getattr(cfg, section), name)
    want = eval(inside)  # a number or a list literal written above
    assert got == (tuple(want) if isinstance(want, list) else want)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_run_config(None, [f"{key}={outside}"])


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_numbers_that_are_not_finite_are_errors_naming_the_key(value):
    with pytest.raises(ConfigError, match=r"decoder\.threshold: expected a finite number"):
        load_run_config(None, [f"decoder.threshold={value}"])


def test_run_config_defaults_the_doc_names():
    cfg = RunConfig()
    assert cfg.model.threads == 1  # "`model.threads` (default 1)"
    from eventpipe.runtime.run import model_backend

    # "`cpu` (folded fast path, the default) ...; `fold = false` is the older way to say `float`"
    assert model_backend(cfg.model) == "cpu"
    assert model_backend(load_run_config(None, ["model.fold=false"]).model) == "float"
    assert cfg.runtime.frame_queue == 64 and cfg.runtime.idle_reset_s == 5.0
    assert cfg.window.max_gap_us == 1_000_000 and cfg.window.reset_on_gap is True
    assert cfg.decoder.ema is None and cfg.decoder.hysteresis is None and cfg.decoder.dwell is None


def test_recipe_defaults_without_a_checkpoint_recipe():
    """"window/input values left unset come from the checkpoint's recipe (else 50 ms windows,
    128x128, `pad`, `counts`)"."""
    from eventpipe.represent import InputRecipe

    r = InputRecipe(size=(128, 128))
    assert (r.window_us, r.stride_us, r.policy, r.normalisation) == (50_000, None, "pad", "counts")
    assert r.channels == "polarity"


def test_each_source_keeps_its_documented_queue_default():
    """"left unset, each source keeps its own default (sockets 65,536 packets and 4 Mi events,
    files 64 packets, paced files 16, generators 256).  UDP datagrams are decoded later, by the
    consumer, 256 at a time."""
    from eventpipe.sources import open_source

    dat = sample_path("sample_ncars.dat")
    opened = {
        "file": open_source(f"file:{dat}", start=False),
        "paced file": open_source(f"file:{dat}", speed=1.0, start=False),
        "synthetic": open_source("synthetic:duration_s=0.1", start=False),
        "zmq+tcp": open_source("zmq+tcp://127.0.0.1:0", start=False),
        "udp": open_source("udp://127.0.0.1:0", start=False, sensor_size=(64, 64)),
        "dv": open_source("dv://127.0.0.1:9", start=False),
    }
    try:
        bounds = {k: (s._queue.maxlen, s._queue.max_events) for k, s in opened.items()}
        assert bounds == {
            "file": (64, None), "paced file": (16, None), "synthetic": (256, None),
            "zmq+tcp": (65536, 4 << 20), "udp": (65536, 4 << 20), "dv": (65536, 4 << 20)}
        assert opened["udp"].read_limit == 256
    finally:
        for s in opened.values():
            s.close()


def test_the_command_sets_a_passive_omp_wait_policy_unless_the_environment_does(monkeypatch):
    from eventpipe.cli import main

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert main(["formats"], out=io.StringIO(), err=io.StringIO()) == 0
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert main(["formats"], out=io.StringIO(), err=io.StringIO()) == 0
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
    # "Programs that import `eventpipe` as a library decide for themselves"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env["PYTHONPATH"] = str(REPO)
    code = ("import os, eventpipe, eventpipe.io, eventpipe.runtime; "
            "print(os.environ.get('OMP_WAIT_POLICY'))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert out.strip() == "None"


def test_synthetic_source_makes_its_first_packet_before_it_starts(monkeypatch):
    """The README's main job (`eventpipe run --duration 30` on `synthetic:`): the emulator's
    kernels compile while the source is built, not in the receive thread after the
    --duration clock started (a first run on a busy machine used to end with "receive thread
    did not stop within 5.0 s" and no label).  No packet is lost or repeated by it."""
    import eventpipe.synthetic as synthetic
    from eventpipe.sources import open_source
    from tests.transport.helpers import collect

    made = []
    original = synthetic.SyntheticStream

    class Watched(original):
        def __iter__(self):
            for pk in super().__iter__():
                made.append(pk)
                yield pk

    monkeypatch.setattr(synthetic, "SyntheticStream", Watched)
    src = open_source("synthetic:seed=4,size=32x32,duration_s=0.1", start=False, speed=None)
    try:
        assert len(made) == 1  # made while building, before start()
        src.start()
        got = collect(src, 10**9, timeout=30)
    finally:
        src.close()
    ref = [pk.events for pk in original(seed=4, sensor_size=(32, 32), duration_s=0.1)]
    assert len(made) == len(ref) == 10  # 0.1 s of 10 ms packets, each made once
    np.testing.assert_array_equal(got, np.concatenate(ref))


def test_the_shipped_model_is_what_the_doc_says():
    """"With no `--model`, the shipped `snn/weights/meta_spikeformer_tiny_synthetic.pt` runs
    (100 ms windows, 64x64, log counts rounded to 6 fractional bits: `qlog1p:6`)"; "the shipped model carries ema 0.6, hysteresis 0.4,
    dwell 1, challenger_ema 0.4, release 0.2" (if the shipped weights are replaced, update
    docs/runtime.md with this test)."""
    import snn
    from eventpipe.represent import recipe_from_checkpoint
    from eventpipe.runtime.model_loader import DEFAULT_WEIGHTS

    assert str(DEFAULT_WEIGHTS).endswith("snn/weights/meta_spikeformer_tiny_synthetic.pt")
    _, meta = snn.load_checkpoint(DEFAULT_WEIGHTS)
    r = recipe_from_checkpoint(meta)
    assert (r.window_us, r.size, r.normalisation) == (100_000, (64, 64), "qlog1p:6")
    dec = meta["extra"]["decoder"]
    assert (dec["ema"], dec["hysteresis"], dec["dwell"], dec["challenger_ema"], dec["release"]) == (
        0.6, 0.4, 1, 0.4, 0.2)


def test_flags_that_stand_for_a_key_win_over_the_file_and_set(tmp_path):
    """"`--set` overrides ... a bare word is a string. The flags that stand for a key win over
    both: `--source` (`source.uri`), `--model`, `--speed`/`--max-speed`, `--duration`,
    `--publish`, `--jsonl`, `--loop`, `--quiet` (`sinks.console=false`)"."""
    import argparse

    from eventpipe.cli.run import add_parser, flag_values

    path = tmp_path / "run.toml"
    path.write_text('[source]\nuri = "file:a.npy"\nspeed = 2.0\n[runtime]\nduration_s = 9.0\n'
                    '[sinks]\nconsole = true\njsonl = "from_file.jsonl"\n')
    sets = ["source.uri=synthetic:", "runtime.duration_s=8", "model.name=meta_spikeformer_tiny"]
    cfg = load_run_config(path, sets)
    assert cfg.source.uri == "synthetic:"  # a bare word (not TOML) is a string
    assert (cfg.runtime.duration_s, cfg.source.speed, cfg.sinks.jsonl) == (8, 2.0, "from_file.jsonl")
    sub = argparse.ArgumentParser().add_subparsers()
    args = add_parser(sub).parse_args([
        "--source", "udp://127.0.0.1:0", "--model", "default", "--max-speed", "--duration", "3",
        "--publish", "tcp://127.0.0.1:0", "--jsonl", "flag.jsonl", "--loop", "--quiet"])
    cfg = load_run_config(path, sets, flag_values(args))
    assert cfg.source.uri == "udp://127.0.0.1:0" and cfg.model.name == "default"
    assert cfg.source.speed is None and cfg.runtime.duration_s == 3 and cfg.source.loop is True
    assert cfg.sinks.publish == "tcp://127.0.0.1:0" and cfg.sinks.jsonl == "flag.jsonl"
    assert cfg.sinks.console is False
    args = add_parser(argparse.ArgumentParser().add_subparsers()).parse_args(["--speed", "0.5"])
    assert load_run_config(path, sets, flag_values(args)).source.speed == 0.5


@pytest.mark.parametrize("frame_queue,at_once", [(4, 16), (40, 40)])
def test_one_packet_gives_at_most_max_16_frame_queue_frames_at_once(frame_queue, at_once):
    """"One packet never produces more than `max(16, runtime.frame_queue)` frames at once: the
    rest of the packet waits in the windower (`pending`) and is queued a chunk at a time"."""
    from types import SimpleNamespace

    from eventpipe.events import make_events
    from eventpipe.represent import InputRecipe
    from eventpipe.runtime.pipeline import Pipeline

    owner = SimpleNamespace(preps={}, source=SimpleNamespace(sensor_size=(64, 64)),
                            cfg=load_run_config(None, [f"runtime.frame_queue={frame_queue}"]),
                            recipe=InputRecipe(size=(32, 32), window_us=1000))
    prep = Pipeline._prep(owner, 0)  # the pipeline's own wiring of a stream
    n = 2000  # one event every 500 us: 1000 windows of 1 ms in one packet
    ev = make_events(np.zeros(n, int), np.zeros(n, int), np.arange(n) * 500, np.ones(n, int))
    chunks = [prep.push(ev, 0.0)]
    while prep.pending:
        chunks.append(prep.more())
    assert len(chunks[0]) == at_once and max(len(c) for c in chunks) == at_once
    assert sum(len(c) for c in chunks) == 999  # every closed window, none lost: 0..998 ms
