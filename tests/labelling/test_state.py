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
