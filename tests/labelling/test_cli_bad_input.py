"""``label``, ``train --data`` and ``eval --stream REC`` given bad input as a user would: one
``eventpipe: error:`` line naming the file (and line, field), the documented exit status."""

import os

import pytest

from eventpipe.errors import ExitStatus
from tests.cli.conftest import assert_one_error_line, run_cli
from tests.labelling.conftest import write_recording


@pytest.fixture
def takes(tmp_path):
    d = tmp_path / "takes"
    d.mkdir()
    for k in range(2):
        write_recording(d / f"t{k}.h5", seconds=2.0, seed=k)
        (d / f"t{k}.labels.csv").write_text("start_s,end_s,label\n0,1,a\n1,2,b\n")
    return d


def test_label_missing_recording(tmp_path):
    res = run_cli(["label", str(tmp_path / "none.h5"), "--classes", "a"])
    assert_one_error_line(res, ExitStatus.DATA, "none.h5", "no such recording")


def test_label_needs_classes(recording):
    res = run_cli(["label", str(recording)])
    assert_one_error_line(res, ExitStatus.USAGE, "--classes a,b,c")
    res = run_cli(["label", str(recording), "--classes", "a,,b"])
    assert_one_error_line(res, ExitStatus.USAGE, "an empty class name")
    res = run_cli(["label", str(recording), "--classes", "a,b,a"])
    assert_one_error_line(res, ExitStatus.USAGE, "named twice")
    res = run_cli(["label", str(recording), "--classes", "a", "--labels", "x.txt"])
    assert_one_error_line(res, ExitStatus.CONFIG, "--labels x.txt", "unknown extension")


def test_label_with_a_bad_labels_file_names_its_line(recording):
    bad = recording.with_name("take.labels.csv")
    bad.write_text("start_s,end_s,label\n0,2,a\n1,3,b\n")
    res = run_cli(["label", str(recording), "--classes", "a,b"])
    assert_one_error_line(res, ExitStatus.DATA, f"{bad}: line 3", "overlaps line 2")


def test_label_damaged_recording_before_any_window(tmp_path, monkeypatch):
    bad = tmp_path / "rec.h5"
    bad.write_bytes(b"\x00" * 4096)
    res = run_cli(["label", str(bad), "--classes", "a"])
    assert_one_error_line(res, ExitStatus.DATA, str(bad))


def test_label_without_a_display(recording, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    res = run_cli(["label", str(recording), "--classes", "a"])
    assert_one_error_line(res, ExitStatus.RUNTIME, "eventpipe label needs a display",
                          "xvfb-run eventpipe label")
    assert "--view" not in res.err and "--video" not in res.err    # run --view's advice


def test_train_data_errors(tmp_path, takes):
    res = run_cli(["train", "--data", str(tmp_path / "nope")])
    assert_one_error_line(res, ExitStatus.DATA, "nope", "no such folder of recordings")
    empty = tmp_path / "empty"
    empty.mkdir()
    res = run_cli(["train", "--data", str(empty)])
    line = assert_one_error_line(res, ExitStatus.DATA, f"{empty}: no labels files")
    assert line.endswith("in this folder or below"), line  # it ended '... NAME.h5) under'
    (takes / "t1.labels.csv").write_text("start_s,end_s,label\n0,1,a\n1,9,b\n")
    res = run_cli(["train", "--data", str(takes), "--out-dir", str(tmp_path / "r")])
    assert_one_error_line(res, ExitStatus.DATA, "t1.labels.csv: line 3",
                          "end_s: 9 s is past the recording's end")
    os.remove(takes / "t1.labels.csv")
    res = run_cli(["train", "--data", str(takes), "--out-dir", str(tmp_path / "r")])
    assert_one_error_line(res, ExitStatus.DATA, "one labelled take (t0)", "at least two")
    (takes / "t1.labels.json").write_text("[]")
    res = run_cli(["train", "--data", str(takes), "--out-dir", str(tmp_path / "r"),
                   "--set", "data.test_takes=['t9']"])
    assert_one_error_line(res, ExitStatus.DATA, "data.test_takes", "'t9'", "['t0', 't1']")
    res = run_cli(["train", "--data", str(takes), "--out-dir", str(tmp_path / "r"),
                   "--set", "data.test_takes=['t0']"])
    assert_one_error_line(res, ExitStatus.DATA, "class(es) ['a', 'b'] have no segment in the "
                                                "training takes ['t1']")


def test_eval_stream_with_a_bad_labels_file(takes):
    (takes / "t0.labels.csv").write_text("start_s,end_s,label\n0,1,clap\nx,2,jump\n")
    res = run_cli(["eval", "--stream", str(takes / "t0.h5")])
    assert_one_error_line(res, ExitStatus.DATA, "t0.labels.csv: line 3", "start_s: expected seconds")



def _empty_take(d, name="empty", size=(48, 32)):
    from recorders import EventRecorder

    with EventRecorder(d / f"{name}.h5", size):
        pass
    (d / f"{name}.labels.csv").write_text("start_s,end_s,label\n")
    return d / f"{name}.h5"


def test_a_recording_without_events_is_a_data_error_everywhere(takes, monkeypatch):
    """``label``, ``eval --stream`` and ``train --data`` of a take with no events (a camera
    that saw nothing, a video that did not move): exit 3 naming the recording."""
    rec = _empty_take(takes)
    monkeypatch.setenv("DISPLAY", ":9999")     # never reached: the recording is checked first
    res = run_cli(["label", str(rec), "--classes", "a"])
    assert_one_error_line(res, ExitStatus.DATA, str(rec), "holds no events")
    res = run_cli(["eval", "--stream", str(rec)])
    assert_one_error_line(res, ExitStatus.DATA, str(rec), "holds no events")
    res = run_cli(["train", "--data", str(takes), "--set", "data.test_takes=['t0']"])
    assert_one_error_line(res, ExitStatus.DATA, str(rec), "holds no events")


def test_a_recording_without_a_sensor_size_is_a_data_error(tmp_path, monkeypatch):
    from recorders import EventRecorder, open_recording

    src = write_recording(tmp_path / "src.h5", seconds=1.0)
    rec = tmp_path / "nosize.h5"
    with open_recording(src) as r, EventRecorder(rec, None) as w:
        w.write(r.events())
    monkeypatch.setenv("DISPLAY", ":9999")
    res = run_cli(["label", str(rec), "--classes", "a"])
    hint = f"give it one with `eventpipe convert {rec} OUT.h5 --sensor-size WxH`"
    assert_one_error_line(res, ExitStatus.DATA, str(rec), "states no sensor size", hint)
    # the hint works (was only 'the recording has no sensor size': no way on was given)
    fixed = tmp_path / "sized.h5"
    assert run_cli(["convert", rec, fixed, "--sensor-size", "64x48"]).rc == 0
    from eventpipe.labelling.events import take_events

    assert take_events(fixed)[1] == (64, 48)


def test_stream_takes_shorter_than_a_run_name_the_take(takes):
    """``recordings_stream`` with ``data.run_windows`` longer than a take, or a take shorter
    than one window: exit 3 naming the take and the setting, not a bare ValueError (exit 1)."""
    stream = ["--set", "data.dataset='recordings_stream'", "--set", "data.test_takes=['t0']"]
    res = run_cli(["train", "--data", str(takes), *stream, "--set", "data.run_windows=1000"])
    assert_one_error_line(res, ExitStatus.DATA, str(takes / "t1.h5"), "20 windows",
                          "data.run_windows=1000")
    short = takes / "short"
    short.mkdir()
    for k in range(2):
        write_recording(short / f"s{k}.h5", seconds=0.05, seed=k)
        (short / f"s{k}.labels.csv").write_text("start_s,end_s,label\n0,0.02,a\n0.02,0.05,b\n")
    res = run_cli(["train", "--data", str(short), "--set", "data.dataset='recordings_stream'",
                   "--set", "data.test_takes=['s0']"])
    assert_one_error_line(res, ExitStatus.DATA, str(short / "s1.h5"), "no whole window")


def test_eval_stream_with_a_label_the_model_does_not_know(takes):
    """Scored against a class the checkpoint cannot output, every window of that segment
    would count as wrong: the labels file's line is named before the run, exit 3."""
    (takes / "t0.labels.csv").write_text("start_s,end_s,label\n0,1,clap\n1,2,wave\n")
    res = run_cli(["eval", "--stream", str(takes / "t0.h5")])
    assert_one_error_line(res, ExitStatus.DATA, "t0.labels.csv: line 3",
                          "'wave' is not one of the classes ['wave_left_hand'")
    assert "eventpipe: model" not in res.err          # refused before the model ran


def test_label_picture_size_is_bounded_before_it_is_allocated(tmp_path, monkeypatch):
    """The picture is the sensor size (from the file's header) times --scale: a header
    claiming 60000 x 60000 (a 29 GB frame) is a data error naming the file, a --scale that
    makes the window too large a config error naming --scale; both before any window."""
    import h5py

    from eventpipe.view import MAX_VIEW_PIXELS

    monkeypatch.setenv("DISPLAY", ":9999")
    rec = write_recording(tmp_path / "big.h5")
    with h5py.File(rec, "r+") as f:
        f["events"].attrs["sensor_size"] = [60000, 60000]
    res = run_cli(["label", str(rec), "--classes", "a"])
    assert_one_error_line(res, ExitStatus.DATA, str(rec), "60000x60000",
                          f"(at most {MAX_VIEW_PIXELS:,})")
    rec = write_recording(tmp_path / "small.h5")       # 48 x 32
    res = run_cli(["label", str(rec), "--classes", "a", "--scale", "1000"])
    assert_one_error_line(res, ExitStatus.CONFIG, "--scale 1000", "48000x32000")


def test_takes_from_different_sensor_sizes(takes):
    """Takes whose headers state different sensor sizes (another camera, a header claiming
    60000 x 60000): exit 3 naming both takes, for clips and for the stream form; a take
    whose sensor is too large to bin is named before anything is allocated."""
    import h5py

    with h5py.File(takes / "t1.h5", "r+") as f:
        f["events"].attrs["sensor_size"] = [96, 64]
    for extra in ([], ["--set", "data.dataset='recordings_stream'"]):
        res = run_cli(["train", "--data", str(takes), "--set", "data.test_takes=['t0']", *extra])
        assert_one_error_line(res, ExitStatus.DATA, str(takes / "t1.h5"), "sensor size 96x64",
                              f"but {takes / 't0.h5'} is 48x32")
    for k in range(2):
        with h5py.File(takes / f"t{k}.h5", "r+") as f:
            f["events"].attrs["sensor_size"] = [60000, 60000]
    res = run_cli(["train", "--data", str(takes), "--set", "data.test_takes=['t0']"])
    assert_one_error_line(res, ExitStatus.DATA, str(takes / "t1.h5"), "60000x60000 has")


def test_eval_stream_with_nothing_to_score(takes):
    """A labels file without segments, or with segments no window ends in: nothing to score
    is exit 3 naming the labels file (was a line of dashes and exit 0)."""
    labels = takes / "t0.labels.csv"
    labels.write_text("start_s,end_s,label\n")
    res = run_cli(["eval", "--stream", str(takes / "t0.h5")])
    assert_one_error_line(res, ExitStatus.DATA, str(labels), "no segments")
    assert "eventpipe: model" not in res.err                      # before the model ran
    labels.write_text("start_s,end_s,label\n0,0.01,clap\n")       # shorter than any window
    res = run_cli(["eval", "--stream", str(takes / "t0.h5")])
    assert res.rc == ExitStatus.DATA and res.out == "", res
    assert res.err_lines[-1].startswith("eventpipe: error: ") and str(labels) in res.err_lines[-1]
    assert "no window ends inside a segment" in res.err_lines[-1], res


@pytest.mark.parametrize("dataset", ["recordings", "recordings_stream"])
def test_train_with_fewer_than_two_classes(takes, dataset):
    """Labels files without segments (a torch 'num_samples=0' error, exit 1), or with one
    class only (a one-class model 'trained' to accuracy 1.0, exit 0): exit 3 naming the
    folder and what the labels hold."""
    out_dir = takes.parent / "out"
    stream = ["--set", f"data.dataset='{dataset}'", "--set", "data.test_takes=['t0']",
              "--set", f"out_dir='{out_dir}'"]
    for k in range(2):
        (takes / f"t{k}.labels.csv").write_text("start_s,end_s,label\n")
    res = run_cli(["train", "--data", str(takes), *stream])
    assert_one_error_line(res, ExitStatus.DATA, str(takes), "no segments in any labels file")
    assert not out_dir.exists()  # the run's folder and train.log come only once the data loads
    for k in range(2):
        (takes / f"t{k}.labels.csv").write_text("start_s,end_s,label\n0,2,wave\n")
    res = run_cli(["train", "--data", str(takes), *stream])
    assert_one_error_line(res, ExitStatus.DATA, str(takes), "one class (wave)",
                          "at least two")

    res = run_cli(["train", "--data", str(takes), *stream,
                   "--set", "data.class_names=['wave', 'clap', 'wave']"])
    assert_one_error_line(res, ExitStatus.CONFIG, "data.class_names: ['wave'] named twice")


def test_label_into_a_second_labels_file_is_refused(recording, monkeypatch):
    """`label take.h5 --labels take.labels.json` beside a take.labels.csv opened empty,
    saved a second labels file, and `train --data` then refused the pair: refused up front,
    naming the file that already labels the recording (exit 3)."""
    monkeypatch.setenv("DISPLAY", ":9999")      # never reached
    csv = recording.with_name("take.labels.csv")
    csv.write_text("start_s,end_s,label\n0,1,a\n")
    res = run_cli(["label", str(recording), "--classes", "a,b", "--labels",
                   str(recording.with_name("take.labels.json"))])
    assert_one_error_line(res, ExitStatus.DATA, str(csv), "already labels")
    assert not recording.with_name("take.labels.json").exists()


@pytest.mark.parametrize("flag", ["--json-out", "--confusion-png"])
def test_eval_output_over_the_labelled_take_is_refused(takes, flag):
    """``eval CKPT --stream take.h5 --json-out take.h5``: the result would be written over the
    take it scores (after the whole evaluation); refused first, exit 4 naming both."""
    take = takes / "t0.h5"
    before = take.read_bytes()
    out = take if flag == "--json-out" else takes / "t1.h5"
    if flag == "--confusion-png":  # through a link with a suffix the flag accepts
        (takes / "c.png").symlink_to(out)
        out = takes / "c.png"
    res = run_cli(["eval", "default", "--stream", take, "--stream", takes / "t1.h5",
                   flag, out])
    assert_one_error_line(res, ExitStatus.CONFIG, f"{flag} {out} is the input")
    assert take.read_bytes() == before
