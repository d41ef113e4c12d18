"""Every command, fed bad arguments, bad files and bad checkpoints, answers with exactly one
clear line on stderr and its documented exit status -- never a Python traceback.

The commands come from the door's literal table, so a command added there is covered by
the bad-argument cases without editing this file.
"""

from __future__ import annotations

import pytest
import zmq

from eventpipe.cli.door import COMMANDS, build_parser, command_modules
from eventpipe.errors import ExitStatus
from tests.cli.conftest import assert_one_error_line



def command_names() -> list[str]:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return list(sub.choices)


def test_every_table_entry_is_a_command():
    names = command_names()
    assert len(names) == len(COMMANDS) and len(set(names)) == len(names)
    # each module adds the command of its own name (evaluate.py adds `eval`,
    # replay_labels.py `replay-labels`)
    assert [{"eval": "evaluate"}.get(n, n.replace("-", "_")) for n in names] == list(COMMANDS)
    for module in command_modules():
        assert callable(module.add_parser) and callable(module.run)


@pytest.mark.parametrize("command", command_names())
def test_unknown_option_is_a_usage_error(cli, command):
    res = cli([command, "--no-such-option"])
    line = assert_one_error_line(res, ExitStatus.USAGE, f"eventpipe {command}", "--help")
    # a missing required argument may be reported first
    assert "unrecognized arguments: --no-such-option" in line or "required" in line, res
    assert res.out == ""


@pytest.mark.parametrize("argv", [
    ["info"], ["view", "x.dat"], ["convert", "a.dat"], ["send", "x.dat"],
    ["run", "--duration", "soon"], ["run", "--speed", "fast"], ["listen", "--count", "x"],
    ["broker", "--workers", "two"], ["eval", "--batch-size", "big"], ["info", "--on-error", "x"],
    ["run", "--speed", "2", "--max-speed"], ["no-such-command"], [],
], ids=lambda a: " ".join(a) or "nothing")
def test_bad_arguments_are_usage_errors(cli, argv):
    assert_one_error_line(cli(argv), ExitStatus.USAGE)


def test_positional_override_points_at_set(cli):
    res = cli(["train", "--print-config", "optim.epochs=3"])
    assert_one_error_line(res, ExitStatus.USAGE, "optim.epochs=3", "--set KEY=VALUE")


# -- bad files ----------------------------------------------------------------------------

FILE_COMMANDS = {
    "info": lambda f, tmp: ["info", f],
    "info --json": lambda f, tmp: ["info", "--json", f],
    "view": lambda f, tmp: ["view", f, "--out", tmp / "frames"],
    "view gif": lambda f, tmp: ["view", f, "--out", tmp / "x.gif"],
    "convert": lambda f, tmp: ["convert", f, tmp / "out.csv"],
    "run": lambda f, tmp: ["run", "--source", f"file:{f}", "--max-speed", "--quiet",
                           "--set", "window.timeout_s=1"],
    "eval --stream": lambda f, tmp: ["eval", "--stream", f"file:{f}", "--max-speed"],
}


@pytest.mark.parametrize("kind", ["text", "words", "empty", "truncated", "missing"])
@pytest.mark.parametrize("command", list(FILE_COMMANDS))
def test_bad_recordings_are_data_errors(cli, bad_files, tmp_path, command, kind):
    path = bad_files[kind]
    res = cli(FILE_COMMANDS[command](path, tmp_path))
    if command == "eval --stream" and kind == "truncated":
        # its header is sound and it has no labels file: nothing to score, said before a run
        # that would only find the damage after streaming it (the line names the file)
        assert_one_error_line(res, ExitStatus.DATA, path.name, "no window carried a truth label",
                              "(checked before the run)")
        return
    if command == "run" and kind == "truncated":
        # the header is sound, so the damage shows while streaming: the start-up line may
        # precede the error, which is the last line and the only error line
        assert res.rc == ExitStatus.DATA, res
        errors = [x for x in res.err_lines if x.startswith("eventpipe: error: ")]
        assert len(errors) == 1 and res.err_lines[-1] == errors[0], res
        assert "truncated" in errors[0] and "Traceback" not in res.err, res
        # the summary says how far the run got before the damage
        summary = [x for x in res.err_lines if x.startswith("eventpipe: events in ")]
        assert len(summary) == 1 and res.err_lines[-2] == summary[0], res
        return
    line = assert_one_error_line(res, ExitStatus.DATA, path.name)
    wording = {"text": "not a recording", "words": "not a recording", "empty": "empty file", "truncated": "truncated",
               "missing": "no such"}[kind]
    assert wording in line, res
    if command.startswith("view"):
        assert not (tmp_path / "frames").exists() and not (tmp_path / "x.gif").exists()


@pytest.fixture
def receiver():
    """A PULL socket bound on 127.0.0.1 (port 0), so `send` has someone to talk to."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PULL)
    sock.bind("tcp://127.0.0.1:0")
    yield sock.getsockopt(zmq.LAST_ENDPOINT).decode()
    sock.close(0)
    ctx.term()


@pytest.mark.parametrize("kind", ["text", "empty", "truncated", "missing"])
def test_send_bad_recordings_are_data_errors(cli, bad_files, receiver, kind):
    res = cli(["send", bad_files[kind], "--to", receiver, "--timeout", "5"])
    assert_one_error_line(res, ExitStatus.DATA, bad_files[kind].name)


@pytest.mark.parametrize("command", ["train --config", "run --config", "eval --config"])
@pytest.mark.parametrize("kind", ["text", "garbage", "missing", "directory"])
def test_bad_config_files_are_config_errors(cli, tmp_path, command, kind):
    path = {"text": tmp_path / "c.toml", "garbage": tmp_path / "g.toml",
            "missing": tmp_path / "none.toml", "directory": tmp_path}[kind]
    (tmp_path / "c.toml").write_text("this is = = not toml\n")
    (tmp_path / "g.toml").write_bytes(bytes(range(128, 256)))
    argv = command.split() + [path]
    if command == "train --config":
        argv.append("--print-config")
    if command == "eval --config":
        argv += ["--stream", "synthetic:"]
    assert_one_error_line(cli(argv), ExitStatus.CONFIG, str(path))


@pytest.mark.parametrize("under", [False, True])
def test_demo_into_a_file_is_a_config_error_naming_out(cli, tmp_path, under):
    """``demo --out FILE`` (or a folder under a file) is a bad output flag: exit 4 naming
    ``--out`` before anything is made, as ``run --view-dump`` and ``view --out`` (was exit 1,
    ``File exists``, after the synthetic stream was made)."""
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    out = blocker / "sub" if under else blocker
    what = f"{str(blocker)!r} is a file, not a folder" if under else "exists and is not a folder"
    assert_one_error_line(cli(["demo", "--out", out]), ExitStatus.CONFIG, f"--out {out}: {what}")
    assert blocker.read_text() == "x" and sorted(tmp_path.iterdir()) == [blocker]


# -- bad checkpoints ----------------------------------------------------------------------

CHECKPOINT_COMMANDS = {
    "run --model": lambda ck: ["run", "--model", ck, "--source", "synthetic:duration_s=0.1",
                               "--max-speed", "--quiet"],
    "eval": lambda ck: ["eval", ck],
    "eval --stream": lambda ck: ["eval", ck, "--stream", "synthetic:", "--duration", "0.2"],
}
CHECKPOINT_WORDS = {
    "garbage": "not a PyTorch checkpoint", "text": "not a PyTorch checkpoint",
    "empty": "empty file", "foreign": "a PyTorch file but not a model checkpoint",
    "missing": "no such checkpoint",
}


@pytest.mark.parametrize("kind", list(CHECKPOINT_WORDS))
@pytest.mark.parametrize("command", list(CHECKPOINT_COMMANDS))
def test_bad_checkpoints_are_data_errors(cli, bad_checkpoints, command, kind):
    path = bad_checkpoints[kind]
    res = cli(CHECKPOINT_COMMANDS[command](path))
    assert_one_error_line(res, ExitStatus.DATA, path.name, CHECKPOINT_WORDS[kind])


@pytest.mark.parametrize("command", ["run --model", "eval --stream"])  # (clip eval: files only)
def test_unknown_model_name_suggests_close_names(cli, command):
    res = cli(CHECKPOINT_COMMANDS[command]("meta_spikformer_tiny"))
    assert_one_error_line(res, ExitStatus.CONFIG, "unknown model 'meta_spikformer_tiny'",
                          "did you mean meta_spikeformer_tiny")


@pytest.mark.parametrize("spec,needle", [
    ("synthetic:seed=abc", "seed='abc' is not an integer"),
    ("synthetic:duration_s=soon", "duration_s='soon' is not a number"),
    ("synthetic:size=axb", "size='axb' must be WIDTHxHEIGHT"),
    ("synthetic:size=0x64", "size='0x64' must be WIDTHxHEIGHT"),
    ("synthetic:bogus=1", "unknown synthetic: option(s) ['bogus']"),
    ("synthetic:seed", "must look like key=value"),
    # in range too (were exit 1 with the stream's ValueError not naming the option, a NaN's
    # 'cannot convert float NaN to integer', and packet_us=1e14 rendered forever)
    ("synthetic:seed=-1", "seed='-1' must be >= 0"),
    ("synthetic:switch_s=0", "switch_s='0' must be > 0.2"),
    ("synthetic:switch_s=nan", "switch_s='nan' is not a finite number"),
    ("synthetic:packet_us=0", "packet_us='0' must be >= 1"),
    ("synthetic:packet_us=99999999999999", "packet_us='99999999999999' must be <= 1,000,000"),
    ("synthetic:duration_s=nan", "duration_s='nan' is not a finite number"),
    ("synthetic:duration_s=-1", "duration_s='-1' must be > 0"),
    ("synthetic:size=100000x64", "size='100000x64' must be WIDTHxHEIGHT in pixels, each 1 to 65536"),
])
@pytest.mark.parametrize("command", ["run", "eval"])
def test_bad_synthetic_options_are_config_errors(cli, spec, needle, command):
    """A ``synthetic:`` option that does not parse is a configuration error naming the option
    (exit 4), in ``run --source`` and ``eval --stream`` alike (it was exit 1 with Python's
    ``invalid literal for int()``)."""
    argv = (["run", "--source", spec, "--duration", "1"] if command == "run"
            else ["eval", "default", "--stream", spec])
    assert_one_error_line(cli(argv), ExitStatus.CONFIG, needle)


@pytest.mark.parametrize("command", ["train --config", "run --config", "eval --config"])
@pytest.mark.parametrize("kind", ["device", "recording"])
def test_a_config_that_is_a_device_or_too_big_is_refused_unread(cli, tmp_path, command, kind,
                                                                 monkeypatch):
    """``--config /dev/zero`` read until memory ran out ('out of memory', exit 1, or the OOM
    killer); a recording given as the config (2 MB) was read whole.  Now exit 4 naming the file,
    having read at most 1 MiB + 1 byte of it."""
    import builtins

    from eventpipe.config import MAX_CONFIG_BYTES
    from tests.conftest import sample_path

    path = "/dev/zero" if kind == "device" else str(sample_path("evt2_sample.raw"))
    reads = []
    real_open = builtins.open

    def counting_open(file, mode="r", *a, **k):
        f = real_open(file, mode, *a, **k)
        if str(file) == path:
            read = f.read
            f.read = lambda n=-1: reads.append(n) or read(n)
        return f

    monkeypatch.setattr(builtins, "open", counting_open)
    argv = command.split() + [path]
    if command == "train --config":
        argv.append("--print-config")
    if command == "eval --config":
        argv += ["--stream", "synthetic:"]
    said = ("not a regular file (a pipe or a device)" if kind == "device" else
            "2,170,592 bytes, more than a config file holds (at most 1,048,576)")
    assert_one_error_line(cli(argv), ExitStatus.CONFIG, path, said)
    assert all(0 <= n <= MAX_CONFIG_BYTES + 1 for n in reads), reads
