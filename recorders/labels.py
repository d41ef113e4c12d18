"""Label rows: the pipeline's label messages (dicts) to table columns and back.

A message is what :mod:`eventpipe.sinks` deliver: ``stream``, ``seq``, ``t_us``, ``label``,
``score``, ``topk`` (list of ``[name, score]``), ``latency_ms`` and, for labelled streams,
``truth``.  Names are stored as UTF-8 in fixed-width fields (``label_bytes``); a longer
name is an error naming the row rather than a silent truncation.  ``topk`` keeps the first
``topk`` pairs; missing pairs are stored as empty names with score NaN.
"""

from __future__ import annotations

import math
import time
from typing import Iterable, Iterator

import numpy as np

from recorders.layout import label_row_dtype

MESSAGE_KEYS = ("t_us", "stream", "seq", "label", "score", "topk", "latency_ms", "truth")


def _name(v, label_bytes: int, row: int, key: str) -> bytes:
    if v is None:
        return b""
    b = str(v).encode("utf-8")
    if len(b) > label_bytes:
        raise ValueError(f"label row {row}: {key} {str(v)[:40]!r}... is {len(b)} bytes, more "
                         f"than the recording's label_bytes={label_bytes}")
    return b


def _float(v) -> float:
    return math.nan if v is None else float(v)


def rows_from_messages(msgs: Iterable[dict], *, label_bytes: int, topk: int,
                       wall_s: float | None = None) -> np.ndarray:
    """Pack label messages into the structured row dtype of the label table."""
    msgs = [m for m in msgs if m.get("type", "label") == "label"]
    out = np.zeros(len(msgs), dtype=label_row_dtype(label_bytes, topk))
    now = time.time() if wall_s is None else float(wall_s)
    for i, m in enumerate(msgs):
        if m.get("t_us") is None:
            raise ValueError(f"label row {i}: message has no t_us: {sorted(m)}")
        out["t_us"][i] = int(m["t_us"])
        out["stream"][i] = int(m.get("stream") or 0)
        out["seq"][i] = -1 if m.get("seq") is None else int(m["seq"])
        out["label"][i] = _name(m.get("label"), label_bytes, i, "label")
        out["score"][i] = _float(m.get("score"))
        out["latency_ms"][i] = _float(m.get("latency_ms"))
        out["wall_s"][i] = float(m.get("wall_s", now))
        out["truth"][i] = _name(m.get("truth"), label_bytes, i, "truth")
        top = list(m.get("topk") or [])[:topk]
        out["topk_score"][i] = math.nan
        for j, (name, score) in enumerate(top):
            out["topk_label"][i, j] = _name(name, label_bytes, i, "topk")
            out["topk_score"][i, j] = float(score)
    return out


def _text(b: bytes) -> str | None:
    return b.decode("utf-8") if b else None


def messages_from_rows(rows: np.ndarray) -> Iterator[dict]:
    """The messages back, as the pipeline emitted them (plus ``wall_s``)."""
    for r in rows:
        msg = {"stream": int(r["stream"]), "seq": None if r["seq"] < 0 else int(r["seq"]),
               "t_us": int(r["t_us"]), "label": _text(r["label"]),
               "score": None if np.isnan(r["score"]) else float(r["score"]),
               "topk": [[_text(n), float(s)] for n, s in zip(r["topk_label"], r["topk_score"])
                        if n],
               "latency_ms": None if np.isnan(r["latency_ms"]) else float(r["latency_ms"]),
               "wall_s": float(r["wall_s"])}
        if r["truth"]:
            msg["truth"] = _text(r["truth"])
        yield msg
