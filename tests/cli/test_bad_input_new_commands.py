"""The commands added in session 5 (chip, record, replay-labels) given bad input as a user would:
one clear line, the documented status, and the bad file found before anything else starts."""

from __future__ import annotations

from eventpipe.errors import ExitStatus
from tests.cli.conftest import assert_one_error_line


def test_chip_compile_of_a_text_file_is_a_checkpoint_error(cli, tmp_path):
    bad = tmp_path / "model.pth"
    bad.write_text("not a checkpoint\n")
    res = cli(["chip", "compile", str(bad), "-o", str(tmp_path / "p.npz")])
    line = assert_one_error_line(res, ExitStatus.DATA, str(bad), "not a PyTorch checkpoint")
    assert "internal error" not in line
    assert not (tmp_path / "p.npz").exists()


def test_chip_report_of_a_text_file_gives_no_pickle_advice(cli, tmp_path):
    bad = tmp_path / "prog.npz"
    bad.write_text("garbage\n")
    res = cli(["chip", "report", str(bad)])
    line = assert_one_error_line(res, ExitStatus.DATA, str(bad), "no zip signature")
    assert "pickle" not in line


def test_record_with_an_unknown_scheme_is_a_config_error(cli, tmp_path):
    res = cli(["record", "nosuch:x", str(tmp_path / "o.h5")])
    assert_one_error_line(res, ExitStatus.CONFIG, "unknown scheme 'nosuch'", "synthetic")
    assert not (tmp_path / "o.h5").exists()


def test_replay_labels_checks_the_file_before_publishing(cli, tmp_path):
    bad = tmp_path / "rec.h5"
    bad.write_bytes(b"\x00" * 4096)
    res = cli(["replay-labels", str(bad), "--publish", "tcp://127.0.0.1:0"])
    assert_one_error_line(res, ExitStatus.DATA, str(bad), "not an HDF5 file")
    assert "publishing" not in res.err  # nothing was bound, no wait for subscribers
