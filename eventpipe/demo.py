"""``eventpipe demo``: a synthetic recording written, read back, summarised and rendered.

Nothing is downloaded: two seconds of the synthetic action stream are made by
the DVS emulator, written as a Prophesee EVT 3.0 file, decoded again (and
checked to be identical), summarised like ``eventpipe info`` and rendered as
PNG frames.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TextIO

import numpy as np


def run_demo(out_dir: str | Path, out: TextIO, *, seconds: float = 2.0) -> int:
    from eventpipe.info import recording_summary
    from eventpipe.io import read_events
    from eventpipe.io.evt3 import encode_evt3
    from eventpipe.synthetic import SyntheticStream
    from eventpipe.view import view_recording

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    size = (128, 128)
    stream = SyntheticStream(seed=0, sensor_size=size, switch_every_s=1.0, duration_s=seconds)
    packets = list(stream)
    events = np.concatenate([p.events for p in packets])
    truth = sorted({(p.t_start_us // 1_000_000, p.truth_name) for p in packets})
    path = out_dir / "synthetic.raw"
    path.write_bytes(encode_evt3(events, size))
    back = read_events(path)
    if not np.array_equal(back, events):
        out.write("demo: the EVT3 round trip differs!\n")
        return 1
    summary = recording_summary(path)
    out.write(f"wrote {path} ({path.stat().st_size:,} bytes): {summary['events']:,} events, "
              f"actions {', '.join(name for _, name in truth)}\n")
    out.write(json.dumps({k: summary[k] for k in ("format", "sensor_size", "sensor_size_source",
                                                  "events", "duration_us", "on_fraction")}) + "\n")
    # its own frames folder: a second demo into the same folder replaces the first's frames
    res = view_recording(path, out_dir / "frames", window_us=50_000, fps=20, overwrite=True)
    out.write(f"rendered {res['frames']} frames to {res['out']}\n")
    return 0
