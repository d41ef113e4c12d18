"""``eventpipe run`` as a real process: SIGINT / SIGTERM end it cleanly.

The synthetic source runs in real time, so the run never ends by itself; once
the JSON-lines file holds a few labels the signal goes in, and the process must
exit 0 (the first signal stops reading and drains), print the summary line on
stderr and leave a complete file: every line valid JSON, the labels' seq
contiguous and the final metrics message last.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.transport.helpers import wait_for

REPO = Path(__file__).resolve().parents[2]


def label_lines(path: Path) -> list[dict]:
    """The complete lines written so far (a partial last line is not counted)."""
    if not path.exists():
        return []
    text = path.read_text()
    return [json.loads(x) for x in text.split("\n")[:-1] if x]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_ends_run_cleanly(tmp_path, sig):
    out = tmp_path / "labels.jsonl"
    cmd = [sys.executable, "-m", "eventpipe", "run", "--source", "synthetic:seed=1",
           "--model", "meta_spikeformer_tiny", "--set", "model.num_classes=12",
           "--set", "input.size=[32,32]", "--set", "decoder.emit_every=1",
           "--set", "model.threads=1", "--jsonl", str(out), "--quiet"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    # drain the pipes in the background so the child never blocks on a full pipe
    captured = {"out": "", "err": ""}

    def pump(name, stream):
        captured[name] = stream.read()

    pumps = [threading.Thread(target=pump, args=(k, s), daemon=True)
             for k, s in (("out", proc.stdout), ("err", proc.stderr))]
    for t in pumps:
        t.start()
    try:
        ok = wait_for(lambda: proc.poll() is not None or
                      sum(m.get("type") != "metrics" for m in label_lines(out)) >= 3,
                      timeout=45, interval=0.05)
        assert proc.poll() is None, f"run ended by itself (rc {proc.returncode})"
        assert ok, "no labels within 45 s"
        proc.send_signal(sig)
        rc = proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        for t in pumps:
            t.join(5)
    err = captured["err"]
    assert rc == 0, err
    lines = [x for x in err.splitlines() if x.strip()]
    last = [x for x in lines if x.startswith("eventpipe: ")][-1]  # the summary, then its advice
    assert last.startswith("eventpipe: events in ") and " labels " in last, err
    # a live source stopped mid-stream may still hold received events: they are named, nothing
    # else follows the summary
    assert all(x.startswith("  ") and "still queued when the run stopped" in x
               for x in lines[lines.index(last) + 1:]), err
    text = out.read_text()
    assert text.endswith("\n")
    rows = [json.loads(x) for x in text.splitlines()]  # every line is complete JSON
    labels = [m for m in rows if m.get("type") != "metrics"]
    assert len(labels) >= 3
    assert [m["seq"] for m in labels] == list(range(len(labels)))
    assert all(m["truth"] and m["label"] for m in labels)
    final = rows[-1]
    assert final.get("type") == "metrics" and final["labels"] == len(labels)
    assert f"labels {len(labels):,} " in last
