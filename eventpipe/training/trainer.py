"""The training loop: AdamW/LAMB, warm-up + cosine, label smoothing, clipping, AMP and
channels-last on CUDA only, checkpoints with their recipe, resume, evaluation, curves,
and DDP under ``torchrun`` (gloo on CPU, nccl on CUDA).

Files in ``out_dir``: ``last.pt`` (train state: model checkpoint + optimizer, step,
epoch, history; resumable), ``best.pt`` / ``final.pt`` (``snn`` checkpoints),
``history.json``, ``curves.png``, ``train.log``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, SequentialSampler

import snn
from eventpipe.training.augment import time_reverse_map
from eventpipe.training.checkpoints import build_model, load_train_state, save_model, save_train_state
from eventpipe.training.config import TrainConfig
from eventpipe.training.datasets import build_dataset
from eventpipe.training.decoded_loss import (  # noqa: F401 (held_for: its home before)
    decoded_margin_loss, direction_loss, held_for, transition_loss)
from eventpipe.training.optim import lr_at, make_optimizer
from eventpipe.training.robust import Perturbation, noise_enabled, perturbation_kl, validate_noise



# ----------------------------------------------------------------------------- distributed
def dist_env() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` from the torchrun environment (1 process: 0, 1, 0)."""
    return (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
            int(os.environ.get("LOCAL_RANK", 0)))


def init_distributed(device: torch.device) -> bool:
    rank, world, _ = dist_env()
    if world <= 1:
        return False
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=world)
    return True


def pick_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        return torch.device("cuda", dist_env()[2])
    return torch.device(name)


# ----------------------------------------------------------------------------- loop
def _loader(ds, batch_size, train, distributed, seed, num_workers):
    if distributed:
        sampler = DistributedSampler(ds, shuffle=train, seed=seed, drop_last=train)
    elif train:
        sampler = RandomSampler(ds, generator=torch.Generator().manual_seed(seed))
    else:
        sampler = SequentialSampler(ds)
    return DataLoader(ds, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                      drop_last=train and len(ds) >= batch_size, persistent_workers=False)


def _to_input(x: torch.Tensor, device) -> torch.Tensor:
    """Loader batch ``[B, T, C, H, W]`` -> model input ``[T, B, C, H, W]`` on ``device``."""
    return x.to(device, non_blocking=True).transpose(0, 1).contiguous()


def logits_and_targets(model, x: torch.Tensor, y: torch.Tensor, per_step_loss: bool = False):
    """The logits the loss sees and their targets, flattened to ``[N, classes]`` / ``[N]``.

    ``y`` of shape ``[B]`` is one label per clip: the clip logits (mean over T), or with
    ``per_step_loss`` every step's logits against the clip label (TET).  ``y`` of shape
    ``[B, T]`` is one target per window (stream data): every step's logits against its own
    target, :data:`~eventpipe.training.stream_data.IGNORE` targets carry no loss."""
    if y.dim() == 2:
        seq = model(x, per_step=True).float()                 # [T, B, classes]
        return seq.transpose(0, 1).flatten(0, 1), y.flatten()
    if per_step_loss:
        seq = model(x, per_step=True).float()
        return seq.flatten(0, 1), y.repeat(seq.shape[0])
    return model(x).float(), y


@torch.no_grad()
def evaluate(model, loader, device, num_classes, amp=False) -> Dict[str, Any]:
    """Loss, accuracy and confusion matrix (rows = truth, columns = prediction); per clip, or
    per window for per-window targets (ignored windows left out)."""
    model.eval()
    conf = torch.zeros(num_classes, num_classes, dtype=torch.long)
    tot_loss, n = 0.0, 0
    for x, y, *_ in loader:
        x = _to_input(x, device)
        y = y.to(device)
        with torch.autocast(device.type, enabled=amp and device.type == "cuda"):
            logits, y = logits_and_targets(model, x, y)
        keep = y >= 0
        logits, y = logits[keep], y[keep]
        tot_loss += float(F.cross_entropy(logits.float(), y, reduction="sum"))
        conf += torch.bincount(y.cpu() * num_classes + logits.argmax(1).cpu(),
                               minlength=num_classes * num_classes).reshape(num_classes, num_classes)
        n += len(y)
    acc = float(conf.diag().sum()) / max(1, n)
    return dict(loss=tot_loss / max(1, n), accuracy=acc, confusion=conf.tolist(), n=n)


def weighted_cross_entropy(logits, y, weight=None, label_smoothing=0.0):
    """Mean cross-entropy over the targets that are not ignored (``y < 0``), each weighted by
    ``weight`` (per target; ``None`` = 1)."""
    if weight is None:
        return F.cross_entropy(logits, y, label_smoothing=label_smoothing)
    per = F.cross_entropy(logits, y, reduction="none", label_smoothing=label_smoothing)
    w = weight * (y >= 0)
    return (per * w).sum() / w.sum().clamp_min(1e-12)


def consistency_loss(logits: torch.Tensor, y: torch.Tensor, settle: int = 0) -> torch.Tensor:
    """Mean squared change of the class probabilities between consecutive windows with the same
    (not ignored) target: ``logits [B * R, C]`` and ``y [B, R]`` as
    :func:`logits_and_targets` flattens them.  With ``settle`` > 0 only the pairs whose later
    window's target has been the same valid class for at least ``settle`` windows of the run
    (itself included; the windows after a switch, where the label must change, are free).
    0 when no pair qualifies."""
    b, r = y.shape
    p = torch.softmax(logits.reshape(b, r, -1), -1)
    same = (y[:, 1:] == y[:, :-1]) & (y[:, 1:] >= 0)
    if settle > 0:
        held = held_for(y)[:, 1:]
        same &= held >= max(2, int(settle))
    if not bool(same.any()):
        return logits.sum() * 0.0
    d = (p[:, 1:] - p[:, :-1]).pow(2).sum(-1)
    return d[same].mean()


def clip_test_accuracy(model, d, device, seed: int = 0) -> float:
    """Accuracy of ``model`` on the held-out clips of the clip set ``d`` (the ``aux_data`` of a
    stream fine-tune): what ``eventpipe eval`` reports for that set."""
    ds = build_dataset(d, "test", train=False, seed=seed)
    loader = DataLoader(ds, batch_size=32, shuffle=False)
    return round(float(evaluate(model.to(device), loader, device, len(ds.class_names))["accuracy"]), 4)


def freeze_batchnorm(model: torch.nn.Module) -> None:
    """BatchNorm layers normalise with (and keep) their running statistics; affine terms still train."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()


def plot_curves(history: List[dict], path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not history:
        return
    ep = [h["epoch"] for h in history]
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.8))
    ax[0].plot(ep, [h["train_loss"] for h in history], "o-", label="train")
    te = [(h["epoch"], h["test_loss"]) for h in history if h.get("test_loss") is not None]
    if te:
        ax[0].plot(*zip(*te), "s-", label="test")
    ax[0].set_xlabel("epoch"); ax[0].set_ylabel("loss"); ax[0].legend(); ax[0].grid(alpha=0.3)
    ax[1].plot(ep, [h["train_acc"] for h in history], "o-", label="train (augmented)")
    ta = [(h["epoch"], h["test_acc"]) for h in history if h.get("test_acc") is not None]
    if ta:
        ax[1].plot(*zip(*ta), "s-", label="test")
    ax[1].set_xlabel("epoch"); ax[1].set_ylabel("clip accuracy"); ax[1].set_ylim(0, 1.02)
    ax[1].legend(); ax[1].grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


class _Log:
    """The job's messages: to ``log`` and ``out_dir/train.log`` on rank 0, nothing elsewhere."""

    def __init__(self, out: Path, is_main: bool, log):
        self.is_main, self.log = is_main, log
        self.f = open(out / "train.log", "a") if is_main else None

    def say(self, msg: str) -> None:
        if self.is_main:
            self.log(msg)
            self.f.write(msg + "\n")
            self.f.flush()

    def step_line(self, msg: str) -> None:
        """A line for the file only (per-step figures)."""
        if self.is_main:
            self.f.write(msg + "\n")
            self.f.flush()

    def close(self) -> None:
        if self.f is not None:
            self.f.close()
            self.f = None


@dataclass
class _Job:
    """Everything one training job holds, explicit: set up by :func:`train`, used by its steps."""

    cfg: TrainConfig
    device: torch.device
    distributed: bool
    is_main: bool
    world: int
    out: Path
    log: _Log
    class_names: List[str]
    model: torch.nn.Module = None
    ddp_model: torch.nn.Module = None
    optimizer: Any = None
    scaler: Any = None
    amp: bool = False
    partner: Optional[torch.Tensor] = None
    aux_batches: Any = None
    perturb: Optional[Perturbation] = None
    fwd: Any = None
    step: int = 0
    total: int = 0
    warmup: int = 0

    def lr(self) -> float:
        o = self.cfg.optim
        return lr_at(self.step, self.total, self.warmup, o.lr, o.min_lr_ratio)

    def done(self) -> bool:
        return bool(self.cfg.max_steps and self.step >= self.cfg.max_steps)


def _set_up_process(cfg: TrainConfig):
    """Check the options, pick the device and threads, join the process group, seed:
    ``(world, device, distributed, is_main)``."""
    rank, world, _ = dist_env()
    validate_noise(cfg.optim)
    if world > 1 and noise_enabled(cfg.optim):
        raise ValueError("optim.noise_*: training with perturbations runs in one process, not under torchrun")
    device = pick_device(cfg.device)
    if device.type == "cpu":
        torch.set_num_threads(max(1, int(cfg.threads)))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    distributed = init_distributed(device)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    return world, device, distributed, rank == 0


def _datasets(cfg: TrainConfig, distributed: bool, is_main: bool):
    """``(train, test, aux or None)``; rank 0 builds the caches first so the others only read them."""
    if distributed and not is_main:
        torch.distributed.barrier()
    progress = is_main and cfg.progress
    train_ds = build_dataset(cfg.data, "train", progress=progress, seed=cfg.seed)
    test_ds = build_dataset(cfg.data, "test", train=False, progress=progress, seed=cfg.seed)
    aux_ds = None
    if cfg.aux_data is not None:
        aux_ds = build_dataset(cfg.aux_data, "train", progress=progress, seed=cfg.seed)
        if list(aux_ds.class_names) != list(train_ds.class_names):
            raise ValueError("aux_data has other classes than data: "
                             f"{list(aux_ds.class_names)[:4]}... vs {list(train_ds.class_names)[:4]}...")
    if distributed and is_main:
        torch.distributed.barrier()
    return train_ds, test_ds, aux_ds


def _build(job: _Job) -> None:
    """The model (from ``init`` if set), its optimizer and AMP scaler."""
    cfg, device = job.cfg, job.device
    model = build_model(cfg, len(job.class_names)).to(device)
    use_cuda = device.type == "cuda"
    job.amp = bool(cfg.optim.amp and use_cuda)
    if cfg.optim.channels_last and use_cuda:
        model = model.to(memory_format=torch.channels_last)
    job.model = model
    job.optimizer = make_optimizer(model, cfg.optim)
    job.scaler = torch.amp.GradScaler("cuda", enabled=job.amp)
    if cfg.init and not cfg.resume:
        m0, _ = snn.load_checkpoint(cfg.init)
        try:
            model.load_state_dict(m0.state_dict(), strict=True)
        except RuntimeError as e:
            raise ValueError(f"init={cfg.init}: its weights do not fit the [model] of this config "
                             f"({str(e).splitlines()[0]})") from e
        job.log.say(f"initialised from {cfg.init}")


def _resume(job: _Job):
    """Load ``resume`` (``"auto"``: ``out_dir/last.pt`` if there): ``(start_epoch, best_acc, history)``."""
    resume = job.cfg.resume
    if resume == "auto":
        resume = str(job.out / "last.pt") if (job.out / "last.pt").is_file() else ""
    if not resume:
        return 0, -1.0, []
    st = load_train_state(resume)
    job.model.load_state_dict(st["checkpoint"]["state_dict"], strict=True)
    job.optimizer.load_state_dict(st["optimizer"])
    job.step = int(st["step"])
    job.log.say(f"resumed from {resume}: epoch {int(st['epoch'])}, step {job.step}")
    return int(st["epoch"]), float(st["best_acc"]), list(st["history"])


def _wrap_ddp(job: _Job) -> None:
    job.ddp_model = job.model
    if job.distributed:
        from torch.nn.parallel import DistributedDataParallel as DDP

        job.ddp_model = DDP(job.model, device_ids=[job.device.index] if job.device.type == "cuda" else None)


def _cycle(loader):
    """Endless batches of ``loader``, a new sampler epoch each pass."""
    epoch = 0
    while True:
        if hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


def _perturbation(job: _Job) -> None:
    """``optim.noise_*`` (eventpipe.training.robust, off by default) and the forward the loss calls."""
    o = job.cfg.optim
    if noise_enabled(o):
        job.perturb = Perturbation(job.model, lif_std=o.noise_lif_std, weight_std=o.noise_weight_std,
                                   seed=job.cfg.seed + 7919, device=job.device)
        job.log.say(f"perturbed training: LIF input noise {o.noise_lif_std} thresholds, weight noise "
                    f"{o.noise_weight_std}, " + (f"consistency KL x {o.noise_consistency_weight}"
                                                 if o.noise_consistency_weight > 0 else "in every pass"))
    no_kl = job.perturb is not None and o.noise_consistency_weight == 0
    job.fwd = job.perturb if no_kl else job.ddp_model


def _stream_terms(job: _Job, logits, y):
    """The per-window terms of stream data (``y`` of shape ``[B, T]``): settled consistency,
    the decoded hinge, the transition hinge, the direction loss, each where its weight is set."""
    o = job.cfg.optim
    loss = 0.0
    if o.consistency_weight > 0:
        loss = loss + o.consistency_weight * consistency_loss(logits, y, o.consistency_settle)
    if o.decoded_weight > 0:
        loss = loss + o.decoded_weight * decoded_margin_loss(
            logits, y, ema=o.decoded_ema, margin=o.decoded_margin, start=o.decoded_start,
            focus_end=o.decoded_focus_end, focus_weight=o.decoded_focus_weight)
    if o.transition_weight > 0:
        loss = loss + o.transition_weight * transition_loss(
            logits, y, ema=o.decoded_ema, margin=o.transition_margin, start=o.decoded_start)
    if o.direction_weight > 0:
        loss = loss + o.direction_weight * direction_loss(logits, y, job.partner, margin=o.direction_margin)
    return loss


def _batch_loss(job: _Job, x, y, rest):
    """One batch's loss: ``(loss, logits, targets)`` (logits and targets flattened as the loss saw them)."""
    o, device = job.cfg.optim, job.device
    logits, yy = logits_and_targets(job.fwd, x, y, o.per_step_loss)
    weight = rest[0].to(device).flatten() if rest else None
    loss = weighted_cross_entropy(logits, yy, weight, o.label_smoothing)
    if job.perturb is not None and o.noise_consistency_weight > 0:
        lp, _ = logits_and_targets(job.perturb, x, y, o.per_step_loss)
        loss = loss + o.noise_consistency_weight * perturbation_kl(logits, lp)
    if y.dim() == 2:
        loss = loss + _stream_terms(job, logits, y)
    if job.aux_batches is not None:
        xa, ya, *ra = next(job.aux_batches)
        la, ta = logits_and_targets(job.fwd, _to_input(xa, device), ya.to(device), o.per_step_loss)
        wa = ra[0].to(device).flatten() if ra else None
        loss = loss + o.aux_weight * weighted_cross_entropy(la, ta, wa, o.label_smoothing)
    return loss, logits, yy


def _update(job: _Job, loss) -> None:
    """Backward, clip, step (through the AMP scaler)."""
    job.optimizer.zero_grad(set_to_none=True)
    job.scaler.scale(loss).backward()
    if job.cfg.optim.clip_grad > 0:
        job.scaler.unscale_(job.optimizer)
        torch.nn.utils.clip_grad_norm_(job.model.parameters(), job.cfg.optim.clip_grad)
    job.scaler.step(job.optimizer)
    job.scaler.update()
    job.step += 1


def _start_epoch(job: _Job, loader, train_ds, epoch: int):
    """Seed the epoch's order, train mode (BN frozen if asked), the progress bar: ``(batches, bar)``."""
    cfg = job.cfg
    if hasattr(loader.sampler, "set_epoch"):
        loader.sampler.set_epoch(epoch)
    if isinstance(loader.sampler, RandomSampler):
        loader.sampler.generator.manual_seed(cfg.seed * 1000 + epoch)
    if hasattr(train_ds, "set_epoch"):
        train_ds.set_epoch(epoch)
    job.ddp_model.train()
    if cfg.optim.freeze_bn:
        freeze_batchnorm(job.model)
    if not (job.is_main and cfg.progress):
        return loader, None
    from tqdm import tqdm

    bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.optim.epochs}", dynamic_ncols=True, mininterval=5.0)
    return bar, bar


def _train_epoch(job: _Job, loader, train_ds, epoch: int, t_start: float):
    """One pass over the training batches (or up to ``max_steps``): ``(loss sum, right, counted)``."""
    cfg = job.cfg
    it, bar = _start_epoch(job, loader, train_ds, epoch)
    tl, tc, tn = 0.0, 0, 0
    for x, y, *rest in it:
        lr = job.lr()
        for g in job.optimizer.param_groups:
            g["lr"] = lr
        x = _to_input(x, job.device)
        y = y.to(job.device)
        with torch.autocast(job.device.type, enabled=job.amp):
            loss, logits, yy = _batch_loss(job, x, y, rest)
        if not bool((yy >= 0).any()):
            continue  # every window of the batch is ignored: no loss to follow
        if y.dim() == 1 and cfg.optim.per_step_loss:
            logits, yy = logits.reshape(-1, len(y), logits.shape[-1]).mean(0), y  # clip accuracy
        _update(job, loss)
        keep = yy >= 0
        nk = int(keep.sum())
        tl += float(loss.detach()) * nk
        tc += int((logits.detach().argmax(1)[keep] == yy[keep]).sum())
        tn += nk
        if bar is not None:
            bar.set_postfix(loss=f"{tl / tn:.3f}", acc=f"{tc / tn:.3f}", lr=f"{lr:.2e}")
        if cfg.log_every and job.step % cfg.log_every == 0:
            job.log.step_line(f"step {job.step} loss {tl / tn:.4f} acc {tc / tn:.4f} lr {lr:.3e} "
                              f"t {time.time() - t_start:.0f}s")
        if job.done():
            break
    if bar is not None:
        bar.close()
    return tl, tc, tn


def _end_epoch(job: _Job, epoch: int, rec: dict, test_loader, best_acc: float, history: list):
    """Evaluate (when due), keep ``best.pt``, write ``last.pt``, the history and curves:
    ``(best_acc, the evaluation or None)``."""
    cfg, out = job.cfg, job.out
    done = epoch + 1 == cfg.optim.epochs or job.done()
    ev = None
    if job.is_main and (done or (cfg.eval_every and (epoch + 1) % cfg.eval_every == 0)):
        ev = evaluate(job.model, test_loader, job.device, len(job.class_names), job.amp)
        rec.update(test_loss=ev["loss"], test_acc=ev["accuracy"])
        if ev["accuracy"] > best_acc:
            best_acc = ev["accuracy"]
            save_model(out / "best.pt", job.model, job.class_names, cfg, epoch=epoch + 1, step=job.step,
                       test_accuracy=best_acc)
    history.append(rec)
    if job.is_main:
        job.log.say(f"epoch {epoch + 1}: train loss {rec['train_loss']:.4f} acc {rec['train_acc']:.4f}"
                    + (f" | test loss {rec['test_loss']:.4f} acc {rec['test_acc']:.4f}"
                       if rec["test_acc"] is not None else "")
                    + f" | {rec['time_s']:.0f}s")
        save_train_state(out / "last.pt", job.model, job.optimizer, job.class_names, cfg, step=job.step,
                         epoch=epoch + 1, best_acc=best_acc, history=history)
        (out / "history.json").write_text(json.dumps(history, indent=1))
        plot_curves(history, out / "curves.png")
    return best_acc, ev


def _export(job: _Job) -> str:
    """Copy ``best.pt`` (``export_best``) or ``final.pt`` to ``export`` with what the runtime and
    the docs' figures need in ``extra``."""
    cfg, out = job.cfg, job.out
    src = out / ("best.pt" if cfg.export_best and (out / "best.pt").is_file() else "final.pt")
    m, meta = snn.load_checkpoint(src)
    more = {k: v for k, v in meta["extra"].items() if k in ("epoch", "step", "test_accuracy")}
    if cfg.aux_data is not None and cfg.aux_data.dataset == "synthetic":
        more["clip_test_accuracy"] = clip_test_accuracy(m, cfg.aux_data, job.device, cfg.seed)
        job.log.say(f"clip test accuracy of the export: {more['clip_test_accuracy']:.4f}")
    if cfg.made_by:
        more["made_by"] = cfg.made_by
    save_model(cfg.export, m, job.class_names, cfg, fp16=cfg.export_fp16, **more)
    job.log.say(f"exported {src.name} -> {cfg.export}")
    return cfg.export


def train(cfg: TrainConfig, log=print) -> Dict[str, Any]:
    """Run a training job described by ``cfg``; returns a summary (best/final accuracy, step,
    history, out_dir, and ``model``: the trained, unwrapped model of this rank)."""
    world, device, distributed, is_main = _set_up_process(cfg)
    train_ds, test_ds, aux_ds = _datasets(cfg, distributed, is_main)
    # out_dir and its log only once the data has loaded: a data error leaves nothing behind
    out = Path(cfg.out_dir)
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
    class_names = list(train_ds.class_names)
    job = _Job(cfg, device, distributed, is_main, world, out, _Log(out, is_main, log), class_names,
               partner=torch.from_numpy(time_reverse_map(class_names)))
    try:
        return _run(job, train_ds, test_ds, aux_ds)
    finally:
        if job.perturb is not None:
            job.perturb.close()
        job.log.close()


def _run(job: _Job, train_ds, test_ds, aux_ds) -> Dict[str, Any]:
    cfg, say = job.cfg, job.log.say
    _build(job)
    start_epoch, best_acc, history = _resume(job)
    _wrap_ddp(job)
    bs = int(cfg.optim.batch_size)
    train_loader = _loader(train_ds, bs, True, job.distributed, cfg.seed, cfg.num_workers)
    test_loader = _loader(test_ds, max(bs, 32), False, False, cfg.seed, cfg.num_workers)
    if aux_ds is not None:
        job.aux_batches = _cycle(_loader(aux_ds, int(cfg.optim.aux_batch_size), True, job.distributed,
                                         cfg.seed + 1, cfg.num_workers))
    steps_per_epoch = len(train_loader)
    job.total = steps_per_epoch * cfg.optim.epochs
    job.warmup = int(round(cfg.optim.warmup_epochs * steps_per_epoch))
    n_params = sum(p.numel() for p in job.model.parameters())
    say(f"model {cfg.model.name} {n_params:,} params | classes {len(job.class_names)} | train {len(train_ds)} "
        f"test {len(test_ds)} | T={cfg.data.T} window={cfg.data.window_us}us input (W, H)={tuple(cfg.data.input_size)} "
        f"| device {job.device} world {job.world} | {steps_per_epoch} steps/epoch x {cfg.optim.epochs}")
    _perturbation(job)

    t_start = time.time()
    last_eval: Optional[dict] = None
    for epoch in range(start_epoch, cfg.optim.epochs):
        if job.done():
            break
        tl, tc, tn = _train_epoch(job, train_loader, train_ds, epoch, t_start)
        if job.distributed:
            # BN running statistics are per rank: make every rank hold rank 0's
            for b in job.model.buffers():
                torch.distributed.broadcast(b.data, 0)
        rec = dict(epoch=epoch + 1, step=job.step, train_loss=tl / max(1, tn), train_acc=tc / max(1, tn),
                   lr=job.lr(), time_s=time.time() - t_start, test_loss=None, test_acc=None)
        best_acc, ev = _end_epoch(job, epoch, rec, test_loader, best_acc, history)
        last_eval = ev or last_eval
        if job.distributed:
            torch.distributed.barrier()

    summary: Dict[str, Any] = dict(out_dir=str(job.out), step=job.step, best_acc=best_acc, history=history,
                                   final_acc=last_eval["accuracy"] if last_eval else None, model=job.model)
    if job.is_main:
        save_model(job.out / "final.pt", job.model, job.class_names, cfg, step=job.step,
                   test_accuracy=summary["final_acc"])
        if last_eval is not None:
            (job.out / "confusion.json").write_text(json.dumps(dict(class_names=job.class_names, **last_eval)))
        if cfg.export:
            summary["export"] = _export(job)
        say(f"done: best test acc {best_acc:.4f}, final {summary['final_acc']}")
    if job.distributed:
        torch.distributed.barrier()
    return summary
