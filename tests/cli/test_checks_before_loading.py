"""Configuration is checked before anything loads: one line, the CONFIG status, and neither
the model nor the source is touched (each case is a reproduction from issue 15)."""

from __future__ import annotations

import json

import pytest

from eventpipe.errors import ExitStatus
from eventpipe.sources.uri import SCHEMES, known_schemes
from tests.cli.conftest import assert_one_error_line
from tests.conftest import sample_path


@pytest.fixture
def nothing_loads(monkeypatch):
    """Fail loudly if the model loader or a source is reached."""
    import eventpipe.runtime.run as run_mod

    touched = []

    def forbidden(name):
        def f(*a, **k):
            touched.append(name)
            raise RuntimeError(f"{name} was reached")
        return f

    monkeypatch.setattr(run_mod, "load_model", forbidden("load_model"))
    opener = [n for n in ("open_run_source", "open_source") if hasattr(run_mod, n)]
    assert opener, "run.py opens its source through a function this fixture does not know"
    for name in opener:
        monkeypatch.setattr(run_mod, name, forbidden(name))
    return touched


CASES = {
    "max_batch=0": (["--set", "runtime.max_batch=0"], "runtime.max_batch"),
    "frame_queue=0": (["--set", "runtime.frame_queue=0"], "runtime.frame_queue"),
    "duration nan": (["--duration", "nan"], "runtime.duration_s"),
    "duration -1": (["--duration", "-1"], "runtime.duration_s"),
    "duration inf": (["--duration", "inf"], "runtime.duration_s"),
    "timeout_s=-1": (["--set", "window.timeout_s=-1"], "window.timeout_s"),
    "window_us=0": (["--set", "window.window_us=0"], "window.window_us"),
    "stride_us=0": (["--set", "window.stride_us=0"], "window.stride_us"),
    "window_us=-5000": (["--set", "window.window_us=-5000"], "window.window_us"),
    "speed 0": (["--speed", "0"], "source.speed"),
    "speed -2": (["--speed", "-2"], "source.speed"),
    "speed nan": (["--speed", "nan"], "source.speed"),
    "speed in toml": (["--set", "source.speed=-1.5"], "source.speed"),
    "input 20000": (["--set", "input.size=[20000,20000]"], "input.size"),
    "input 0": (["--set", "input.size=[0,64]"], "input.size"),
    "sensor too big": (["--set", "source.sensor_size=[60000,60000]"], "source.sensor_size"),
    "ema 1": (["--set", "decoder.ema=1.0"], "decoder.ema"),
    "threshold 2": (["--set", "decoder.threshold=2"], "decoder.threshold"),
    "hysteresis -0.1": (["--set", "decoder.hysteresis=-0.1"], "decoder.hysteresis"),
    "dwell 0": (["--set", "decoder.dwell=0"], "decoder.dwell"),
    "queue_size 0": (["--set", "source.queue_size=0"], "source.queue_size"),
    "udp no size": (["--source", "udp://127.0.0.1:0"], "source.sensor_size"),
    "unknown scheme": (["--source", "bogus://127.0.0.1:5"], "unknown scheme 'bogus'"),
    "bad port": (["--source", "udp://127.0.0.1:99999"], "port 99999"),
    "unknown model": (["--model", "meta_spikeformer_tinyy"], "did you mean meta_spikeformer_tiny"),
    "unknown key": (["--set", "window.window_ms=5"], "did you mean 'window_us'"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_run_rejects_before_anything_loads(cli, nothing_loads, case):
    argv, needle = CASES[case]
    res = cli(["run", *argv])
    assert_one_error_line(res, ExitStatus.CONFIG, needle)
    assert nothing_loads == []


def test_unknown_scheme_lists_every_scheme(cli):
    for uri in ("bogus://h:1", "bogus:thing"):
        line = assert_one_error_line(cli(["run", "--source", uri]), ExitStatus.CONFIG)
        listed = line.split("known schemes: ")[1].split(";")[0].rstrip(")").split(", ")
        assert [x.split(" ")[0] for x in listed] == list(SCHEMES)
        assert {"file", "zmq+tcp", "udp", "dv", "synthetic", "dvcam", "camera", "video"} <= set(
            x.split(" ")[0] for x in listed)


def test_parse_uri_lists_the_same_table():
    from eventpipe.sources.uri import parse_uri

    with pytest.raises(ValueError) as e:
        parse_uri("bogus://h:1")
    assert str(e.value).endswith(f"(known schemes: {known_schemes()})")


def test_dvcam_without_a_camera_is_one_line(cli, nothing_loads):
    dv = pytest.importorskip("dv_processing")
    if dv.io.camera.discover():
        pytest.skip("a camera is attached")
    assert_one_error_line(cli(["run", "--source", "dvcam:"]), ExitStatus.DATA,
                          "no iniVation camera found")
    assert nothing_loads == []


def test_dvcam_source_turns_the_vendor_index_error_into_one_line():
    """dv-processing raises IndexError (vector::_M_range_check) when no camera exists."""
    from eventpipe.sources.dv_camera import DvCameraSource

    dv = pytest.importorskip("dv_processing")
    if dv.io.camera.discover():
        pytest.skip("a camera is attached")
    with pytest.raises(RuntimeError, match="no iniVation camera found"):
        DvCameraSource("")


def test_eval_override_without_set_is_not_a_checkpoint(cli, tmp_path):
    res = cli(["eval", "--config", "configs/train_synthetic.toml", "data.n_per_class=2"])
    assert_one_error_line(res, ExitStatus.USAGE, "'data.n_per_class=2' is not a checkpoint",
                          "--set KEY=VALUE")


def test_file_source_sensor_size_is_inferred_like_info(cli, tmp_path):
    """`run --source file:sample_ncars.dat` failed at the first packet although `info` infers
    78x42; now the size is inferred at start and every event is counted."""
    path = sample_path("sample_ncars.dat")
    info = cli(["info", path, "--json"])
    assert json.loads(info.out)["sensor_size"] == [78, 42]
    metrics = tmp_path / "m.json"
    res = cli(["run", "--source", f"file:{path}", "--max-speed", "--quiet",
               "--metrics-json", metrics])
    assert res.rc == 0, res
    m = json.loads(metrics.read_text())
    assert m["events_in"] == 2009 and m["events_out_of_bounds"] == 0 and m["frames"] >= 1


def test_emulator_config_uses_the_one_engine(tmp_path):
    from eventpipe.emulator import EmulatorConfig
    from eventpipe.errors import ConfigError

    toml = tmp_path / "emu.toml"
    toml.write_text("pos_threshold = 0.3\nrefractory_us = 100\n")
    cfg = EmulatorConfig.load(toml, ["neg_threshold=0.25"])
    assert (cfg.pos_threshold, cfg.neg_threshold, cfg.refractory_us) == (0.3, 0.25, 100)
    with pytest.raises(ConfigError, match=r"unknown key 'emulator.pos_thresold' \(did you mean"):
        EmulatorConfig.from_dict({"pos_thresold": 0.3})
    with pytest.raises(ConfigError, match="emulator.cutoff_hz: expected a finite number"):
        EmulatorConfig.from_dict({"cutoff_hz": float("nan")})
    with pytest.raises(ConfigError, match="neg_threshold must be > 0"):
        EmulatorConfig.load(toml, ["neg_threshold=0"])


OUTPUT_CASES = {
    "jsonl folder missing": (["run", "--jsonl", "/nonexistent/dir/x.jsonl"], "sinks.jsonl"),
    "metrics-json folder missing": (["run", "--metrics-json", "/nonexistent/m.json"],
                                    "--metrics-json"),
    "video suffix": (["run", "--video", "clip.xyz"], "--video"),
    "publish not an endpoint": (["run", "--publish", "bogus"], "sinks.publish"),
    "listen not an endpoint": (["listen", "bogus", "--timeout", "0.2"], "endpoint"),
    "broker not an endpoint": (["broker", "--in", "x", "--duration", "0.2"], "--in"),
    # ipc:// and inproc:// passed the flag check, then parsing said "unknown scheme 'ipc' for
    # SCHEME://HOST:PORT (known schemes: file, ..., synthetic)" - the source schemes
    "listen ipc": (["listen", "ipc:///tmp/labels", "--timeout", "0.2"],
                   "endpoint 'ipc:///tmp/labels': scheme 'ipc' is not supported (supported: tcp, zmq+tcp"),
    "broker ipc": (["broker", "--labels-out", "ipc:///tmp/out", "--duration", "0.2"],
                   "--labels-out 'ipc:///tmp/out': scheme 'ipc' is not supported (supported: tcp"),
    "broker inproc": (["broker", "--in", "inproc://events", "--duration", "0.2"],
                      "--in 'inproc://events': scheme 'inproc' is not supported"),
    "publish ipc": (["run", "--publish", "ipc:///tmp/labels"], "sinks.publish 'ipc:///tmp/labels': scheme"),
    "listen udp": (["listen", "udp://127.0.0.1:5556", "--timeout", "0.2"], "scheme 'udp' is not supported"),
    "eval json-out folder": (["eval", "--stream", "synthetic:", "--json-out", "/no/dir/r.json"],
                             "--json-out"),
    # port 0 where the socket connects: listen waited forever, send its whole --timeout (exit 1)
    "listen port 0": (["listen", "tcp://127.0.0.1:0"], "endpoint 'tcp://127.0.0.1:0': port 0 picks "
                      "a free port when a socket binds; this one connects"),
    "send port 0": (["send", "SAMPLE", "--to", "tcp://127.0.0.1:0", "--timeout", "30"],
                    "--to 'tcp://127.0.0.1:0': port 0"),
    "publish connect port 0": (["run", "--publish", "tcp://127.0.0.1:0?mode=connect"],
                               "sinks.publish 'tcp://127.0.0.1:0?mode=connect': port 0"),
}


@pytest.mark.parametrize("case", list(OUTPUT_CASES))
def test_outputs_and_endpoints_are_checked_first(cli, nothing_loads, case):
    """An output that cannot be written is found at start, not after a long run."""
    argv, needle = OUTPUT_CASES[case]
    argv = [str(sample_path("sample_ncars.dat")) if a == "SAMPLE" else a for a in argv]
    assert_one_error_line(cli(argv), ExitStatus.CONFIG, needle)
    assert nothing_loads == []


@pytest.mark.parametrize("kind", ["garbage", "text", "foreign", "missing"])
def test_train_resume_is_checked_before_the_dataset(cli, bad_checkpoints, monkeypatch, kind):
    import eventpipe.training.trainer as trainer

    monkeypatch.setattr(trainer, "train", lambda *a, **k: pytest.fail("training started"))
    res = cli(["train", "--config", "configs/train_synthetic.toml", "--resume",
               bad_checkpoints[kind]])
    assert_one_error_line(res, ExitStatus.DATA, bad_checkpoints[kind].name)


def test_eval_set_reaches_the_dataset_config(cli, monkeypatch):
    """`eval CKPT --config C --set key=v`: the override lands in C's config (it used to be
    taken as the checkpoint path when written `eval --config C key=v`)."""
    import eventpipe.training.datasets as datasets

    seen = {}

    def capture(data_cfg, split, train=False):
        seen["data"], seen["split"] = data_cfg, split
        raise KeyboardInterrupt  # stop here: the dataset itself is not the point

    monkeypatch.setattr(datasets, "build_dataset", capture)
    res = cli(["eval", "default", "--config", "configs/train_synthetic.toml",
               "--set", "data.n_per_class=3", "--split", "test"])
    assert res.rc == ExitStatus.INTERRUPTED, res
    assert seen["data"].n_per_class == 3 and seen["split"] == "test"


@pytest.mark.parametrize("argv,flag", [
    (["view", "X", "--out", "o", "--window-us", "0"], "--window-us"),
    # past the binner's int64 time arithmetic: hung / an OverflowError, exit 1
    (["view", "X", "--out", "o", "--window-us", "9223372036854775807"], "--window-us"),
    (["view", "X", "--out", "o", "--window-us", "99999999999999999999"], "--window-us"),
    (["view", "X", "--out", "o", "--fps", "nan"], "--fps"),
    # outside what the writers take: were exit 1 (a GIF's OverflowError 'internal error',
    # OpenCV's 'cannot open a video writer' after its own error lines)
    (["view", "X", "--out", "o.gif", "--fps", "0.001"], "--fps"),
    (["view", "X", "--out", "o.mp4", "--fps", "100000"], "--fps"),
    (["view", "X", "--out", "o", "--max-frames", "0"], "--max-frames"),
    (["listen", "--timeout", "0"], "--timeout"),
    (["listen", "--count", "0"], "--count"),
    (["broker", "--workers", "0"], "--workers"),
    # past libzmq's int / the last slot's port past 65535: were exit 1 (an OverflowError
    # 'internal error'; 'Invalid argument (addr=tcp://127.0.0.1:65536)')
    (["broker", "--hwm", "99999999999999"], "--hwm"),
    (["broker", "--fanout", "tcp://127.0.0.1:65534", "--workers", "4"], "--fanout"),
    (["broker", "--duration", "-1"], "--duration"),
    (["eval", "--stream", "synthetic:", "--duration", "0"], "--duration"),
    (["eval", "--batch-size", "0"], "--batch-size"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_flags_out_of_range_are_config_errors(cli, tmp_path, argv, flag):
    argv = [str(sample_path("sample_ncars.dat")) if a == "X" else a for a in argv]
    argv = [str(tmp_path / a) if a == "o" or a.startswith("o.") else a for a in argv]
    assert_one_error_line(cli(argv), ExitStatus.CONFIG, flag)
    assert not (tmp_path / "o").exists()
