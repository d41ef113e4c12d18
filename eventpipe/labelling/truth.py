"""``eventpipe eval --stream REC``: a labelled recording as a stream with per-window truth.

The recording runs through the real runtime (``eventpipe run``'s pipeline, membranes
carried, one label per window, as fast as possible); each window's truth is the label of
the segment of the labels file that holds the window's end (a window ending exactly on a
segment's end belongs to that segment).  Windows outside every segment have no truth and
are left out of the figures (counted as ``unlabelled_windows``).  Window accuracy and
switches caught are then :func:`eventpipe.runtime.stream_eval.summarise`'s, as for
``synthetic:`` streams: a switch is a change of truth between consecutive labelled windows.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Optional

from eventpipe.labelling.files import LabelFileError, find_labels_file, label_at, read_labels


def labelled_recording(uri: str) -> Optional[tuple[Path, Path]]:
    """``(recording, labels file)`` when ``uri`` (``file:PATH`` or a bare path) is a
    recording with a labels file next to it; None for anything else."""
    if uri.startswith("file:"):
        path = uri[len("file:"):]
    elif ":" in uri.split("/")[0] and not Path(uri).exists():
        return None  # another scheme (synthetic:, zmq+tcp://, ...)
    else:
        path = uri
    p = Path(path)
    if not p.is_file():
        return None
    labels = find_labels_file(p)
    return None if labels is None else (p, labels)


def recording_span(path: Path) -> tuple[int, int]:
    """``(t_first, t_last)`` of a recording's events."""
    from eventpipe.labelling.events import take_events

    _, _, t_first, t_last = take_events(path)
    return t_first, t_last


def model_classes(cfg) -> list[str]:
    """The class names the run's model outputs (loaded as the run will load it, its
    warnings left to the run): a truth outside them could never be scored right."""
    import contextlib
    import warnings

    from eventpipe.errors import reading_checkpoint
    from eventpipe.runtime.model_loader import load_model, resolve_checkpoint

    path = resolve_checkpoint(cfg.model.name)
    with warnings.catch_warnings(), (reading_checkpoint(path) if path.is_file()
                                     else contextlib.nullcontext()):
        warnings.simplefilter("ignore")
        return load_model(cfg.model.name, num_classes=cfg.model.num_classes,
                          class_names=cfg.model.class_names).class_names


def tag_truth(labels: list[dict], segments, t_first: int) -> int:
    """Set each message's ``truth`` from the segments (by its window end ``t_us``);
    returns the number of windows outside every segment (their ``truth`` stays unset)."""
    unlabelled = 0
    for m in labels:
        t = m.get("t_us")
        truth = None if t is None else label_at(segments, (int(t) - 1 - t_first) / 1e6)
        if truth is None:
            unlabelled += 1
            m.pop("truth", None)
        else:
            m["truth"] = truth
    return unlabelled


def evaluate_recording(cfg, recording: Path, labels_path: Path, *,
                       max_latency_us: int = 500_000, err=None) -> dict:
    """Run ``cfg`` (its source set to the recording) and score every window against the
    labels file; the summary of :func:`~eventpipe.runtime.stream_eval.summarise` plus
    ``unlabelled_windows`` and ``labels_file``."""
    from eventpipe.runtime.run import run
    from eventpipe.runtime.stream_eval import summarise

    t_first, t_last = recording_span(recording)
    segments = read_labels(labels_path, duration_s=(t_last - t_first) / 1e6 + 1e-6,
                           classes=model_classes(cfg))
    if not segments:
        raise LabelFileError(labels_path, "", "no segments: nothing to score")
    cfg.source.uri = f"file:{recording}"
    cfg.source.speed = None
    cfg.decoder.emit_every = 1
    cfg.sinks.console = False
    msgs: list[dict] = []
    metrics = run(cfg, out=io.StringIO(), err=err or io.StringIO(), on_label=msgs.append)
    unlabelled = tag_truth(msgs, segments, t_first)
    if unlabelled == len(msgs):
        raise LabelFileError(labels_path, "", f"no window ends inside a segment ({len(msgs)} "
                             "windows, all unlabelled): nothing to score (segments shorter "
                             "than a window?)")
    res = summarise(msgs, max_latency_us)
    res["unlabelled_windows"] = unlabelled
    res["labels_file"] = str(labels_path)
    res["run"] = {k: metrics.get(k) for k in ("events_in", "frames", "steps", "labels",
                                              "latency_p50_ms", "latency_p99_ms")}
    res["trace"] = [{"t_us": m.get("t_us"), "label": m.get("label"), "truth": m.get("truth")}
                    for m in msgs if m.get("truth") is not None]
    return res
