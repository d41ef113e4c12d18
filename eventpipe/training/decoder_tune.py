"""Choosing the label decoder's settings (``[decoder]`` of a run config) for a stream model.

The runtime's :class:`~eventpipe.labels.LabelDecoder` turns per-window logits into the label a
user sees.  Its settings (EMA of the probabilities, hysteresis margin, dwell) trade switch
latency against flicker.  They are chosen here on the *validation* streams of a training
config (``synthetic_stream``: seeds ``TEST_SEED0 + ...`` = 20000-20003, the streams the
trainer evaluates on), never on the held-out seeds the goal figures are measured on
(``eventpipe eval --stream synthetic:seed=1000 ...``: seeds 1000-9999, disjoint from every
training and validation seed by construction, see :mod:`eventpipe.training.stream_data`).

The model runs once over the cached windows of those streams (bit for bit the runtime's
frames, membranes carried from the first window on, as ``eventpipe run`` does); every decoder
setting of the grid then replays the logits through the real ``LabelDecoder`` and is scored
with the runtime's own :func:`~eventpipe.runtime.stream_eval.summarise`.

    python -m eventpipe.training.decoder_tune --config configs/train_synthetic_stream3.toml \\
        --checkpoint snn/weights/meta_spikeformer_tiny_synthetic.pt --store

``--store`` writes the chosen settings into the checkpoint (``extra["decoder"]``); the runtime
uses them wherever the run config leaves ``decoder.ema``/``hysteresis``/``dwell`` unset.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
from typing import Iterable, Sequence

import numpy as np
import torch

from eventpipe.labels import LabelDecoder

GRID = dict(ema=(0.0, 0.2, 0.4, 0.5, 0.6, 0.7, 0.8), hysteresis=(0.0, 0.1, 0.2, 0.3, 0.4, 0.5),
            dwell=(1, 2, 3), challenger_ema=(None, 0.0, 0.2, 0.4, 0.5),
            release=(None, 0.1, 0.2, 0.3), release_hysteresis=(None, 0.1))

#: the grid of the HMM forward filter (``--rule hmm``; ``LabelDecoder(rule="hmm")``)
HMM_GRID = dict(rule=("hmm",), hazard=(0.03, 0.1, 0.2, 0.3, 0.4, 0.6), temperature=(0.6, 0.8, 1.0),
                floor=(0.0, 0.05), min_posterior=(0.0, 0.5, 0.7, 0.9), margin=(0.0, 0.4, 0.8),
                hazard_ramp=(0, 20))

#: the settings a checkpoint stores (extra["decoder"]); challenger_ema and release* only where used
KEYS = ("ema", "hysteresis", "dwell", "challenger_ema", "release", "release_hysteresis")

#: the HMM rule's settings (stored beside the EMA rule's, which ``decoder.rule = "ema"`` brings back)
HMM_KEYS = ("rule", "hazard", "temperature", "floor", "min_posterior", "margin", "hazard_ramp")


@torch.no_grad()
def stream_logits(model, frames: np.ndarray, recipe, scale: float, batch: int = 1) -> np.ndarray:
    """Per-window logits ``[N, classes]`` of one stream's cached counts ``(N, C, H, W)``,
    stepping ``model`` from rest with its state carried (the runtime's streaming)."""
    from eventpipe.represent import normalise

    model.eval()
    state = None
    out = []
    for i in range(len(frames)):
        x = normalise(recipe, torch.from_numpy(frames[i:i + 1].astype(np.float32)), scale)
        logits, state = model.step(x, state)
        out.append(logits[0].float().numpy())
    return np.stack(out)


def decode(logits: np.ndarray, truth: Sequence[int], t_end: Sequence[int],
           class_names: Sequence[str], **decoder) -> list[dict]:
    """Per-window label messages (``t_us``, ``label``, ``truth``) of ``logits`` through a fresh
    :class:`LabelDecoder` with the given settings."""
    dec = LabelDecoder(class_names, emit_every=1, **decoder)
    msgs = []
    for lg, tr, te in zip(logits, truth, t_end):
        m = dec.step(lg, t_us=int(te), truth=int(tr))[0]
        msgs.append(dict(t_us=m["t_us"], label=m["label"], truth=m["truth"]))
    return msgs


def score_settings(streams: Iterable[tuple], class_names, settle_us: int = 500_000,
                   max_latency_us: int = 500_000, **decoder) -> dict:
    """:func:`~eventpipe.runtime.stream_eval.combine` figures of several streams
    (``(logits, truth, t_end)`` each) decoded with ``decoder``."""
    from eventpipe.runtime.stream_eval import combine, summarise

    return combine([summarise(decode(lg, tr, te, class_names, **decoder), max_latency_us, settle_us)
                    for lg, tr, te in streams])


def evidence_runs(streams: Iterable[tuple], steps: int = 10, longest: int = 3) -> dict:
    """What a decoder can catch at most, by how much evidence it waits for: over the switches of
    ``streams`` (``(logits, truth, t_end)``; a switch = a change of truth), how many have the raw
    argmax equal to the new class in at least ``r`` consecutive windows among the first
    ``steps`` windows after it (``r`` = 1..``longest``; at a 50 ms stride 10 windows end within
    0.5 s).  ``{"switches": n, 1: ..., 2: ..., ...}``."""
    out = {"switches": 0, **{r: 0 for r in range(1, longest + 1)}}
    for logits, truth, _ in streams:
        am = np.asarray(logits).argmax(1)
        truth = np.asarray(truth)
        for i in np.flatnonzero(truth[1:] != truth[:-1]) + 1:
            run = best = 0
            for hit in am[i:i + steps] == truth[i]:
                run = run + 1 if hit else 0
                best = max(best, run)
            out["switches"] += 1
            for r in range(1, longest + 1):
                out[r] += best >= r
    return out


def pick(rows: list[dict], max_changes: float = 1.5) -> dict:
    """The best row of a grid: among the settings with at most ``max_changes`` label changes
    per switch (all rows if none), the highest ``min(settled accuracy, switch catch rate)``,
    then the highest sum of the two, then the fewest changes."""
    ok = [r for r in rows if r["label_changes_per_switch"] <= max_changes] or rows
    return max(ok, key=lambda r: (round(min(r["settled_accuracy"], r["switch_catch_rate"]), 4),
                                  round(r["settled_accuracy"] + r["switch_catch_rate"], 4),
                                  -r["label_changes_per_switch"]))


def grid_settings(grid: dict = GRID) -> list[dict]:
    """The settings of a grid that are scored (combinations that would repeat another or leave a
    key unused are skipped)."""
    keys = list(grid)
    out = []
    for values in itertools.product(*(grid[k] for k in keys)):
        setting = dict(zip(keys, values))
        ch = setting.get("challenger_ema")
        if ch is not None and ch >= setting.get("ema", 0.0):
            continue   # no faster than ema: the single-EMA rule, already in the grid as None
        if setting.get("release") is None and setting.get("release_hysteresis") is not None:
            continue   # no release: its margin is unused
        if setting.get("release") is not None and setting.get("dwell", 1) > 1:
            continue   # release is tried with dwell 1 only (a dwell delays every switch anyway)
        if setting.get("rule") == "hmm" and setting.get("min_posterior", 0) > 0 and setting.get("margin", 0) > 0:
            continue   # one barrier at a time: an absolute posterior or a lead over the current label
        out.append(setting)
    return out


def grid(streams: list[tuple], class_names, grid: dict = GRID, progress: bool = False,
         **kw) -> list[dict]:
    """Every setting of ``grid`` (:func:`grid_settings`) scored on ``streams``: one row each."""
    rows = []
    it = grid_settings(grid)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="decoder settings", dynamic_ncols=True)
    for setting in it:
        r = score_settings(streams, class_names, **setting, **kw)
        unset = ({"dwell": 1} if setting.get("rule") == "hmm" else
                 {"challenger_ema": None, "release": None, "release_hysteresis": None})
        rows.append(dict(unset, **setting, settled_accuracy=r["settled_accuracy"],
                         switch_catch_rate=r["switch_catch_rate"],
                         label_changes_per_switch=r["label_changes_per_switch"],
                         window_accuracy=r["window_accuracy"]))
    return rows


def training_streams(cfg, model, n: int, progress: bool = True) -> list[tuple]:
    """``(logits, truth, t_end)`` of the first ``n`` *training* streams of ``cfg.data`` (seeds
    ``TRAIN_SEED0 + ...``, rendered as the training cache renders them): where an emission
    model may be estimated without touching the validation or held-out streams."""
    from eventpipe.training.config import data_recipe
    from eventpipe.training.stream_data import render_stream, stream_seeds

    d = cfg.data
    if d.dataset != "synthetic_stream":
        raise ValueError(f"decoder tuning needs a synthetic_stream config, got data.dataset={d.dataset!r}")
    seeds = stream_seeds(d, "train")
    if not 1 <= n <= len(seeds):
        raise ValueError(f"training streams: n must be 1..{len(seeds)} (data.n_streams), got {n}")
    recipe = data_recipe(d)
    it = seeds[:n]
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="training streams", dynamic_ncols=True)
    out = []
    for seed in it:
        r = render_stream(seed, d)
        out.append((stream_logits(model, r["frames"], recipe, float(r["scale"])), r["truth"], r["t_end"]))
    return out


def validation_streams(cfg, model) -> list[tuple]:
    """``(logits, truth, t_end)`` of every validation stream of ``cfg.data`` (a
    ``synthetic_stream`` config; the cache is built if missing)."""
    from eventpipe.training.config import data_recipe
    from eventpipe.training.stream_data import build_stream_cache

    d = cfg.data
    if d.dataset != "synthetic_stream":
        raise ValueError(f"decoder tuning needs a synthetic_stream config, got data.dataset={d.dataset!r}")
    recipe = data_recipe(d)
    with np.load(build_stream_cache(d, "test")) as z:
        frames, truth, t_end, lengths, scale = (z["frames"], z["truth"], z["t_end"], z["lengths"],
                                                float(z["scale"]))
    out, a = [], 0
    for n in lengths.tolist():
        out.append((stream_logits(model, frames[a:a + n], recipe, scale), truth[a:a + n], t_end[a:a + n]))
        a += n
    return out


def logits_key(cfg, model) -> str:
    """What a cache of stream logits was made from: a SHA-256 of ``model``'s parameters and
    buffers (sorted by name, dtype and shape included) and of ``cfg.data`` (the streams and how
    they are binned).  A cache whose key differs holds another model's or another set's logits."""
    import dataclasses
    import hashlib

    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    d = cfg.data
    h.update(repr(dataclasses.asdict(d) if dataclasses.is_dataclass(d) else d).encode())
    return h.hexdigest()


def cached_validation_streams(cfg, model, logits_path=None) -> list[tuple]:
    """:func:`validation_streams`, kept in (and read back from) ``logits_path`` when given.
    The file carries :func:`logits_key`; one made from another model or data config is made
    again (and overwritten), with a note on stderr.  ``model=None`` only reads a file back."""
    key = None if model is None else logits_key(cfg, model)
    if logits_path and os.path.isfile(logits_path):
        with np.load(logits_path) as z:
            stored = str(z["key"]) if "key" in z.files else None
            if key is None or stored == key:
                return [(z[f"logits{i}"], z[f"truth{i}"], z[f"t_end{i}"]) for i in range(int(z["n"]))]
        print(f"{logits_path}: cached logits of another model or data config; made again",
              file=sys.stderr)
    streams = validation_streams(cfg, model)
    if logits_path:
        tmp = logits_path + ".tmp.npz"
        np.savez(tmp, n=len(streams), key=key,
                 **{f"{k}{i}": v for i, s in enumerate(streams)
                    for k, v in zip(("logits", "truth", "t_end"), s)})
        os.replace(tmp, logits_path)
    return streams


def setting_text(row: dict) -> str:
    """``key=value`` of a grid row's decoder settings (its rule's keys)."""
    keys = HMM_KEYS + ("dwell",) if row.get("rule") == "hmm" else KEYS
    return " ".join(f"{k}={row.get(k)}" for k in keys)


def format_rows(rows: list[dict]) -> str:
    """One line per grid row: its settings, then settled / caught / changes per switch / window."""
    lines = ["settings | settled  caught  changes/switch  window"]
    for r in rows:
        lines.append(f"{setting_text(r)} | {r['settled_accuracy']:.4f}  {r['switch_catch_rate']:.4f}  "
                     f"{r['label_changes_per_switch']:6.2f}          {r['window_accuracy']:.4f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    from eventpipe.training.cli import load_checkpoint_arg
    from eventpipe.training.config import load_train_config

    p = argparse.ArgumentParser(prog="python -m eventpipe.training.decoder_tune", description=__doc__.split("\n")[0])
    p.add_argument("--config", required=True, help="a synthetic_stream training TOML (its validation streams)")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--max-changes", type=float, default=1.5, help="label changes per switch allowed")
    p.add_argument("--logits", default=None, help="keep the streams' logits in this .npz (reused when made from the same model and data config, else made again)")
    p.add_argument("--rule", choices=("ema", "hmm"), default="ema",
                   help="the decoding rule whose grid is searched (eventpipe.labels.LabelDecoder)")
    p.add_argument("--store", action="store_true",
                   help="write the chosen settings into the checkpoint (extra['decoder']): the "
                        "runtime's defaults for this model")
    args = p.parse_args(argv)
    if not args.max_changes > 0:
        p.error("--max-changes must be > 0")
    torch.set_num_threads(1)
    cfg = load_train_config(args.config)
    path, model, meta = load_checkpoint_arg(args.checkpoint, "decoder_tune")
    model = model.float().eval()
    streams = cached_validation_streams(cfg, model, args.logits)
    raw = score_settings(streams, meta["class_names"], ema=0.0)
    print("per class (settled, raw argmax): " + ", ".join(
        f"{k} {v:.3f}" for k, v in sorted(raw["per_class_settled"].items())))
    ev = evidence_runs(streams)
    print(f"switches whose raw argmax says the new class within 0.5 s, at least 1 / 2 / 3 windows in a row: "
          f"{ev[1]} / {ev[2]} / {ev[3]} of {ev['switches']}")
    rows = grid(streams, meta["class_names"], HMM_GRID if args.rule == "hmm" else GRID, progress=True)
    print(format_rows(rows))
    best = pick(rows, args.max_changes)
    print(f"best (<= {args.max_changes} changes per switch): {setting_text(best)}: settled "
          f"{best['settled_accuracy']:.4f}, caught {best['switch_catch_rate']:.4f}, "
          f"{best['label_changes_per_switch']:.2f} changes per switch")
    if args.store:
        store_settings(path, best)
        print(f"stored in {path} (extra['decoder'])")
    return 0


def store_settings(checkpoint, settings: dict, also: dict | None = None) -> None:
    """Write decoder ``settings`` into ``checkpoint``'s ``extra["decoder"]`` (atomically; the
    weights and everything else stay as they are); ``challenger_ema`` and ``release*`` only when
    set; ``also``: entries stored beside them as they are (the learned rule's network).  Settings of the HMM rule (``rule="hmm"``) are added to the EMA rule's settings the
    checkpoint already stores (``ema`` 0, ``hysteresis`` 0 where it stores none), so that
    ``decoder.rule = "ema"`` brings those back."""
    raw = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if settings.get("rule") == "hmm":
        old = (raw.get("extra") or {}).get("decoder") or {}
        stored = {k: v for k, v in old.items() if k in KEYS}
        stored.setdefault("ema", 0.0)
        stored.setdefault("hysteresis", 0.0)
        stored["dwell"] = int(settings.get("dwell", 1))
        stored["rule"] = "hmm"
        for key in HMM_KEYS[1:]:
            if settings.get(key) is not None:
                stored[key] = int(settings[key]) if key == "hazard_ramp" else float(settings[key])
    else:
        stored = {"ema": float(settings["ema"]), "hysteresis": float(settings["hysteresis"]),
                  "dwell": int(settings["dwell"])}
        for key in ("challenger_ema", "release", "release_hysteresis"):
            if settings.get(key) is not None:
                stored[key] = float(settings[key])
    stored.update(also or {})
    raw.setdefault("extra", {})["decoder"] = stored
    tmp = f"{checkpoint}.tmp"
    torch.save(raw, tmp)
    os.replace(tmp, checkpoint)


if __name__ == "__main__":
    from eventpipe.errors import run_tool

    sys.exit(run_tool(main, "python -m eventpipe.training.decoder_tune"))
