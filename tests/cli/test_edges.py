"""Edges a demanding user hits (session 12): sockets that cannot be opened, signals, damaged
files of the commands not covered by test_bad_input.py -- each one clear line naming what was
wrong, never a bare errno."""

from __future__ import annotations

import socket

import pytest

from eventpipe.errors import ExitStatus
from tests.cli.conftest import assert_one_error_line


def _held_port(kind):
    """A port on 127.0.0.1 held bound by a socket of ``kind`` (never listening) while inside."""
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    yield s.getsockname()[1]
    s.close()


@pytest.fixture
def taken_udp_port():
    yield from _held_port(socket.SOCK_DGRAM)


@pytest.mark.parametrize("command", ["record", "run"])
@pytest.mark.parametrize("where", ["taken port", "host not on this machine"])
def test_udp_source_that_cannot_bind_names_the_endpoint(cli, tmp_path, taken_udp_port, command,
                                                        where):
    """Before: ``eventpipe: error: [Errno 98] Address already in use`` (or ``[Errno 99] Cannot
    assign requested address``), naming neither the host nor the port."""
    uri = {"taken port": f"udp://127.0.0.1:{taken_udp_port}",
           "host not on this machine": "udp://192.0.2.1:5000"}[where]  # TEST-NET-1
    argv = (["record", uri, tmp_path / "o.h5", "--duration", "1"] if command == "record"
            else ["run", "--source", uri, "--set", "source.sensor_size=[64,48]",
                  "--duration", "1", "--quiet"])
    line = assert_one_error_line(cli(argv), ExitStatus.RUNTIME, uri, "cannot bind")
    assert "Errno" not in line
    assert not (tmp_path / "o.h5").exists()


@pytest.mark.parametrize("command", ["compile", "snap", "finetune"])
def test_chip_output_that_is_a_folder_is_refused_before_the_work(cli, tmp_path, command):
    """Before: ``chip snap -o DIR`` calibrated, snapped and then printed torch's ``[enforce fail
    at inline_container.cc:747] . open file failed with strerror: Is a directory`` (exit 1)."""
    extra = {"compile": ["--calibration", "0"], "snap": ["--calibration", "0"],
             "finetune": ["--steps", "1"]}[command]
    res = cli(["chip", command, "-o", tmp_path, *extra])
    assert_one_error_line(res, ExitStatus.CONFIG, f"-o {tmp_path}", "is a folder")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def chip_program(tmp_path_factory):
    from tests.cli.conftest import run_cli

    path = tmp_path_factory.mktemp("chip") / "p.npz"
    res = run_cli(["chip", "compile", "-o", path, "--calibration", "0"])
    assert res.rc == 0, res
    return path


@pytest.mark.parametrize("where", ["folder", "no folder", "no image suffix"])
def test_chip_report_plot_path_is_checked_before_the_report(cli, tmp_path, chip_program, where):
    """Before: ``--plot DIR`` printed the report and silently wrote ``DIR.png`` beside the
    folder (matplotlib adds a suffix); ``--plot x.txt`` printed the report, then matplotlib's
    'Format 'txt' is not supported'; a missing folder was found after the report too."""
    target = tmp_path / "plots"
    target.mkdir()
    plot = {"folder": target, "no folder": tmp_path / "nope" / "r.png",
            "no image suffix": target / "r.txt"}[where]
    res = cli(["chip", "report", chip_program, "--clips", "1", "--plot", plot])
    assert_one_error_line(res, ExitStatus.CONFIG, f"--plot {plot}")
    assert res.out == ""  # nothing printed before the error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plots"]
    assert list(target.iterdir()) == []


@pytest.mark.parametrize("override", [
    "optim.epochs=0", "optim.epochs=-1", "optim.batch_size=0", "optim.lr=-1",
    "optim.warmup_epochs=-1", "num_workers=-1", "threads=0", "data.n_per_class=0", "data.T=0",
])
def test_training_values_out_of_range_are_config_errors(cli, override):
    """Before: ``epochs=0`` or ``-1`` trained nothing and exited 0; ``batch_size=0``,
    ``lr=-1``, ``num_workers=-1``, ``n_per_class=0`` started, then failed with torch's or
    numpy's words (exit 1, 'need at least one array to stack') naming no key."""
    key = override.split("=")[0]
    res = cli(["train", "--print-config", "--set", override])
    assert_one_error_line(res, ExitStatus.CONFIG, f"{key}: ", "out of range")
    assert res.out == ""


def test_record_from_a_dv_server_that_is_not_there_says_so(cli, tmp_path):
    """Before: 'recorded 0 events in 1.01 s ...' and nothing else, exit 0: no word that the
    server refused every connection."""
    from tests.transport.helpers import free_tcp_port

    port = free_tcp_port()
    res = cli(["record", f"dv://127.0.0.1:{port}", tmp_path / "o.h5", "--duration", "0.5"])
    assert res.rc == 0, res
    lines = res.out.splitlines()
    assert lines[0].startswith("recorded 0 events"), res
    assert lines[1].startswith(f"  dv://127.0.0.1:{port}: never connected (retried every "), res
    assert "refused" in lines[1] and "is the DV server running" in lines[1], res


@pytest.mark.parametrize("command", ["info", "view", "convert"])
def test_unknown_forced_format_is_a_config_error(cli, tmp_path, command):
    """Before: ``--format nosuch`` exited 1 (RUNTIME) although it is a bad flag value."""
    from tests.conftest import sample_path

    src = sample_path("sample_ncars.dat")
    argv = {"info": ["info", src], "view": ["view", src, "--out", tmp_path / "v.gif"],
            "convert": ["convert", src, tmp_path / "o.csv"]}[command]
    res = cli([*argv, "--format", "evt4"])
    assert_one_error_line(res, ExitStatus.CONFIG, "unknown format 'evt4'", "did you mean")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["info", "view", "convert"])
def test_sensor_size_past_uint16_is_a_usage_error(cli, tmp_path, command):
    """Before: ``view --sensor-size 99999x99999`` read the file, then failed with
    'sensor_size must be positive and <= 65536' and exit 1; 0x0 was already a usage error."""
    from tests.conftest import sample_path

    src = sample_path("sample_ncars.dat")
    argv = {"info": ["info", src], "view": ["view", src, "--out", tmp_path / "v.gif"],
            "convert": ["convert", src, tmp_path / "o.csv"]}[command]
    res = cli([*argv, "--sensor-size", "99999x99999"])
    assert_one_error_line(res, ExitStatus.USAGE, "--sensor-size", "at most 65536x65536")


@pytest.fixture
def huge_geometry_evt3(tmp_path):
    """The real EVT3 sample with a header line claiming a 60000x60000 sensor."""
    from tests.conftest import sample_path

    raw = sample_path("evt3_sample.raw").read_bytes()
    assert b"% evt 3.0\n" in raw and b"% geometry" not in raw
    path = tmp_path / "huge.raw"
    path.write_bytes(raw.replace(b"% evt 3.0\n", b"% evt 3.0\n% geometry 60000x60000\n", 1))
    return path


def test_view_of_a_file_claiming_a_huge_sensor_is_refused_before_allocating(
        cli, tmp_path, huge_geometry_evt3):
    """Before: 'eventpipe: error: out of memory (lower the sizes in the configuration)', exit
    1, after trying to allocate a 60000x60000 RGB frame (10.8 GB; on a host that overcommits
    it is allocated).  Now the header's claim is bounded like run's sensor sizes."""
    out = tmp_path / "v.gif"
    res = cli(["view", huge_geometry_evt3, "--out", out])
    assert_one_error_line(res, ExitStatus.DATA, "huge.raw", "60000x60000 (file)",
                          "more than view renders", "--sensor-size")
    assert not out.exists()
    res = cli(["view", huge_geometry_evt3, "--out", out, "--sensor-size", "1280x720"])
    assert res.rc == 0 and out.stat().st_size > 0, res


@pytest.mark.parametrize("how", ["file:", "bare path", "second of two"])
def test_eval_stream_of_an_unlabelled_recording_is_a_data_error(cli, tmp_path, monkeypatch, how):
    """Before: exit 0 and 'windows 0, window accuracy -, switches 0, ...' -- dashes for a
    recording that has no labels file, with no word of why; then the same line after the whole
    recording had run through the model.  Now before anything runs (also when it is the second
    stream of two)."""
    import eventpipe.runtime.stream_eval as stream_eval
    from tests.conftest import sample_path

    monkeypatch.setattr(stream_eval, "evaluate_stream", lambda *a, **k: pytest.fail("it ran"))
    src = tmp_path / "take.dat"
    src.write_bytes(sample_path("sample_ncars.dat").read_bytes())
    streams = {"file:": ["--stream", f"file:{src}"], "bare path": ["--stream", str(src)],
               "second of two": ["--stream", "synthetic:", "--stream", f"file:{src}"]}[how]
    res = cli(["eval", "default", *streams, "--max-speed"])
    assert res.rc == ExitStatus.DATA and res.out == "", res
    errors = [x for x in res.err_lines if x.startswith("eventpipe: error: ")]
    assert len(errors) == 1 and errors[0] == res.err_lines[-1], res
    said = f"{src}: no window carried a truth label" if how == "bare path" else \
        f"file:{src}: no window carried a truth label"
    assert said in errors[0] and "(checked before the run)" in errors[0], res
    assert "labels.csv" in errors[0] and "Traceback" not in res.err


def test_eval_split_other_than_train_or_test_is_a_usage_error(cli):
    """Before: '--split val' (or any typo) scored the test split and printed 'accuracy 0.8773
    on 3432 clips (val)'."""
    res = cli(["eval", "default", "--split", "val"])
    assert_one_error_line(res, ExitStatus.USAGE, "--split", "invalid choice: 'val'")


@pytest.mark.parametrize("source", ["synthetic:duration_s=0.2", "file"])
def test_a_tiny_replay_speed_paces_instead_of_crashing(cli, tmp_path, source):
    """Before: '--speed 1e-300' made the pacing wait longer than threading can wait: 'internal
    error: OverflowError: timestamp out of range for platform time_t' (exit 1).  Now the source
    waits (interruptibly) and --duration ends the recording."""
    from tests.conftest import sample_path

    uri = f"file:{sample_path('sample_ncars.dat')}" if source == "file" else source
    res = cli(["record", uri, tmp_path / "o.h5", "--speed", "1e-300", "--duration", "0.5"])
    assert res.rc == 0 and "error" not in res.err, res
    assert res.out.startswith("recorded ") and not res.out.startswith("recorded 0 "), res


@pytest.mark.parametrize("device", ["/dev/null", "/dev/zero"])
@pytest.mark.parametrize("command", ["info", "info --format evt3", "convert"])
def test_a_pipe_or_device_is_refused_as_not_a_regular_file(cli, tmp_path, device, command):
    """``eventpipe info <(cat take.raw)`` said 'empty file: no header and no events': format
    detection read the pipe's first bytes, the reader found the rest.  A device (standing in
    for the pipe here: a test FIFO would block) said 'unrecognised event file'."""
    argv = command.split() + [device]
    if command == "convert":
        argv.append(tmp_path / "o.csv")
    res = cli(argv)
    assert_one_error_line(res, ExitStatus.DATA, f"{device}: not a regular file (a pipe or a "
                          "device)", "save it to a file first")
    assert list(tmp_path.iterdir()) == []


def test_an_unrecognised_file_points_at_the_format_flag(cli, tmp_path):
    """Before: '... unrecognised event file (first bytes ...); pass format= one of ...' -- the
    Python keyword, which a command-line user cannot pass."""
    path = tmp_path / "take.xyz"
    path.write_bytes(bytes(range(256)) * 4)
    line = assert_one_error_line(cli(["info", path]), ExitStatus.DATA, "take.xyz",
                                 "unrecognised event file", "--format")
    assert "evt3" in line and "h5" in line


@pytest.mark.parametrize("command", ["record", "run"])
def test_port_0_says_which_port_was_bound(cli, tmp_path, command):
    """Port 0 binds an ephemeral port; before, neither ``record`` nor ``run`` said which, so no
    sender could be pointed at it (the start-up line repeated 'source udp://127.0.0.1:0')."""
    import re

    uri = "udp://127.0.0.1:0" if command == "record" else "zmq+tcp://127.0.0.1:0"
    argv = (["record", uri, tmp_path / "o.h5", "--duration", "0.3"] if command == "record"
            else ["run", "--source", uri, "--duration", "0.3", "--quiet"])
    res = cli(argv)
    assert res.rc == 0, res
    want = (r"udp://127\.0\.0\.1:0 \(bound: udp://127\.0\.0\.1:(\d+)\)" if command == "record"
            else r"zmq\+tcp://127\.0\.0\.1:0 \(bound: tcp://127\.0\.0\.1:(\d+)\)")
    m = re.search(want, res.err)
    assert m and int(m.group(1)) > 0, res


@pytest.mark.parametrize("what", ["export is a folder", "out_dir is a file"])
def test_train_output_paths_are_checked_before_training(cli, tmp_path, what):
    """Before: '--set export=DIR' trained to the end, then failed with 'DIR.tmp: Is a
    directory' (after leaving DIR.tmp beside it); an out_dir that is a file failed late too."""
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    extra = (["--set", f"export={tmp_path}", "--out-dir", tmp_path / "run"]
             if what == "export is a folder" else ["--out-dir", blocker])
    res = cli(["train", "--set", "data.n_per_class=1", "--set", "max_steps=1", *extra])
    key = "export" if what == "export is a folder" else "out_dir"
    assert_one_error_line(res, ExitStatus.CONFIG, f"{key} ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker"]


@pytest.mark.parametrize("damage", ["cut mid-word", "garbage in the middle"])
def test_a_recording_ended_by_a_failing_source_is_not_complete(cli, tmp_path, damage):
    """Before: exit 3 but the partial OUT.h5 said ``complete True`` in ``info`` and to
    ``open_recording`` -- indistinguishable from a recording of the whole source."""
    from recorders import open_recording
    from tests.conftest import sample_path

    raw = sample_path("evt3_sample.raw").read_bytes()
    half = len(raw) // 2
    damaged = (raw[:half + 7] if damage == "cut mid-word"  # an odd cut: half a 2-byte word
               else raw[:half] + bytes([0xAB, 0xDA]) * 2048 + raw[half:])  # word type 0xd
    src, out = tmp_path / "damaged.raw", tmp_path / "o.h5"
    src.write_bytes(damaged)
    assert_one_error_line(cli(["record", f"file:{src}", out]), ExitStatus.DATA, "damaged.raw",
                          "byte")
    full = tmp_path / "full.h5"
    assert cli(["record", f"file:{sample_path('evt3_sample.raw')}", full]).rc == 0
    with open_recording(full) as rec:
        assert rec.complete and rec.info.ended_by_error == ""
        whole = rec.events()
    with open_recording(out) as rec:
        assert not rec.complete and not rec.info.complete
        assert rec.info.ended_by_error.startswith("the source failed: ")
        assert "damaged.raw" in rec.info.ended_by_error
        part = rec.events()
    assert 0 < len(part) < len(whole)
    assert (part == whole[:len(part)]).all()  # what it holds is the source's events up to the damage
    res = cli(["info", out])
    assert res.rc == 0, res
    lines = {ln.split(None, 1)[0]: ln.split(None, 1)[1] for ln in res.out.splitlines()
             if len(ln.split(None, 1)) == 2}
    assert lines["complete"] == "False"
    assert lines["ended_by_error"].startswith("the source failed: ") and "damaged.raw" in \
        lines["ended_by_error"]


def test_run_of_a_file_claiming_a_huge_sensor_is_a_data_error(cli, huge_geometry_evt3):
    """Before: exit 4 (config error) with 'sensor size of PATH: 60000x60000 has ... pixels',
    as if the user had set it; ``view`` called the same file's claim a data error (exit 3)."""
    res = cli(["run", "--source", f"file:{huge_geometry_evt3}", "--quiet"])
    assert_one_error_line(res, ExitStatus.DATA, "huge.raw", "field 'sensor size'",
                          "60000x60000 (file)", "3,600,000,000 pixels",
                          "source.sensor_size=[W,H]")


@pytest.mark.parametrize("value, text", [
    ("1e300", "1e+300 is out of range (must be <= 86400.0)"),
    ("86401", "86401.0 is out of range (must be <= 86400.0)"),
    ("1e-9", "1e-09 is out of range (must be >= 0.001)"),
    ("nan", "expected a finite number, got nan"),
    ("inf", "expected a finite number, got inf"),
    ("-1", "-1.0 is out of range (must be > 0)"),
])
def test_record_flush_every_out_of_range_names_the_flag(cli, tmp_path, value, text):
    """Before: ``--flush-every 1e300`` recorded with no flush until the end (a crash lost
    everything), and ``1e-9`` rounded to 0 us and failed with 'flush_every_us must be > 0 or
    None, got 0', naming no flag.  (A UDP source nobody sends to: refused before waiting.)"""
    out = tmp_path / "r.h5"
    res = cli(["record", "udp://127.0.0.1:0", out, f"--flush-every={value}"])
    assert_one_error_line(res, ExitStatus.CONFIG, f"--flush-every: {text}")
    assert not out.exists()


def test_record_flush_every_at_its_bounds_records(cli, tmp_path):
    from tests.conftest import sample_path

    for value in ("0.001", "86400"):
        res = cli(["record", f"file:{sample_path('evt3_sample.raw')}", tmp_path / f"{value}.h5",
                   "--flush-every", value])
        assert res.rc == 0 and "recorded 219,596 events" in res.out, res


@pytest.fixture
def silent_port():
    """A port on 127.0.0.1 that nobody publishes on (held bound, never listening)."""
    yield from _held_port(socket.SOCK_STREAM)


def test_listen_timeout_with_nothing_received_says_so(cli, silent_port):
    """Before: exit 0, nothing on stdout or stderr -- indistinguishable from a listener that
    never ran.  Now one line says nothing arrived (exit 0 still: silence is no error)."""
    endpoint = f"tcp://127.0.0.1:{silent_port}"
    res = cli(["listen", endpoint, "--timeout", "0.3"])
    assert res.rc == ExitStatus.OK and res.out == "", res
    assert res.err_lines == [f"eventpipe: nothing arrived on {endpoint} in 0.3 s (is "
                             "`eventpipe run --publish` sending there?)"], res


def test_listen_that_received_something_prints_no_note(cli):
    import threading

    from eventpipe.sinks.zmq_pub import ZmqPubSink

    sink = ZmqPubSink("tcp://127.0.0.1:0")
    stop = threading.Event()

    def publish():  # until the subscriber has joined (a PUB drops messages before that)
        seq = 0
        while not stop.wait(0.02):
            sink.write({"stream": 0, "seq": seq, "t_us": seq, "label": "wave", "score": 0.5})
            seq += 1

    th = threading.Thread(target=publish, daemon=True)
    th.start()
    try:
        res = cli(["listen", sink.endpoint, "--count", "2", "--timeout", "30"])
    finally:
        stop.set()
        th.join()
        sink.close()
    assert res.rc == ExitStatus.OK and len(res.out.splitlines()) == 2, res
    assert "wave 0.500" in res.out and res.err_lines == [], res


def test_ctrl_c_during_train_leaves_a_resumable_state_and_no_final(tmp_path):
    """What docs/training.md's training loop section says of Ctrl-C: exit 130 with one line,
    no ``final.pt`` (nothing claims to be the finished model), ``last.pt`` the last finished
    epoch, from which ``--resume auto`` goes on."""
    import signal
    import subprocess
    import sys
    import time

    import torch

    from tests.conftest import REPO
    from tests.training.conftest import tiny_overrides

    def train(epochs, *more):
        argv = [sys.executable, "-m", "eventpipe", "train", *more]
        for o in tiny_overrides(tmp_path, **{"optim.epochs": epochs}):
            argv += ["--set", o]
        return argv

    run = tmp_path / "run"
    p = subprocess.Popen(train(1000), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         cwd=REPO)
    try:
        deadline = time.monotonic() + 240  # a bound, not a timing assert: the first epoch
        while not (run / "last.pt").exists() and p.poll() is None and \
                time.monotonic() < deadline:
            time.sleep(0.05)
        assert p.poll() is None, p.communicate()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 130, (out, err)
    assert [x for x in err.splitlines() if x.strip()] == ["eventpipe: error: interrupted"], err
    assert not (run / "final.pt").exists()
    state = torch.load(run / "last.pt", weights_only=False)
    epoch = int(state["epoch"])
    assert 1 <= epoch < 1000 and len(state["history"]) == epoch
    res = subprocess.run(train(epoch + 1, "--resume", "auto"), capture_output=True, text=True,
                         timeout=300, cwd=REPO)
    assert res.returncode == 0, res.stderr
    assert f"resumed from {run / 'last.pt'}: epoch {epoch}," in res.stdout + res.stderr
    assert (run / "final.pt").is_file()
    assert int(torch.load(run / "last.pt", weights_only=False)["epoch"]) == epoch + 1


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_listen_stopped_by_a_signal_ends_with_what_arrived(cli, silent_port, signame):
    """Ctrl-C is how a listener is usually ended: exit 0 and one line saying how many
    messages arrived (before: ``error: interrupted``, exit 130, as for a failure)."""
    import os
    import signal
    import threading

    signum = getattr(signal, signame)
    endpoint = f"tcp://127.0.0.1:{silent_port}"
    def outside(signum_, frame):  # a signal reaching the test instead of the command
        raise RuntimeError(f"signal {signum_} was not handled by the command")

    before = signal.signal(signum, outside)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signum))
    timer.start()
    try:
        res = cli(["listen", endpoint])
        assert signal.getsignal(signum) is outside  # the command put the handler back
    finally:
        timer.cancel()
        signal.signal(signum, before)
    assert res.rc == ExitStatus.OK and res.out == "", res
    assert res.err_lines == [f"eventpipe: stopped by a signal after 0 messages from {endpoint}"]


def test_events_outside_the_sensor_size_are_counted_on_the_summary(cli, tmp_path):
    """``run`` with a sensor size smaller than the recording's events: the binner drops them,
    and the summary says how many and what to change (before: only the metrics JSON's
    ``events_out_of_bounds`` knew - 1,961 of the N-CARS sample's 2,009 events at 10x10 - and the
    summary line said 'dropped 0').  The right size says nothing."""
    import json

    from tests.conftest import expected_events, sample_path

    ev = expected_events("sample_ncars.dat")
    outside = int(((ev["x"] >= 10) | (ev["y"] >= 10)).sum())
    src = f"file:{sample_path('sample_ncars.dat')}"
    res = cli(["run", "--source", src, "--set", "source.sensor_size=[10,10]", "--quiet",
               "--metrics-json", tmp_path / "m.json"])
    assert res.rc == 0, res
    assert (f"  {outside:,} events lay outside the sensor size 10x10 and were dropped: give the "
            "real size with --set source.sensor_size=[W,H]") in res.err.splitlines(), res
    assert json.loads((tmp_path / "m.json").read_text())["events_out_of_bounds"] == outside
    res = cli(["run", "--source", src, "--quiet"])
    assert res.rc == 0 and "outside the sensor size" not in res.err, res


@pytest.fixture(params=["device", "link_to_device", "fifo"])
def not_a_regular_file(request, tmp_path):
    """A checkpoint path that exists but is no file: /dev/zero, a symlink to it, a named pipe."""
    import os

    if request.param == "device":
        return "/dev/zero", "a character device"
    if request.param == "link_to_device":
        link = tmp_path / "model.pt"
        link.symlink_to("/dev/zero")
        return str(link), "a character device"
    fifo = tmp_path / "model.pt"
    os.mkfifo(fifo)
    return str(fifo), "a named pipe"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("command", ["run", "eval", "chip compile", "train init"])
def test_a_checkpoint_that_is_a_device_or_pipe_is_named_so(cli, tmp_path, not_a_regular_file,
                                                            command):
    """A device, a symlink to one or a named pipe given as the checkpoint read as "empty file,
    not a checkpoint" (``run``, ``eval``: its size is 0) or "no such checkpoint" (``chip compile``,
    ``train``'s init: it is not a file, yet it exists).  Now each says what the path is, exit 3,
    before opening it (a pipe's open would wait for a writer)."""
    path, kind = not_a_regular_file
    argv = {"run": ["run", "--model", path, "--duration", "1"],
            "eval": ["eval", path, "--stream", "synthetic:seed=1", "--duration", "1"],
            "chip compile": ["chip", "compile", path, "-o", tmp_path / "p.npz"],
            "train init": ["train", "--config", "configs/train_synthetic_halves_switchruns.toml",
                           "--set", f'init="{path}"', "--set", f'out_dir="{tmp_path / "runs"}"']}[command]
    res = cli(argv)
    assert_one_error_line(res, ExitStatus.DATA, path, f"{kind}, not a checkpoint file")
