"""The door itself: the injected environment, --traceback, the exit-status table the docs
publish, broken pipes, internal errors, and `python -m eventpipe.training` going through it."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from eventpipe.cli import Env, main
from eventpipe.cli.door import command_modules
from eventpipe.errors import ConfigError, ExitStatus
from tests.cli.conftest import assert_one_error_line
from tests.conftest import sample_path

REPO = Path(__file__).resolve().parents[2]


def test_exit_status_numbers_are_the_documented_ones():
    # keep today's numbers (0, 1, 2, 3, 130) and add CONFIG and BROKEN_PIPE
    assert {s.name: s.value for s in ExitStatus} == {
        "OK": 0, "RUNTIME": 1, "USAGE": 2, "DATA": 3, "CONFIG": 4, "INTERRUPTED": 130,
        "BROKEN_PIPE": 141}
    table = (REPO / "docs" / "runtime.md").read_text()
    rows = dict(re.findall(r"^\| (\d+) \| `(\w+)` \|", table, re.M))
    assert {int(k): v for k, v in rows.items()} == {s.value: s.name for s in ExitStatus}


def test_output_goes_to_the_injected_streams_only(capsys):
    out, err = io.StringIO(), io.StringIO()
    assert main(["formats"], Env(out, err)) == 0
    assert main(["--help"], Env(out, err)) == 0
    assert main(["info", "--help"], Env(out, err)) == 0
    assert "evt3" in out.getvalue() and "usage: eventpipe [-h]" in out.getvalue()
    assert "usage: eventpipe info" in out.getvalue() and err.getvalue() == ""
    assert main(["info"], Env(out, err)) == ExitStatus.USAGE
    assert "required: file" in err.getvalue()
    cap = capsys.readouterr()
    assert cap.out == "" and cap.err == ""


def test_help_lists_every_command_of_the_table():
    out = io.StringIO()
    main(["--help"], Env(out, io.StringIO()))
    for module in command_modules():
        sp = module.add_parser(__import__("argparse").ArgumentParser().add_subparsers())
        assert f"    {sp.prog.split()[-1]} " in out.getvalue()


@pytest.mark.parametrize("where", ["before", "after"])
def test_traceback_flag_reraises(where):
    argv = ["info", "/no/such/file.raw"]
    argv = ["--traceback", *argv] if where == "before" else [*argv, "--traceback"]
    with pytest.raises(FileNotFoundError):
        main(argv, Env(io.StringIO(), io.StringIO()))


def test_config_error_reraises_with_traceback_too():
    with pytest.raises(ConfigError, match="runtime.max_batch"):
        main(["run", "--set", "runtime.max_batch=0", "--traceback"],
             Env(io.StringIO(), io.StringIO()))


def test_an_internal_error_is_one_line_naming_traceback(monkeypatch):
    from eventpipe.cli import formats

    def broken(args, env):
        raise TypeError("unsupported operand")

    monkeypatch.setattr(formats, "run", broken)
    err = io.StringIO()
    rc = main(["formats"], Env(io.StringIO(), err))
    from tests.cli.conftest import Result
    assert_one_error_line(Result(rc, "", err.getvalue()), ExitStatus.RUNTIME,
                          "internal error: TypeError: unsupported operand", "--traceback")


def test_keyboard_interrupt_is_status_130(monkeypatch):
    from eventpipe.cli import formats

    def interrupted(args, env):
        raise KeyboardInterrupt

    monkeypatch.setattr(formats, "run", interrupted)
    err = io.StringIO()
    assert main(["formats"], Env(io.StringIO(), err)) == ExitStatus.INTERRUPTED == 130
    assert err.getvalue() == "eventpipe: error: interrupted\n"


class ClosedPipe(io.StringIO):
    def write(self, s):
        raise BrokenPipeError(32, "Broken pipe")


def test_broken_pipe_in_process_is_quiet():
    err = io.StringIO()
    rc = main(["info", str(sample_path("sample_ncars.dat"))], Env(ClosedPipe(), err))
    assert rc == ExitStatus.BROKEN_PIPE and err.getvalue() == ""


def test_info_into_a_closed_pipe_exits_quietly():
    """`eventpipe info F | head -1`: the reader is gone before we write; no traceback."""
    r, w = os.pipe()
    os.close(r)
    proc = subprocess.run([sys.executable, "-m", "eventpipe", "info",
                           str(sample_path("evt3_sample.raw"))], stdout=w,
                          stderr=subprocess.PIPE, text=True, cwd=REPO, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    os.close(w)
    assert proc.stderr == "" and proc.returncode == ExitStatus.BROKEN_PIPE


def test_python_m_training_goes_through_the_door():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "eventpipe.training", "--config",
                           "configs/train_synthetic.toml", "--print-config", "--set",
                           "optim.epoch=3"], capture_output=True, text=True, cwd=REPO,
                          timeout=120, env=env)
    assert proc.returncode == ExitStatus.CONFIG and proc.stdout == ""
    assert proc.stderr.startswith("eventpipe: error: unknown key 'optim.epoch'")
    assert len(proc.stderr.splitlines()) == 1 and "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "eventpipe.training", "--config",
                           "configs/train_synthetic.toml", "--print-config", "--set",
                           "optim.epochs=2"], capture_output=True, text=True, cwd=REPO,
                          timeout=120, env=env)
    assert proc.returncode == 0 and '"epochs": 2' in proc.stdout


def test_eval_main_goes_through_the_door(capsys):
    from eventpipe.training import eval_main

    assert eval_main(["--config", "configs/train_synthetic.toml", "optim.epochs=3"]) == 2
    err = capsys.readouterr().err
    assert "'optim.epochs=3' is not a checkpoint" in err and "--set KEY=VALUE" in err


def test_warnings_are_one_line_on_the_injected_stderr(tmp_path, capsys):
    """`info --on-error warn` on a damaged file: the damage is one `eventpipe: warning:` line."""
    data = sample_path("evt3_sample.raw").read_bytes()
    cut = tmp_path / "cut.raw"
    cut.write_bytes(data[: len(data) // 2 | 1])
    out, err = io.StringIO(), io.StringIO()
    assert main(["info", str(cut), "--on-error", "warn"], Env(out, err)) == 0
    lines = err.getvalue().splitlines()
    assert lines and all(x.startswith("eventpipe: warning: ") for x in lines), lines
    assert any("cut.raw" in x and "truncated" in x for x in lines)
    assert capsys.readouterr().err == ""
