"""The labelling state: a pure state machine fed by key names (``eventpipe label``'s window
draws it and feeds it keys; the tests feed it keys directly).

Times are microseconds after the recording's first event.  Keys (names as
:func:`eventpipe.labelling.window.key_name` gives them):

=============  ===============================================================================
``1``-``9``    select class 1-9 of ``--classes`` (``0``: the 10th); ``tab`` the next class
``space``      start a segment at the cursor; pressed again, end it there (the segment gets the
               class selected when it ends; ending before the start makes the segment run
               from the cursor to the start).  A start inside a segment, an empty segment or
               one overlapping another is refused with a message
``backspace``  undo the last change (an open start, an added or a deleted segment)
``x``          delete the segment under the cursor
``left`` /     seek 1 s back / forward (``seek_us``); ``,`` / ``.`` one frame (``step_us``);
``right``      ``home`` / ``end`` to the start / end
``p``          play / pause (the window starts paused)
``s``          save (the caller writes the file and calls :meth:`LabelState.saved`)
``q``, ``esc`` quit; with unsaved changes the first press only warns, a second one quits
=============  ===============================================================================

:meth:`LabelState.handle` returns ``"save"``, ``"quit"`` or None.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

from eventpipe.labelling.files import Segment

SAVE, QUIT = "save", "quit"


def _us(s: float) -> int:
    return int(round(s * 1e6))


def n_segments(n: int) -> str:
    """``"1 segment"``, ``"2 segments"``: the count the window's messages show."""
    return f"{n} segment{'s' * (n != 1)}"


@dataclass
class LabelState:
    duration_us: int
    classes: Sequence[str]
    segments: list = field(default_factory=list)      # Segment, sorted by start
    t_us: int = 0
    playing: bool = False
    speed: float = 1.0
    current: int = 0
    open_start_us: Optional[int] = None
    seek_us: int = 1_000_000
    step_us: int = 50_000
    dirty: bool = False
    message: str = ""
    quit_armed: bool = False
    history: list = field(default_factory=list)       # (kind, payload) for undo

    def __post_init__(self):
        self.classes = tuple(self.classes)
        if not self.classes:
            raise ValueError("no classes to label with (--classes a,b,c)")
        if self.duration_us < 0:
            raise ValueError(f"duration_us {self.duration_us} < 0")
        self.segments = sorted(self.segments)

    # -- queries ---------------------------------------------------------------------------
    @property
    def label(self) -> str:
        return self.classes[self.current]

    def segment_at(self, t_us: int) -> Optional[Segment]:
        for s in self.segments:
            if _us(s.start_s) <= t_us < _us(s.end_s):
                return s
        return None

    def _overlaps(self, a_us: int, b_us: int) -> Optional[Segment]:
        for s in self.segments:
            if a_us < _us(s.end_s) and _us(s.start_s) < b_us:
                return s
        return None

    # -- time ------------------------------------------------------------------------------
    def seek(self, t_us: int) -> None:
        self.t_us = int(min(max(0, t_us), self.duration_us))

    def tick(self, dt_us: int) -> None:
        """``dt_us`` of wall time passed: while playing, the cursor moves ``speed`` times
        that; playing stops at the end."""
        if self.playing:
            self.seek(self.t_us + int(round(dt_us * self.speed)))
            if self.t_us >= self.duration_us:
                self.playing = False

    # -- edits -----------------------------------------------------------------------------
    def _add(self, seg: Segment) -> None:
        self.segments = sorted([*self.segments, seg])
        self.history.append(("add", seg))
        self.dirty = True

    def _space(self) -> None:
        t = self.t_us
        if self.open_start_us is None:
            inside = self.segment_at(t)
            if inside is not None or t >= self.duration_us:
                self.message = (f"{t / 1e6:.3f} s is inside {inside.label} "
                                f"{inside.start_s:g}-{inside.end_s:g} s" if inside else
                                "at the end: nothing left to label")
                return
            self.open_start_us = t
            self.history.append(("open", t))
            self.message = f"segment started at {t / 1e6:.3f} s; space ends it"
            return
        a, b = sorted((self.open_start_us, t))
        if a == b:
            self.message = "empty segment: move the cursor, then press space"
            return
        other = self._overlaps(a, b)
        if other is not None:
            self.message = (f"{a / 1e6:.3f}-{b / 1e6:.3f} s overlaps {other.label} "
                            f"{other.start_s:g}-{other.end_s:g} s; move the cursor")
            return
        self.open_start_us = None
        self.history = [h for h in self.history if h[0] != "open"]
        seg = Segment(a / 1e6, b / 1e6, self.label)
        self._add(seg)
        self.message = f"added {seg.label} {seg.start_s:.3f}-{seg.end_s:.3f} s"

    def _undo(self) -> None:
        if not self.history:
            self.message = "nothing to undo"
            return
        kind, what = self.history.pop()
        if kind == "open":
            self.open_start_us = None
            self.message = "open segment cancelled"
        elif kind == "add":
            self.segments.remove(what)
            self.dirty = True
            self.message = f"removed {what.label} {what.start_s:.3f}-{what.end_s:.3f} s"
        elif kind == "delete":
            self.segments = sorted([*self.segments, what])
            self.dirty = True
            self.message = f"restored {what.label} {what.start_s:.3f}-{what.end_s:.3f} s"

    def _delete(self) -> None:
        seg = self.segment_at(self.t_us)
        if seg is None:
            self.message = "no segment under the cursor"
            return
        self.segments.remove(seg)
        self.history.append(("delete", seg))
        self.dirty = True
        self.message = f"deleted {seg.label} {seg.start_s:.3f}-{seg.end_s:.3f} s (backspace undoes)"

    def saved(self, where: str = "") -> None:
        self.dirty = False
        self.message = f"saved {n_segments(len(self.segments))}" + (f" to {where}" if where else "") \
            + ("; the open segment is not saved" if self.open_start_us is not None else "")

    # -- keys ------------------------------------------------------------------------------
    def handle(self, key: str) -> Optional[str]:
        """Apply one key (a name: ``"1"``, ``"space"``, ``"left"``, ...); unknown keys are
        ignored.  Returns ``"save"``, ``"quit"`` or None."""
        armed, self.quit_armed = self.quit_armed, False
        if key in ("q", "esc"):
            if self.dirty and not armed:
                self.quit_armed = True
                self.message = "unsaved changes: s saves, q again quits without saving"
                return None
            return QUIT
        if key == "s":
            return SAVE
        if key.isdigit() and len(key) == 1:
            i = (int(key) - 1) % 10
            if i < len(self.classes):
                self.current = i
                self.message = f"class {self.label}"
            else:
                self.message = f"no class {key}: there are {len(self.classes)}"
        elif key == "tab":
            self.current = (self.current + 1) % len(self.classes)
            self.message = f"class {self.label}"
        elif key == "space":
            self._space()
        elif key == "backspace":
            self._undo()
        elif key == "x":
            self._delete()
        elif key == "left":
            self.seek(self.t_us - self.seek_us)
        elif key == "right":
            self.seek(self.t_us + self.seek_us)
        elif key == ",":
            self.seek(self.t_us - self.step_us)
        elif key == ".":
            self.seek(self.t_us + self.step_us)
        elif key == "home":
            self.seek(0)
        elif key == "end":
            self.seek(self.duration_us)
        elif key == "p":
            if not self.playing and self.t_us >= self.duration_us:
                self.seek(0)
            self.playing = not self.playing
        return None
