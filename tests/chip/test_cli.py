"""``eventpipe chip compile|report`` in-process: files written, tables printed, one-line errors."""

import io
import json

import numpy as np

import snn.chip
from eventpipe.cli import main


def _run(argv):
    out, err = io.StringIO(), io.StringIO()
    rc = main(argv, out=out, err=err)
    return rc, out.getvalue(), err.getvalue()


def test_compile_then_report(tmp_path):
    prog = tmp_path / "p.npz"
    rc, out, err = _run(["chip", "compile", "-o", str(prog), "--calibration", "1"])
    assert rc == 0, err
    assert "calibrated on 1 clips" in out and "0 violation(s)" in out
    p = snn.chip.Program.load(prog)
    assert p.meta["calibrated"] and p.profile.name == "exact"   # the one the shipped model was snapped for
    rc, out, err = _run(["chip", "report", str(prog), "--clips", "1", "--plot", str(tmp_path / "r.png")])
    assert rc == 0, err
    assert "energy per step: paper convention" in out
    assert (tmp_path / "r.png").stat().st_size > 0
    rc, out, err = _run(["chip", "report", str(prog), "--json", "--clips", "0"])
    d = json.loads(out)
    assert d["profile"] == "exact" and d["per_step"] is None and len(d["layers"]) == len(p.ops)


def test_speck_compile_reports_violations(tmp_path):
    rc, out, err = _run(["chip", "compile", "-o", str(tmp_path / "s.npz"), "--profile", "speck", "--calibration", "0"])
    assert rc == 0, err
    assert "not calibrated" in out
    n = int(out.split(";")[-1].split()[0])
    assert n > 2
    rc, out, _ = _run(["chip", "report", str(tmp_path / "s.npz"), "--clips", "0"])
    assert "block3.0.attn.attn: spike-spike products" in out


def test_bad_inputs_are_one_line(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    for argv, code, text in [
        (["chip", "report", str(bad)], 3, "not a usable chip program"),
        (["chip", "report", str(tmp_path / "missing.npz")], 3, "missing.npz"),
        (["chip", "compile", "-o", str(tmp_path / "x.npz"), "--profile", "spek"], 4, "did you mean 'speck'"),
        (["chip", "compile", str(tmp_path / "none.pt"), "-o", str(tmp_path / "x.npz")], 3, "none.pt"),
    ]:
        rc, out, err = _run(argv)
        assert rc == code, (argv, err)
        assert text in err and err.count("\n") == 1 and "Traceback" not in err
    np.testing.assert_equal((tmp_path / "x.npz").exists(), False)


def test_finetune_bad_inputs_are_one_line(tmp_path):
    out = str(tmp_path / "t.pt")
    (tmp_path / "blocker").write_text("a file where the output's folder would be")
    for argv, code, text in [
        (["chip", "finetune", "-o", out, "--steps", "0"], 2, "--steps must be >= 1"),
        (["chip", "finetune", "-o", out, "--lr", "0"], 2, "--lr > 0"),
        (["chip", "finetune", "-o", out, "--distill", "-1"], 2, "--distill"),
        (["chip", "finetune", "-o", out, "--hard", "nan"], 2, "--hard >= 0 (finite numbers)"),
        (["chip", "finetune", "-o", out, "--lr", "inf"], 2, "--lr > 0"),
        (["chip", "finetune", "-o", out, "--margin", "nan"], 2, "--margin must be >= 0"),
        (["chip", "finetune", "-o", out, "--margin", "-1"], 2, "--margin must be >= 0"),
        (["chip", "finetune", "-o", out, "--margin-width", "0"], 2, "--margin-width > 0, got 0"),
        (["chip", "finetune", "-o", out, "--seed", "-1"], 2, "--seed must be >= 0, got -1"),
        (["chip", "finetune", "-o", out, "--runs", "0"], 2, "--runs must be >= 1, got 0"),
        (["chip", "finetune", "-o", out, "--run-windows", "1"], 2, "--run-windows must be >= 2, got 1"),
        (["chip", "finetune", str(tmp_path / "none.pt"), "-o", out], 3, "none.pt"),
        (["chip", "finetune", "-o", str(tmp_path / "blocker" / "t.pt")], 4,
         f"-o {tmp_path / 'blocker' / 't.pt'}: {str(tmp_path / 'blocker')!r} is a file, not a folder"),
        (["chip", "compile", "-o", str(tmp_path / "x.npz"), "--calibration", "-1"], 2, "--calibration must be >= 0"),
    ]:
        rc, _, err = _run(argv)
        assert rc == code, (argv, err)
        assert text in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "t.pt").exists()


def test_finetune_run_longer_than_a_training_stream_is_one_line(tmp_path):
    """A 20 s training stream has 398 windows (100 ms every 50 ms); runs of 399 do not fit."""
    rc, _, err = _run(["chip", "finetune", "-o", str(tmp_path / "t.pt"), "--clips", "1", "--streams", "1",
                       "--run-windows", "399"])
    assert rc == 2, err
    assert "--run-windows 399 is longer than a 20 s training stream" in err and err.count("\n") == 1
    assert not (tmp_path / "t.pt").exists()


def test_finetune_runs_and_run_windows_reach_the_data_and_the_steps(tmp_path, monkeypatch):
    """``--runs`` is the number of stream runs per step, ``--run-windows`` their length; both are
    recorded in the written checkpoint's settings (the training itself is stubbed: seconds)."""
    import snn.backends.chip.finetune as ft

    seen = {}

    def fake_data(n_clips, n_streams, seconds, run_windows, **kw):
        seen["data"] = (n_clips, n_streams, seconds, run_windows)
        x = np.zeros((8, 1, 2, 4, 4), np.int32)
        return ft.FinetuneData(x, np.zeros(1, int), np.zeros((run_windows, 3, 2, 4, 4), np.int32),
                               np.zeros((run_windows, 3), int), x)

    def fake_finetune(ckpt, data, **kw):
        seen["run_batch"] = kw["run_batch"]
        return None, {"agree": [(0, 1.0), (1, 1.0)]}

    monkeypatch.setattr(ft, "synthetic_data", fake_data)
    monkeypatch.setattr(ft, "finetune", fake_finetune)
    monkeypatch.setattr(ft, "save_finetuned", lambda path, m, meta, h, settings, seconds: seen.update(settings=settings))
    rc, out, err = _run(["chip", "finetune", "-o", str(tmp_path / "t.pt"), "--clips", "3", "--streams", "2",
                         "--runs", "5", "--run-windows", "24"])
    assert rc == 0, err
    assert seen["data"] == (3, 2, 20.0, 24) and seen["run_batch"] == 5
    assert seen["settings"]["run_windows"] == 24 and seen["settings"]["run_batch"] == 5
    rc, _, err = _run(["chip", "finetune", "-o", str(tmp_path / "t.pt"), "--clips", "3", "--streams", "0",
                       "--runs", "5"])
    assert rc == 0, err
    assert seen["run_batch"] == 0   # no streams: no runs, whatever --runs says



def test_chip_without_a_subcommand_names_the_choices():
    """``eventpipe chip``: exit 2 naming the four subcommands (was 'the following arguments are
    required: chip_command', the parser's internal name)."""
    rc, _, err = _run(["chip"])
    assert rc == 2 and err.count("\n") == 1, err
    assert "required: {compile,report,finetune,snap}" in err and "chip_command" not in err
    rc, out, _ = _run(["--help"])
    assert rc == 0 and "compile, report, fine-tune or snap" in " ".join(out.split())
