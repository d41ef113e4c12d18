"""Quantisation-aware fine-tuning: make a float checkpoint's labels survive the chip's integers.

A short run from a trained float model.  Each step runs the float model and its chip twin
(:class:`~snn.backends.chip.simulate.ChipSim` with the model's *live* weights: int8 per output
channel, integer biases, the LIF's ``>> 1``, integer thresholds, the input table - straight-through
gradients) on the same integer count frames and minimises

    hard * (CE(float clip logits, y) + CE(chip clip logits, y))
    + consistency * mean over steps of the symmetric KL between the float and chip step softmaxes
    + distill * mean over steps of (KL(teacher || float) + KL(teacher || chip))

where the teacher is the input model, frozen (distillation: the float model stays anchored to what
it was instead of drifting towards the few training labels), and both forms agree step by step
(stream labels are per step); stream runs add the same terms per window.  BatchNorm statistics stay frozen (eval mode: the folded weights are a function of the
trainable parameters only).  Every ``recompile_every`` steps the program is compiled again from
the current weights, so the twin's scales follow the weights.  CPU-cheap: minutes for the shipped
model on one core.

Data: integer counts ``[T, N, C, H, W]`` clips with labels, optionally stream runs ``[R, N, C, H, W]``
with per-window targets (-1: none) - :func:`synthetic_data` makes both from the synthetic set.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable, Dict, Optional

import numpy as np
import torch
import torch.nn.functional as F

from .compile import compile as chip_compile
from .compile import load_model, normalise
from .simulate import ChipSim


@dataclasses.dataclass
class FinetuneData:
    clips: np.ndarray                    # [T, N, C, H, W] integer counts
    labels: np.ndarray                   # [N]
    runs: Optional[np.ndarray] = None    # [R, M, C, H, W] integer counts (stream windows, from rest)
    run_targets: Optional[np.ndarray] = None  # [R, M], -1 = no target
    calibration: Optional[np.ndarray] = None  # [T, n, C, H, W] clips to calibrate the compile on


def synthetic_data(n_clips: int = 240, n_streams: int = 4, stream_seconds: float = 30.0, run_windows: int = 24,
                   seed: int = 0, input_size=(64, 64), sensor_size=(128, 128), T: int = 8,
                   progress: bool = False, channels: str = "polarity") -> FinetuneData:
    """Training clips (``split="train"``) and runs of training-stream windows (seeds 10000+, the
    stage-2 training seeds; the runtime's windowing), as integer counts of the model's input
    ``channels`` (its recipe's: ``polarity`` or ``halves``)."""
    from eventpipe.runtime.chip_counts import count_clips, count_stream

    clips = count_clips(n_clips, seed=seed, split="train", sensor_size=sensor_size, input_size=input_size, T=T,
                        progress=progress, channels=channels)
    labels = np.arange(n_clips) % 12
    runs, targets = [], []
    for s in range(n_streams):
        counts, truth = count_stream(10000 + s, seconds=stream_seconds, sensor_size=sensor_size,
                                     input_size=input_size, channels=channels)
        for a in range(0, len(counts) - run_windows + 1, run_windows // 2):
            runs.append(counts[a:a + run_windows])
            targets.append(truth[a:a + run_windows])
    cal = clips[:2].transpose(1, 0, 2, 3, 4)   # the runtime's calibration: the first 2 training clips of seed 0
    if not runs:
        return FinetuneData(clips.transpose(1, 0, 2, 3, 4), labels, calibration=cal)
    return FinetuneData(clips.transpose(1, 0, 2, 3, 4), labels, np.stack(runs, 1), np.stack(targets, 1), cal)


def _sym_kl(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    la, lb = F.log_softmax(a, -1), F.log_softmax(b, -1)
    return 0.5 * ((la.exp() * (la - lb)).sum(-1) + (lb.exp() * (lb - la)).sum(-1)).mean()


def _agree(model, sim: ChipSim, clips, enc) -> float:
    with torch.no_grad():
        f, _ = model.run(normalise(clips, enc))
        q, _ = sim.run(torch.from_numpy(np.asarray(clips, np.int64)))
    return float((f.mean(0).argmax(1) == q.sum(0).argmax(1)).double().mean())


def finetune(model_or_checkpoint, data: FinetuneData, *, threads: int = 1, **kw):
    """Fine-tune a float model (or checkpoint path) with the chip's quantisation in the loop.

    Keywords: ``profile``, ``steps``, ``lr`` (AdamW, cosine to 0), ``batch`` (clips per step),
    ``run_batch`` (stream runs per step), ``consistency``, ``recompile_every``, ``clip_grad``,
    ``seed``, ``hard`` (weight of the cross-entropy with the labels), ``distill`` (weight of the KL from
    the frozen input model's step outputs to both forms: distillation), ``margin`` (weight of the
    margin loss: the chip's membranes near their thresholds, :func:`~snn.backends.chip.simulate.near_threshold`
    averaged over LIF ops and steps, within ``margin_width`` of ``V_th``), ``snapshot(model, step)``
    (called at each recompile), ``compile_kw`` (``input_size`` / ``encoding`` / ``sensor_size`` for
    :func:`~snn.backends.chip.compile.compile`), ``log``, ``progress``.  Runs on ``threads`` torch
    threads (default 1: the twin's many small float64 ops gain nothing from more and stall on a
    busy machine; the previous setting is restored).

    Returns ``(model, history)``; the model is a fine-tuned copy in eval mode; ``history`` has the
    per-step losses and, at each recompile, the twin's clip agreement on (up to 48 of) the training
    clips."""
    prev = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        return _finetune(model_or_checkpoint, data, **kw)
    finally:
        torch.set_num_threads(prev)


def _kl_to(teacher: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
    """``KL(softmax(teacher) || softmax(student))``, mean over rows (the teacher is a constant)."""
    lt = F.log_softmax(teacher.detach(), -1)
    return (lt.exp() * (lt - F.log_softmax(student, -1))).sum(-1).mean()


def _finetune(model_or_checkpoint, data: FinetuneData, *, profile="generic", steps: int = 200, lr: float = 1e-4,
              batch: int = 8, run_batch: int = 2, consistency: float = 1.0, recompile_every: int = 50,
              clip_grad: float = 1.0, seed: int = 0, compile_kw: Optional[dict] = None, hard: float = 1.0,
              distill: float = 0.0, margin: float = 0.0, margin_width: float = 0.05,
              log: Optional[Callable[[str], None]] = None, progress: bool = False,
              snapshot: Optional[Callable[[object, int], None]] = None):
    import copy

    kw = dict(compile_kw or {})
    cal = [data.calibration] if data.calibration is not None else None
    first = chip_compile(model_or_checkpoint, profile=profile, calibration=cal, **kw)
    model, meta = load_model(model_or_checkpoint)
    model = copy.deepcopy(model).eval()
    # the teacher: the input model, frozen - distilling its step outputs anchors the accuracy
    teacher = copy.deepcopy(model).eval().requires_grad_(False) if distill > 0 else None
    # later compiles start from the module: keep the checkpoint's input geometry and encoding
    fixed = dict(profile=profile, calibration=cal, input_size=tuple(first.meta["input_size"]),
                 encoding=first.meta["encoding"])
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)

    def build():
        prog = chip_compile(model, **fixed)
        return prog, ChipSim(prog, model)

    prog, sim = build()
    enc = prog.meta["encoding"]
    ls = float(prog.logit_scale)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5 * (1 + math.cos(math.pi * min(i, steps) / steps)))
    n = data.clips.shape[1]
    probe = data.clips[:, : min(n, 48)]
    hist: Dict[str, list] = {"loss": [], "ce_float": [], "ce_chip": [], "kl": [], "agree": [], "near": []}
    hist["agree"].append((0, _agree(model, sim, probe, enc)))
    say = log or (lambda s: None)
    say(f"chip fine-tune: start, twin clip agreement {hist['agree'][-1][1]:.4f} on {probe.shape[1]} training clips")
    it = range(steps)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="chip fine-tune", dynamic_ncols=True)
    t0 = time.perf_counter()
    for i in it:
        idx = rng.choice(n, size=min(batch, n), replace=False)
        x = data.clips[:, idx]
        y = torch.from_numpy(np.asarray(data.labels)[idx]).long()
        terms: list = []
        mg = (margin_width, terms) if margin > 0 else None
        f, _ = model.run(normalise(x, enc))
        q, _ = sim.run(torch.from_numpy(np.asarray(x, np.int64)), margin=mg)
        q = q.float() * ls
        ce_f = F.cross_entropy(f.mean(0), y)
        ce_q = F.cross_entropy(q.mean(0), y)
        kl = _sym_kl(f.flatten(0, 1), q.flatten(0, 1))
        loss = hard * (ce_f + ce_q) + consistency * kl
        if teacher is not None:
            with torch.no_grad():
                tf, _ = teacher.run(normalise(x, enc))
            tf = tf.flatten(0, 1)
            loss = loss + distill * (_kl_to(tf, f.flatten(0, 1)) + _kl_to(tf, q.flatten(0, 1)))
        if data.runs is not None and run_batch > 0:
            j = rng.choice(data.runs.shape[1], size=min(run_batch, data.runs.shape[1]), replace=False)
            xr = data.runs[:, j]
            tr = torch.from_numpy(np.asarray(data.run_targets)[:, j]).long().flatten()
            fr, _ = model.run(normalise(xr, enc))
            qr, _ = sim.run(torch.from_numpy(np.asarray(xr, np.int64)), margin=mg)
            fr, qr = fr.flatten(0, 1), qr.float().flatten(0, 1) * ls
            ok = tr >= 0
            if ok.any() and hard > 0:
                loss = loss + hard * (F.cross_entropy(fr[ok], tr[ok]) + F.cross_entropy(qr[ok], tr[ok]))
            loss = loss + consistency * _sym_kl(fr, qr)
            if teacher is not None:
                with torch.no_grad():
                    tr_, _ = teacher.run(normalise(xr, enc))
                tr_ = tr_.flatten(0, 1)
                loss = loss + distill * (_kl_to(tr_, fr) + _kl_to(tr_, qr))
        if terms:
            near = torch.stack(terms).mean()
            loss = loss + margin * near
            hist["near"].append(float(near.detach()))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip_grad:
            torch.nn.utils.clip_grad_norm_(params, clip_grad)
        opt.step()
        sched.step()
        hist["loss"].append(float(loss.detach()))
        hist["ce_float"].append(float(ce_f.detach()))
        hist["ce_chip"].append(float(ce_q.detach()))
        hist["kl"].append(float(kl.detach()))
        if (i + 1) % recompile_every == 0 or i + 1 == steps:
            prog, sim = build()
            ls = float(prog.logit_scale)
            hist["agree"].append((i + 1, _agree(model, sim, probe, enc)))
            say(f"chip fine-tune: step {i + 1}/{steps}, loss {np.mean(hist['loss'][-recompile_every:]):.4f}, "
                f"twin clip agreement {hist['agree'][-1][1]:.4f} ({time.perf_counter() - t0:.0f} s)")
            if snapshot is not None:   # e.g. save the model so far (long runs on a busy machine)
                snapshot(model, i + 1)
    return model.eval(), hist



def save_finetuned(path, model, meta, history, settings: Optional[dict] = None, seconds: Optional[float] = None) -> None:
    """Write the fine-tuned model as an ``snn`` checkpoint with the source's metadata (class names,
    input size, recipe, every ``extra`` entry: decoder settings, accuracies, training config - the
    accuracies are the source's, measured before fine-tuning) and ``extra["chip_finetune"]``: the
    source, the settings, the run time, the twin's agreement on the training probe at each
    recompile and the mean losses of the first and last ten steps.  A source that was itself
    fine-tuned keeps its record under ``previous``."""
    from ...checkpoint import save_checkpoint

    extra = dict(meta.get("extra") or {})
    rec = {"source": meta.get("source"), "settings": dict(settings or {}),
           "twin_clip_agreement": [list(a) for a in history.get("agree", [])]}
    if seconds is not None:
        rec["seconds"] = round(float(seconds), 1)
    for k in ("loss", "kl", "near"):
        v = history.get(k) or []
        if v:
            rec[k] = [float(np.mean(v[:10])), float(np.mean(v[-10:]))]
    if "chip_finetune" in extra:
        rec["previous"] = extra["chip_finetune"]
    extra["chip_finetune"] = rec
    save_checkpoint(path, model, class_names=meta.get("class_names"), input_size=meta.get("input_size"),
                    extra=extra, recipe=meta.get("recipe"))
