"""The ``python -m eventpipe.training.*`` diagnostics answer bad input with one line and the
CLI's exit status (``eventpipe.errors.run_tool``), not a traceback."""

import subprocess
import sys
from pathlib import Path

import pytest

from eventpipe.errors import ConfigError, DataError, ExitStatus, UsageError, run_tool

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("exc, status", [
    (UsageError("--steps must be >= 1"), ExitStatus.USAGE),
    (ConfigError("config file not found: x.toml"), ExitStatus.CONFIG),
    (DataError("x.pt: not a checkpoint"), ExitStatus.DATA),
    (FileNotFoundError(2, "No such file or directory", "x.pt"), ExitStatus.DATA),
])
def test_run_tool_maps_our_errors_to_one_line(exc, status, capsys):
    def main():
        raise exc

    assert run_tool(main, "tool") == status
    err = capsys.readouterr().err
    assert err.startswith("tool: error: ") and err.count("\n") == 1


def test_run_tool_passes_the_status_and_other_errors_through():
    assert run_tool(lambda: 0, "tool") == 0
    assert run_tool(lambda: None, "tool") == 0

    def broken():
        raise KeyError("a bug")

    with pytest.raises(KeyError):  # a bug keeps its traceback
        run_tool(broken, "tool")


@pytest.mark.parametrize("argv, status, text", [
    (["eventpipe.training.switch_profile", "--config", "missing.toml", "--checkpoint", "default"],
     ExitStatus.CONFIG, "config file not found"),
    (["eventpipe.training.decoder_tune", "--config", "configs/train_synthetic_halves_stream.toml",
      "--checkpoint", "missing.pt"], ExitStatus.DATA, "missing.pt"),
])
def test_tools_say_one_line(argv, status, text):
    res = subprocess.run([sys.executable, "-m", *argv], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == status, res.stderr
    assert text in res.stderr and res.stderr.count("\n") == 1 and "Traceback" not in res.stderr


@pytest.mark.parametrize("tool", ["switch_profile", "decoder_tune", "learned_tune"])
@pytest.mark.parametrize("bad", ["device", "junk"])
def test_a_checkpoint_that_is_no_checkpoint_is_one_line(tool, bad, tmp_path, capsys, monkeypatch):
    """``--checkpoint /dev/zero`` printed torch's traceback (exit 1) and a text file given as the
    checkpoint torch's unpickling error: the tools loaded it with ``snn.load_checkpoint`` bare.
    Now as ``eval`` does: one line, exit 3 ('default' is the shipped model there too)."""
    import importlib

    if bad == "device":
        path, says = "/dev/zero", "a character device, not a checkpoint file"
    else:
        path = tmp_path / "model.pt"
        path.write_text("not a model\n")
        says = "not a PyTorch checkpoint"
    monkeypatch.chdir(REPO)
    mod = importlib.import_module(f"eventpipe.training.{tool}")
    argv = ["--config", "configs/train_synthetic_halves_switchruns.toml", "--checkpoint", str(path)]
    assert run_tool(lambda: mod.main(argv), tool) == ExitStatus.DATA
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and says in err, err
