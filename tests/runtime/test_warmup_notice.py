"""A slow start-up says so (the first run compiles the Numba kernels for tens of seconds); a
cached, fast one writes nothing extra."""

from __future__ import annotations

import io
import threading

import pytest

from eventpipe.runtime import run as run_module
from eventpipe.runtime import warmup_notice
from eventpipe.runtime.pipeline import Pipeline
from eventpipe.runtime.warmup_notice import NOTICE, WarmUpNotice
from tests.cli.conftest import run_cli
from tests.conftest import sample_path


class _Spy(io.StringIO):
    """stderr that sets ``seen`` when the notice is written."""

    def __init__(self):
        super().__init__()
        self.seen = threading.Event()

    def write(self, s):
        n = super().write(s)
        if s == NOTICE:
            self.seen.set()
        return n


def test_slow_work_gets_the_notice_then_the_time_it_took():
    err = _Spy()
    with WarmUpNotice(err, after_s=0.0) as notice:
        assert err.seen.wait(30)        # the work is still running: the notice came meanwhile
    lines = err.getvalue().splitlines(keepends=True)
    assert notice.noticed and lines[0] == NOTICE and len(lines) == 2
    assert lines[1].startswith("eventpipe: ready after ") and lines[1].endswith(" s of start-up\n")


def test_fast_work_writes_nothing_and_leaves_no_thread():
    err = io.StringIO()
    with WarmUpNotice(err, after_s=3600) as notice:
        pass
    assert err.getvalue() == "" and not notice.noticed and not notice._thread.is_alive()


def test_a_failure_in_the_work_passes_through_without_the_ready_line():
    err = _Spy()
    with pytest.raises(KeyError):
        with WarmUpNotice(err, after_s=0.0):
            assert err.seen.wait(30)
            raise KeyError("boom")
    assert err.getvalue() == NOTICE


@pytest.mark.parametrize("bad", [-1.0, float("nan")])
def test_a_negative_or_nan_delay_is_refused(bad):
    with pytest.raises(ValueError, match="after_s"):
        WarmUpNotice(io.StringIO(), after_s=bad)


def test_eventpipe_run_says_so_when_its_warm_up_is_slow(monkeypatch):
    """Through the command: a warm-up slower than the notice delay (made slow here by waiting
    for the notice itself) gives the notice and the ready line, then the labels as usual."""
    monkeypatch.setattr(warmup_notice, "NOTICE_AFTER_S", 0.0)
    written = threading.Event()
    watch = WarmUpNotice._watch

    def watch_and_tell(self):
        watch(self)
        if self.noticed:
            written.set()

    monkeypatch.setattr(WarmUpNotice, "_watch", watch_and_tell)
    warm_up = Pipeline.warm_up

    def slow_warm_up(self):
        warm_up(self)
        assert written.wait(30)

    monkeypatch.setattr(Pipeline, "warm_up", slow_warm_up)
    assert run_module.WarmUpNotice is WarmUpNotice
    res = run_cli(["run", "--source", f"file:{sample_path('evt3_sample.raw')}", "--max-speed",
                   "--duration", "2"])
    assert res.rc == 0, res
    lines = res.err_lines
    i = lines.index(NOTICE.rstrip("\n"))
    assert lines[i - 1].startswith("eventpipe: model ") and lines[i + 1].startswith(
        "eventpipe: ready after ")
    assert "steps" in lines[-1] or any("steps" in x for x in lines[i + 2:])


def test_the_notice_waits_three_seconds_as_runtime_md_says():
    assert warmup_notice.NOTICE_AFTER_S == 3.0 and WarmUpNotice(io.StringIO()).after_s == 3.0
