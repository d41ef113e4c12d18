"""Helpers for driving the CLI in-process through its injected environment, and the bad
inputs the door must turn into one clear line."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from eventpipe.cli import Env, main
from tests.conftest import sample_path


class Result:
    def __init__(self, rc: int, out: str, err: str):
        self.rc, self.out, self.err = rc, out, err

    @property
    def err_lines(self) -> list[str]:
        return [x for x in self.err.splitlines() if x.strip()]

    def __repr__(self):
        return f"Result(rc={self.rc}, out={self.out[-300:]!r}, err={self.err[-600:]!r})"


def run_cli(argv: list[str], stdin: str = "") -> Result:
    out, err = io.StringIO(), io.StringIO()
    rc = main([str(a) for a in argv], Env(out, err, io.StringIO(stdin)))
    return Result(rc, out.getvalue(), err.getvalue())


def assert_one_error_line(res: Result, status: int, *needles: str) -> str:
    """Exactly one line on stderr, ``eventpipe: error: ...``, no traceback, the status."""
    assert res.rc == int(status), res
    assert len(res.err_lines) == 1, res
    line = res.err_lines[0]
    assert line.startswith("eventpipe: error: "), res
    assert "Traceback" not in res.err and "weights_only" not in res.err, res
    for n in needles:
        assert n in line, (n, res)
    return line


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture
def bad_files(tmp_path) -> dict[str, Path]:
    """Two text files (odd and even length), an empty file, a truncated recording and a missing path."""
    text = tmp_path / "notes.raw"
    text.write_text("hello, this is a text file and not a recording\n" * 3)
    words = tmp_path / "words.raw"  # an even length: whole 2-byte words, none of them events
    words.write_text("just some words in a file\n" * 4)
    assert words.stat().st_size % 2 == 0 and text.stat().st_size % 2 == 1
    empty = tmp_path / "empty.raw"
    empty.write_bytes(b"")
    data = sample_path("evt3_sample.raw").read_bytes()
    truncated = tmp_path / "truncated.raw"
    truncated.write_bytes(data[: len(data) // 2 | 1])  # an odd length: half a 2-byte word
    return {"text": text, "words": words, "empty": empty, "truncated": truncated,
            "missing": tmp_path / "no_such_recording.raw"}


@pytest.fixture
def bad_checkpoints(tmp_path) -> dict[str, Path]:
    """Garbage bytes, a text file, an empty file, a valid torch file that is not ours,
    a missing path."""
    import numpy as np
    import torch

    rng = np.random.default_rng(12)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(rng.integers(0, 256, 600, dtype=np.uint8).tobytes())
    text = tmp_path / "model.txt"
    text.write_text("these are not weights\n")
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    foreign = tmp_path / "foreign.pt"
    torch.save({"epoch": 3, "weights": torch.zeros(3)}, foreign)
    return {"garbage": garbage, "text": text, "empty": empty, "foreign": foreign,
            "missing": tmp_path / "missing.pt"}
