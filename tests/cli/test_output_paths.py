"""Every output file is checked the same way before the work starts: in a folder that does
not exist, the one line gives the ``mkdir -p`` to run; under a file (a file where a folder
should be), it names that file; both exit 4 naming the option, and nothing is made (the chip
commands' ``-o`` made missing folders silently, and a file in the way was 'cannot create its
folder', exit 3)."""

from __future__ import annotations

import pytest

from eventpipe.errors import ExitStatus
from tests.cli.conftest import assert_one_error_line
from tests.conftest import sample_path

COMMANDS = {
    "convert": lambda out: ["convert", sample_path("sample_ncars.dat"), out],
    "record": lambda out: ["record", "synthetic:duration_s=0.1", out],
    "eval --png": lambda out: ["eval", "--png", out],
    "run --video": lambda out: ["run", "--source", "synthetic:duration_s=0.1", "--video", out],
    "view --out": lambda out: ["view", sample_path("sample_ncars.dat"), "--out", out],
    "chip compile -o": lambda out: ["chip", "compile", "--calibration", "0", "-o", out],
    "chip snap -o": lambda out: ["chip", "snap", "--calibration", "0", "-o", out],
    "chip finetune -o": lambda out: ["chip", "finetune", "-o", out],
    "chip report --plot": lambda out: ["chip", "report", "p.npz", "--plot", out],
}
SUFFIX = {"convert": ".h5", "record": ".h5", "eval --png": ".png", "run --video": ".mp4",
          "view --out": ".mp4", "chip compile -o": ".npz", "chip snap -o": ".pt", "chip finetune -o": ".pt",
          "chip report --plot": ".png"}


def _flag(command: str) -> str:
    return {"convert": "dst", "record": "out"}.get(command, command.split()[-1])


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_an_output_in_a_missing_folder_is_refused(cli, tmp_path, command):
    out = tmp_path / "missing" / "deeper" / f"x{SUFFIX[command]}"
    res = cli(COMMANDS[command](out))
    assert_one_error_line(res, ExitStatus.CONFIG, f"{_flag(command)} {out}: the folder",
                          f"does not exist (mkdir -p {out.parent} first)")
    assert sorted(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_an_output_under_a_file_is_refused(cli, tmp_path, command):
    blocker = tmp_path / "blocker"
    blocker.write_text("keep")
    out = blocker / "deeper" / f"x{SUFFIX[command]}"
    res = cli(COMMANDS[command](out))
    assert_one_error_line(res, ExitStatus.CONFIG, f"{_flag(command)} {out}: ",
                          f"{str(blocker)!r} is a file, not a folder")
    assert sorted(tmp_path.iterdir()) == [blocker] and blocker.read_text() == "keep"
