"""Streaming evaluation: window accuracy and action-switch latency on a labelled stream.

Runs the pipeline on a source whose windows carry ``truth`` (the ``synthetic:``
stream, or any source that tags truth), with one label message per window,
and measures:

- window accuracy: the fraction of windows whose (smoothed) label equals the truth;
- switch latency: for every change of truth, the event time from the end of the
  last window of the old action to the end of the first window labelled with
  the new one (before the next change); a switch is *caught* when that is at
  most ``max_latency_us`` (0.5 s by default);
- settled accuracy: the fraction of windows ending at least ``settle_us`` (0.5 s) after
  the last change of truth (or after the stream's first window) whose label is right, per
  class too, and the confusion matrix of those windows (rows = truth, columns = label);
- label changes per true switch: how often the label differs from the previous window's
  (flicker), divided by the number of changes of truth.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class SwitchResult:
    t_switch_us: int
    old: str
    new: str
    latency_us: int | None  # None: the new action was never labelled before the next switch


def switch_latencies(labels: list[dict]) -> list[SwitchResult]:
    """Per-switch latencies from per-window label messages (``label``, ``truth``, ``t_us``)."""
    msgs = [m for m in labels if m.get("truth") is not None and m.get("t_us") is not None]
    out: list[SwitchResult] = []
    i = 1
    while i < len(msgs):
        if msgs[i]["truth"] == msgs[i - 1]["truth"]:
            i += 1
            continue
        t_switch = int(msgs[i - 1]["t_us"])
        new, old = msgs[i]["truth"], msgs[i - 1]["truth"]
        latency = None
        j = i
        while j < len(msgs) and msgs[j]["truth"] == new:
            if msgs[j]["label"] == new:
                latency = int(msgs[j]["t_us"]) - t_switch
                break
            j += 1
        out.append(SwitchResult(t_switch, old, new, latency))
        while i < len(msgs) and msgs[i]["truth"] == new:
            i += 1
    return out


def settled_figures(msgs: list[dict], settle_us: int = 500_000) -> dict:
    """Goal figures of per-window messages (``t_us``, ``truth``, ``label``, in window order):
    accuracy of the windows ending ``>= settle_us`` after the last change of truth (the first
    segment counts from the first window), per truth class, their confusion matrix (classes in
    order of first appearance as truth, then labels that never were truth; ``None`` = no
    label), and the label changes per change of truth."""
    msgs = [m for m in msgs if m.get("truth") is not None and m.get("t_us") is not None]
    names: list = []
    for key in ("truth", "label"):
        for m in msgs:
            if m[key] not in names:
                names.append(m[key])
    col = {n: i for i, n in enumerate(names)}
    conf = np.zeros((len(names), len(names)), np.int64)
    t_ref = None
    changes = switches = 0
    for i, m in enumerate(msgs):
        if i == 0:
            t_ref = int(m["t_us"])
        else:
            if m["truth"] != msgs[i - 1]["truth"]:
                switches += 1
                t_ref = int(msgs[i - 1]["t_us"])
            changes += m["label"] != msgs[i - 1]["label"]
        if int(m["t_us"]) - t_ref >= settle_us:
            conf[col[m["truth"]], col[m["label"]]] += 1
    n = int(conf.sum())
    rows = conf.sum(1)
    truths = [nm for nm in names if any(m["truth"] == nm for m in msgs)]
    return {
        "settle_ms": settle_us / 1e3,
        "settled_windows": n,
        "settled_accuracy": float(np.trace(conf)) / n if n else None,
        "per_class_settled": {str(nm): (float(conf[col[nm], col[nm]] / rows[col[nm]])
                                        if rows[col[nm]] else None) for nm in truths},
        "confusion_names": [None if nm is None else str(nm) for nm in names],
        "confusion": conf.tolist(),
        "label_changes": changes,
        "label_changes_per_switch": changes / switches if switches else None,
    }


def summarise(labels: list[dict], max_latency_us: int = 500_000, settle_us: int = 500_000) -> dict:
    msgs = [m for m in labels if m.get("truth") is not None]
    correct = sum(m["label"] == m["truth"] for m in msgs)
    switches = switch_latencies(msgs)
    lat = np.array([s.latency_us for s in switches if s.latency_us is not None], dtype=np.float64)
    caught = sum(s.latency_us is not None and s.latency_us <= max_latency_us for s in switches)
    return {
        "windows": len(msgs),
        "windows_right": int(correct),
        "window_accuracy": correct / len(msgs) if msgs else None,
        "switches": len(switches),
        "switches_caught": caught,
        "switch_catch_rate": caught / len(switches) if switches else None,
        "max_latency_ms": max_latency_us / 1e3,
        "latency_ms_median": float(np.median(lat) / 1e3) if lat.size else None,
        "latency_ms_p90": float(np.percentile(lat, 90) / 1e3) if lat.size else None,
        "latencies_ms": [None if s.latency_us is None else s.latency_us / 1e3 for s in switches],
        "missed": [dataclasses.asdict(s) for s in switches if s.latency_us is None],
        **settled_figures(msgs, settle_us),
    }


def combine(results: list[dict]) -> dict:
    """The figures of several :func:`summarise` results (separate streams) taken together."""
    if not results:
        raise ValueError("combine needs at least one result")
    names: list = []
    for r in results:
        names += [n for n in r["confusion_names"] if n not in names]
    col = {n: i for i, n in enumerate(names)}
    conf = np.zeros((len(names), len(names)), np.int64)
    for r in results:
        idx = [col[n] for n in r["confusion_names"]]
        conf[np.ix_(idx, idx)] += np.asarray(r["confusion"], np.int64).reshape(len(idx), len(idx))
    tot = lambda k: sum(int(r[k]) for r in results)  # noqa: E731
    lat_all = [x for r in results for x in r["latencies_ms"]]
    lat = np.array([x for x in lat_all if x is not None], np.float64)
    windows, switches, caught = tot("windows"), tot("switches"), tot("switches_caught")
    n, rows = int(conf.sum()), conf.sum(1)
    truth_names = [nm for nm in names if any(nm in r["per_class_settled"] for r in results)]
    return {
        "streams": len(results),
        "windows": windows,
        "windows_right": tot("windows_right"),
        "window_accuracy": tot("windows_right") / windows if windows else None,
        "switches": switches,
        "switches_caught": caught,
        "switch_catch_rate": caught / switches if switches else None,
        "max_latency_ms": results[0]["max_latency_ms"],
        "latency_ms_median": float(np.median(lat)) if lat.size else None,
        "latency_ms_p90": float(np.percentile(lat, 90)) if lat.size else None,
        "latencies_ms": lat_all,
        "missed": [m for r in results for m in r["missed"]],
        "settle_ms": results[0]["settle_ms"],
        "settled_windows": n,
        "settled_accuracy": float(np.trace(conf)) / n if n else None,
        "per_class_settled": {str(nm): (float(conf[col[nm], col[nm]] / rows[col[nm]])
                                        if rows[col[nm]] else None) for nm in truth_names},
        "confusion_names": [None if nm is None else str(nm) for nm in names],
        "confusion": conf.tolist(),
        "label_changes": tot("label_changes"),
        "label_changes_per_switch": tot("label_changes") / switches if switches else None,
    }


def evaluate_stream(cfg, *, duration_s: float | None = None, max_latency_us: int = 500_000,
                    settle_us: int = 500_000, err=None) -> dict:
    """Run ``cfg`` (as ``eventpipe run``) collecting one label per window; return the summary."""
    import io

    from eventpipe.runtime.run import run

    cfg.decoder.emit_every = 1
    cfg.sinks.console = False
    if duration_s is not None:
        cfg.runtime.duration_s = duration_s
    labels: list[dict] = []
    metrics = run(cfg, out=io.StringIO(), err=err or io.StringIO(), on_label=labels.append)
    res = summarise(labels, max_latency_us, settle_us)
    res["run"] = {k: metrics[k] for k in ("events_in", "frames", "steps", "labels",
                                          "latency_p50_ms", "latency_p99_ms")}
    res["trace"] = [{"t_us": m.get("t_us"), "label": m.get("label"), "truth": m.get("truth")}
                    for m in labels if m.get("truth") is not None]
    return res


def plot_stream_confusion(res: dict, path, title: str = "") -> None:
    """The settled windows' confusion matrix of a :func:`summarise` result as a PNG."""
    from eventpipe.training.evaluate import plot_confusion

    names = list(res["confusion_names"])
    order = sorted(range(len(names)), key=lambda i: (names[i] is None, str(names[i])))
    conf = np.asarray(res["confusion"])[np.ix_(order, order)]
    names = ["(none)" if names[i] is None else names[i] for i in order]
    plot_confusion(conf, names, path, title=title or (
        f"windows >= {res['settle_ms']:.0f} ms after a switch: accuracy "
        f"{res['settled_accuracy'] or 0:.3f} (n={res['settled_windows']})"))


def plot_trace(trace: list[dict], path, *, start_s: float = 0.0, seconds: float | None = 60.0,
               title: str = "") -> None:
    """Truth (line) and label (dots: green right, red wrong) of every window over event time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [m for m in trace if m["t_us"] is not None and m["t_us"] / 1e6 >= start_s
           and (seconds is None or m["t_us"] / 1e6 < start_s + seconds)]
    names = sorted({m["truth"] for m in pts} | {m["label"] for m in pts if m["label"] is not None})
    row = {n: i for i, n in enumerate(names)}
    t = np.array([m["t_us"] / 1e6 for m in pts])
    truth = np.array([row[m["truth"]] for m in pts])
    lab = np.array([row[m["label"]] if m["label"] is not None else -1 for m in pts])
    ok = lab == truth
    fig, ax = plt.subplots(figsize=(12, 0.32 * len(names) + 1.6))
    ax.step(t, truth, where="post", color="0.3", lw=2.5, alpha=0.5, label="truth")
    ax.scatter(t[ok], lab[ok], s=7, color="tab:green", label="label (right)", zorder=3)
    ax.scatter(t[~ok], lab[~ok], s=9, color="tab:red", marker="x", label="label (wrong)", zorder=3)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("event time (s)")
    ax.grid(alpha=0.25)
    ax.legend(loc="upper right", fontsize=8, ncol=3)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
