"""The labelling window's key handling, as a pure state machine (no window): every key of
the table in eventpipe/labelling/state.py, hand-worked."""

import pytest

from eventpipe.labelling.files import Segment
from eventpipe.labelling.state import QUIT, SAVE, LabelState


def feed(state, *keys):
    return [state.handle(k) for k in keys]


def new(**kw):
    return LabelState(duration_us=10_000_000, classes=("wave", "clap", "push"), **kw)


def test_mark_two_segments_with_classes_and_seeks():
    s = new()
    assert s.t_us == 0 and not s.playing and s.label == "wave"
    feed(s, "2", "space", "right", "right", "space")          # clap 0-2 s
    feed(s, "3", "space", "right", ".", ".", "space")          # push 2-3.1 s
    assert s.segments == [Segment(0.0, 2.0, "clap"), Segment(2.0, 3.1, "push")]
    assert s.dirty and s.open_start_us is None
    assert s.handle("s") == SAVE
    s.saved("x.labels.csv")
    assert not s.dirty and s.message == "saved 2 segments to x.labels.csv"


def test_class_is_the_one_selected_when_the_segment_ends():
    s = new()
    feed(s, "space", "right", "3", "space")
    assert s.segments == [Segment(0.0, 1.0, "push")]


def test_ending_before_the_start_and_seek_clamps():
    s = new()
    feed(s, "end", "left", "space", "left", "left", "left", "space")  # 9 s back to 6 s
    assert s.segments == [Segment(6.0, 9.0, "wave")]
    feed(s, "home", "left")
    assert s.t_us == 0
    feed(s, "end", "right")
    assert s.t_us == 10_000_000


def test_refusals_leave_the_state_and_say_why():
    s = new(segments=[Segment(2.0, 4.0, "clap")])
    feed(s, "right", "right", "right", "space")                 # at 3 s: inside clap
    assert s.open_start_us is None and "inside clap 2-4 s" in s.message
    feed(s, "home", "space", "space")                           # empty
    assert s.open_start_us == 0 and "empty segment" in s.message
    feed(s, "end", "space")                                     # 0-10 s would cover clap
    assert s.open_start_us == 0 and "overlaps clap 2-4 s" in s.message
    assert s.segments == [Segment(2.0, 4.0, "clap")] and not s.dirty
    feed(s, "home", "right", "right", "space")                  # 0-2 s touches clap: fine
    assert s.segments == [Segment(0.0, 2.0, "wave"), Segment(2.0, 4.0, "clap")]
    feed(s, "end", "space")
    assert s.open_start_us is None and "nothing left to label" in s.message
    feed(s, "9")
    assert s.label == "wave" and "no class 9" in s.message


def test_backspace_undoes_open_add_and_delete_in_order():
    s = new()
    feed(s, "space", "right", "space", "space")                 # add 0-1, open at 1
    assert s.open_start_us == 1_000_000
    feed(s, "backspace")
    assert s.open_start_us is None and s.segments == [Segment(0.0, 1.0, "wave")]
    feed(s, "home", "x")                                        # delete under the cursor
    assert s.segments == []
    feed(s, "backspace")                                        # restores it
    assert s.segments == [Segment(0.0, 1.0, "wave")]
    feed(s, "backspace")                                        # undoes the add
    assert s.segments == []
    feed(s, "backspace")
    assert s.message == "nothing to undo"
    feed(s, "right", "right", "x")
    assert s.message == "no segment under the cursor"


def test_play_ticks_and_stops_at_the_end():
    s = new(speed=2.0)
    s.tick(1_000_000)
    assert s.t_us == 0                                          # paused: time does not move
    feed(s, "p")
    s.tick(1_000_000)
    assert s.t_us == 2_000_000 and s.playing
    s.tick(10_000_000)
    assert s.t_us == 10_000_000 and not s.playing
    feed(s, "p")                                                # at the end: plays from 0
    assert s.playing and s.t_us == 0


def test_quit_asks_again_when_unsaved():
    s = new()
    assert s.handle("q") == QUIT                                # nothing to lose
    feed(s, "space", "right", "space")
    assert s.handle("q") is None and "unsaved changes" in s.message
    assert s.handle("esc") == QUIT
    s2 = new()
    feed(s2, "space", "right", "space", "q", "right")           # another key disarms
    assert s2.handle("q") is None
    s2.saved()
    assert s2.handle("q") == QUIT


def test_tab_cycles_and_zero_is_the_tenth_class():
    s = LabelState(duration_us=1_000_000, classes=[f"c{i}" for i in range(10)])
    feed(s, "0")
    assert s.label == "c9"
    feed(s, "tab")
    assert s.label == "c0"
    with pytest.raises(ValueError, match="no classes"):
        LabelState(duration_us=1, classes=())


def test_the_picture_shows_events_timeline_segments_and_cursor():
    """``draw``: the event frame ON/OFF coloured as in ``run --view`` at the top; on the
    timeline each segment in its class's colour over its span, the open segment outlined
    in the selected class's colour, the cursor as a white line."""
    import numpy as np

    from eventpipe.labelling.window import CURSOR_BGR, TRACK_BGR, class_colour, draw
    from eventpipe.render import frame_to_image

    s = new(segments=[Segment(0.0, 2.0, "clap"), Segment(5.0, 6.0, "push")])
    feed(s, "right", "right", "right", "right", "right", "right", "right", "space",
         "right", "3")                                           # open 7-8 s, push selected
    frame = np.zeros((2, 8, 10), np.float32)
    frame[1, 2, 3] = 4.0                                         # ON
    frame[0, 5, 7] = 1.0                                         # OFF
    img = draw(s, frame, scale=4)
    want = frame_to_image(frame)
    x0 = (img.shape[1] - 40) // 2
    np.testing.assert_array_equal(img[:32, x0:x0 + 40][::4, ::4], want)
    # the timeline row: find it by the track colour, then read the colours along it
    rows = np.where(np.all(img == TRACK_BGR, axis=-1).sum(1) > 100)[0]
    row = img[rows[len(rows) // 2]]
    track = np.where(np.all(row == TRACK_BGR, axis=-1))[0]
    tx0, tx1 = 8, img.shape[1] - 8

    def at(t_s):
        return row[tx0 + int(round((tx1 - tx0 - 1) * t_s / 10.0))]

    assert tuple(at(1.0)) == class_colour(1)                    # clap
    assert tuple(at(5.5)) == class_colour(2)                    # push
    assert tuple(at(3.5)) == TRACK_BGR and tuple(at(9.5)) == TRACK_BGR
    assert tuple(at(8.0)) == CURSOR_BGR
    assert track.min() >= tx0 and track.max() < tx1
    # the open segment 7-8 s: its outline (top edge) in push's colour
    top = img[rows.min() - 2: rows.min() + 2, tx0 + int(round((tx1 - tx0 - 1) * 0.75))]
    assert any(tuple(p) == class_colour(2) for p in top)


def test_recording_frames_count_the_events_before_the_cursor(recording):
    """The window's frame for [a, b) (µs after the first event): OFF/ON counts per pixel
    of exactly those events."""
    import numpy as np

    from eventpipe.labelling.window import RecordingFrames
    from recorders.reader import open_recording

    fr = RecordingFrames(recording)
    with open_recording(recording) as rec:
        ev, t0 = rec.events(), rec.info.t_first
    assert fr.size == (48, 32) and fr.duration_us == int(ev["t"].max()) - t0
    a, b = 1_200_000, 1_250_000
    got = fr.frame(a, b)
    want = np.zeros((2, 32, 48))
    sel = ev[(ev["t"] >= t0 + a) & (ev["t"] < t0 + b)]
    np.add.at(want, (sel["p"].astype(int), sel["y"].astype(int), sel["x"].astype(int)), 1)
    assert len(sel) > 100
    np.testing.assert_array_equal(got, want)


def test_counts_of_one_segment_are_singular():
    """The window's messages and its stderr line say "1 segment" (they said "1 segments")."""
    from eventpipe.labelling.state import n_segments

    assert [n_segments(n) for n in (0, 1, 2)] == ["0 segments", "1 segment", "2 segments"]
    s = new()
    feed(s, "2", "space", "right", "space")
    s.saved("x.labels.csv")
    assert s.message == "saved 1 segment to x.labels.csv"
