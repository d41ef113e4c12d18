"""The training loop: AdamW/LAMB, warm-up + cosine, label smoothing, clipping, AMP and
channels-last on CUDA only, checkpoints with their recipe, resume, evaluation, curves,
and DDP under ``torchrun`` (gloo on CPU, nccl on CUDA).

Files in ``out_dir``: ``last.pt`` (train state: model checkpoint + optimizer, step,
epoch, history; resumable), ``best.pt`` / ``final.pt`` (``snn`` checkpoints),
``history.json``, ``curves.png``, ``train.log``.
"""

from __future__ import annotations

import copy
import io
import json
import os
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, SequentialSampler

import snn
from eventpipe.represent import recipe_to_checkpoint
from eventpipe.training.augment import time_reverse_map
from eventpipe.training.config import TrainConfig, config_dict, data_recipe
from eventpipe.training.datasets import build_dataset
from eventpipe.training.decoded_loss import (  # noqa: F401 (held_for: its home before)
    decoded_margin_loss, direction_loss, held_for, transition_loss)
from eventpipe.training.optim import lr_at, make_optimizer
from eventpipe.training.robust import Perturbation, noise_enabled, perturbation_kl, validate_noise

STATE_FORMAT = "eventpipe.train_state/1"


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


# ----------------------------------------------------------------------------- model + checkpoints
def build_model(cfg: TrainConfig, num_classes: int) -> torch.nn.Module:
    m, d = cfg.model, cfg.data
    kw: Dict[str, Any] = dict(num_classes=int(num_classes), T=int(d.T), in_channels=2,
                              embed_dims=tuple(m.embed_dims), depths=tuple(m.depths),
                              conv_mlp_ratio=int(m.conv_mlp_ratio), mlp_ratio=m.mlp_ratio,
                              num_heads=int(m.num_heads), input_size=data_recipe(d).size)
    kw.update(m.extra)
    return snn.create_model(m.name, **kw)


def recipe_extra(cfg: TrainConfig, **more) -> Dict[str, Any]:
    """Provenance stored in the checkpoint's ``extra`` (the input itself is the recipe:
    :func:`~eventpipe.training.config.data_recipe`)."""
    d = cfg.data
    out = dict(dataset=d.dataset,
               sensor_size=list(d.sensor_size) if d.dataset.startswith("synthetic") else None,
               train_config=config_dict(cfg))
    out.update(more)
    return out


def checkpoint_meta(cfg: TrainConfig, **more) -> Dict[str, Any]:
    """The keyword arguments of ``snn.save_checkpoint`` that describe the input."""
    recipe = data_recipe(cfg.data)
    return dict(input_size=recipe.size, recipe=recipe_to_checkpoint(recipe),
                extra=recipe_extra(cfg, **more))


def _unwrap(model):
    return model.module if hasattr(model, "module") else model


def save_model(path, model, class_names, cfg: TrainConfig, fp16: bool = False, **more) -> None:
    m = _unwrap(model)
    if fp16:
        m = copy.deepcopy(m).half()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    snn.save_checkpoint(tmp, m, class_names=list(class_names),
                        **checkpoint_meta(cfg, fp16=bool(fp16), **more))
    os.replace(tmp, path)


def _checkpoint_payload(model, class_names, cfg, **more) -> dict:
    buf = io.BytesIO()
    snn.save_checkpoint(buf, _unwrap(model), class_names=list(class_names),
                        **checkpoint_meta(cfg, **more))
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def save_train_state(path, model, optimizer, class_names, cfg, *, step, epoch, best_acc, history) -> None:
    state = dict(format=STATE_FORMAT, checkpoint=_checkpoint_payload(model, class_names, cfg),
                 optimizer=optimizer.state_dict(), step=int(step), epoch=int(epoch),
                 best_acc=float(best_acc), history=history, config=config_dict(cfg))
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_train_state(path) -> dict:
    st = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(st, dict) or st.get("format") != STATE_FORMAT:
        raise ValueError(f"{path}: not an eventpipe training state (last.pt)")
    return st


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


def train(cfg: TrainConfig, log=print) -> Dict[str, Any]:
    """Run a training job described by ``cfg``; returns a summary (best/final accuracy, step,
    history, out_dir, and ``model``: the trained, unwrapped model of this rank)."""
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
    is_main = rank == 0
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    # build the caches on rank 0 first so the others only read them
    if distributed and not is_main:
        torch.distributed.barrier()
    train_ds = build_dataset(cfg.data, "train", progress=is_main and cfg.progress, seed=cfg.seed)
    test_ds = build_dataset(cfg.data, "test", train=False, progress=is_main and cfg.progress, seed=cfg.seed)
    aux_ds = None
    if cfg.aux_data is not None:
        aux_ds = build_dataset(cfg.aux_data, "train", progress=is_main and cfg.progress, seed=cfg.seed)
        if list(aux_ds.class_names) != list(train_ds.class_names):
            raise ValueError("aux_data has other classes than data: "
                             f"{list(aux_ds.class_names)[:4]}... vs {list(train_ds.class_names)[:4]}...")
    if distributed and is_main:
        torch.distributed.barrier()
    class_names = list(train_ds.class_names)
    nc = len(class_names)
    # out_dir and its log only once the data has loaded: a data error leaves nothing behind
    out = Path(cfg.out_dir)
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
    logf = open(out / "train.log", "a") if is_main else None

    def say(msg):
        if is_main:
            log(msg)
            logf.write(msg + "\n")
            logf.flush()

    partner = torch.from_numpy(time_reverse_map(class_names))

    model = build_model(cfg, nc).to(device)
    use_cuda = device.type == "cuda"
    amp = bool(cfg.optim.amp and use_cuda)
    if cfg.optim.channels_last and use_cuda:
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, cfg.optim)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)

    if cfg.init and not cfg.resume:
        m0, _ = snn.load_checkpoint(cfg.init)
        try:
            model.load_state_dict(m0.state_dict(), strict=True)
        except RuntimeError as e:
            raise ValueError(f"init={cfg.init}: its weights do not fit the [model] of this config "
                             f"({str(e).splitlines()[0]})") from e
        say(f"initialised from {cfg.init}")
    step, start_epoch, best_acc, history = 0, 0, -1.0, []
    resume = cfg.resume
    if resume == "auto":
        resume = str(out / "last.pt") if (out / "last.pt").is_file() else ""
    if resume:
        st = load_train_state(resume)
        model.load_state_dict(st["checkpoint"]["state_dict"], strict=True)
        optimizer.load_state_dict(st["optimizer"])
        step, start_epoch = int(st["step"]), int(st["epoch"])
        best_acc, history = float(st["best_acc"]), list(st["history"])
        say(f"resumed from {resume}: epoch {start_epoch}, step {step}")

    ddp_model = model
    if distributed:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ddp_model = DDP(model, device_ids=[device.index] if use_cuda else None)

    bs = int(cfg.optim.batch_size)
    train_loader = _loader(train_ds, bs, True, distributed, cfg.seed, cfg.num_workers)
    test_loader = _loader(test_ds, max(bs, 32), False, False, cfg.seed, cfg.num_workers)
    aux_batches = None
    if aux_ds is not None:
        aux_loader = _loader(aux_ds, int(cfg.optim.aux_batch_size), True, distributed, cfg.seed + 1,
                             cfg.num_workers)

        def cycle():
            epoch = 0
            while True:
                if hasattr(aux_loader.sampler, "set_epoch"):
                    aux_loader.sampler.set_epoch(epoch)
                yield from aux_loader
                epoch += 1

        aux_batches = cycle()
    steps_per_epoch = len(train_loader)
    total = steps_per_epoch * cfg.optim.epochs
    warmup = int(round(cfg.optim.warmup_epochs * steps_per_epoch))
    n_params = sum(p.numel() for p in model.parameters())
    say(f"model {cfg.model.name} {n_params:,} params | classes {nc} | train {len(train_ds)} test {len(test_ds)} "
        f"| T={cfg.data.T} window={cfg.data.window_us}us input (W, H)={tuple(cfg.data.input_size)} "
        f"| device {device} world {world} | {steps_per_epoch} steps/epoch x {cfg.optim.epochs}")

    perturb = None
    if noise_enabled(cfg.optim):   # eventpipe.training.robust: off by default
        o = cfg.optim
        perturb = Perturbation(model, lif_std=o.noise_lif_std, weight_std=o.noise_weight_std,
                               seed=cfg.seed + 7919, device=device)
        say(f"perturbed training: LIF input noise {o.noise_lif_std} thresholds, weight noise "
            f"{o.noise_weight_std}, " + (f"consistency KL x {o.noise_consistency_weight}"
                                         if o.noise_consistency_weight > 0 else "in every pass"))
    fwd = perturb if perturb is not None and cfg.optim.noise_consistency_weight == 0 else ddp_model

    t_start = time.time()
    last_eval: Optional[dict] = None
    for epoch in range(start_epoch, cfg.optim.epochs):
        if cfg.max_steps and step >= cfg.max_steps:
            break
        if hasattr(train_loader.sampler, "set_epoch"):
            train_loader.sampler.set_epoch(epoch)
        if isinstance(train_loader.sampler, RandomSampler):
            train_loader.sampler.generator.manual_seed(cfg.seed * 1000 + epoch)
        if hasattr(train_ds, "set_epoch"):
            train_ds.set_epoch(epoch)
        ddp_model.train()
        if cfg.optim.freeze_bn:
            freeze_batchnorm(model)
        it = train_loader
        bar = None
        if is_main and cfg.progress:
            from tqdm import tqdm

            bar = tqdm(train_loader, desc=f"epoch {epoch + 1}/{cfg.optim.epochs}", dynamic_ncols=True,
                       mininterval=5.0)
            it = bar
        tl, tc, tn = 0.0, 0, 0
        for x, y, *rest in it:
            lr = lr_at(step, total, warmup, cfg.optim.lr, cfg.optim.min_lr_ratio)
            for g in optimizer.param_groups:
                g["lr"] = lr
            x = _to_input(x, device)
            y = y.to(device)
            with torch.autocast(device.type, enabled=amp):
                logits, yy = logits_and_targets(fwd, x, y, cfg.optim.per_step_loss)
                weight = rest[0].to(device).flatten() if rest else None
                loss = weighted_cross_entropy(logits, yy, weight, cfg.optim.label_smoothing)
                if perturb is not None and cfg.optim.noise_consistency_weight > 0:
                    lp, _ = logits_and_targets(perturb, x, y, cfg.optim.per_step_loss)
                    loss = loss + cfg.optim.noise_consistency_weight * perturbation_kl(logits, lp)
                if cfg.optim.consistency_weight > 0 and y.dim() == 2:
                    loss = loss + cfg.optim.consistency_weight * consistency_loss(
                        logits, y, cfg.optim.consistency_settle)
                if cfg.optim.decoded_weight > 0 and y.dim() == 2:
                    o = cfg.optim
                    loss = loss + o.decoded_weight * decoded_margin_loss(
                        logits, y, ema=o.decoded_ema, margin=o.decoded_margin, start=o.decoded_start,
                        focus_end=o.decoded_focus_end, focus_weight=o.decoded_focus_weight)
                if cfg.optim.transition_weight > 0 and y.dim() == 2:
                    o = cfg.optim
                    loss = loss + o.transition_weight * transition_loss(
                        logits, y, ema=o.decoded_ema, margin=o.transition_margin, start=o.decoded_start)
                if cfg.optim.direction_weight > 0 and y.dim() == 2:
                    loss = loss + cfg.optim.direction_weight * direction_loss(
                        logits, y, partner, margin=cfg.optim.direction_margin)
                if aux_batches is not None:
                    xa, ya, *ra = next(aux_batches)
                    la, ta = logits_and_targets(fwd, _to_input(xa, device),
                                                ya.to(device), cfg.optim.per_step_loss)
                    wa = ra[0].to(device).flatten() if ra else None
                    loss = loss + cfg.optim.aux_weight * weighted_cross_entropy(
                        la, ta, wa, cfg.optim.label_smoothing)
            if not bool((yy >= 0).any()):
                continue  # every window of the batch is ignored: no loss to follow
            if y.dim() == 1 and cfg.optim.per_step_loss:
                logits, yy = logits.reshape(-1, len(y), logits.shape[-1]).mean(0), y  # clip accuracy
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.optim.clip_grad > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.clip_grad)
            scaler.step(optimizer)
            scaler.update()
            step += 1
            keep = yy >= 0
            nk = int(keep.sum())
            tl += float(loss.detach()) * nk
            tc += int((logits.detach().argmax(1)[keep] == yy[keep]).sum())
            tn += nk
            if bar is not None:
                bar.set_postfix(loss=f"{tl / tn:.3f}", acc=f"{tc / tn:.3f}", lr=f"{lr:.2e}")
            if is_main and cfg.log_every and step % cfg.log_every == 0:
                logf.write(f"step {step} loss {tl / tn:.4f} acc {tc / tn:.4f} lr {lr:.3e} "
                           f"t {time.time() - t_start:.0f}s\n")
                logf.flush()
            if cfg.max_steps and step >= cfg.max_steps:
                break
        if bar is not None:
            bar.close()
        if distributed:
            # BN running statistics are per rank: make every rank hold rank 0's
            for b in model.buffers():
                torch.distributed.broadcast(b.data, 0)
        rec = dict(epoch=epoch + 1, step=step, train_loss=tl / max(1, tn), train_acc=tc / max(1, tn),
                   lr=lr_at(step, total, warmup, cfg.optim.lr, cfg.optim.min_lr_ratio),
                   time_s=time.time() - t_start, test_loss=None, test_acc=None)
        done = epoch + 1 == cfg.optim.epochs or bool(cfg.max_steps and step >= cfg.max_steps)
        if is_main and (done or (cfg.eval_every and (epoch + 1) % cfg.eval_every == 0)):
            last_eval = evaluate(model, test_loader, device, nc, amp)
            rec.update(test_loss=last_eval["loss"], test_acc=last_eval["accuracy"])
            if last_eval["accuracy"] > best_acc:
                best_acc = last_eval["accuracy"]
                save_model(out / "best.pt", model, class_names, cfg, epoch=epoch + 1, step=step,
                           test_accuracy=best_acc)
        history.append(rec)
        if is_main:
            say(f"epoch {epoch + 1}: train loss {rec['train_loss']:.4f} acc {rec['train_acc']:.4f}"
                + (f" | test loss {rec['test_loss']:.4f} acc {rec['test_acc']:.4f}" if rec["test_acc"] is not None else "")
                + f" | {rec['time_s']:.0f}s")
            save_train_state(out / "last.pt", model, optimizer, class_names, cfg, step=step, epoch=epoch + 1,
                             best_acc=best_acc, history=history)
            (out / "history.json").write_text(json.dumps(history, indent=1))
            plot_curves(history, out / "curves.png")
        if distributed:
            torch.distributed.barrier()

    if perturb is not None:
        perturb.close()
    summary: Dict[str, Any] = dict(out_dir=str(out), step=step, best_acc=best_acc, history=history,
                                   final_acc=last_eval["accuracy"] if last_eval else None, model=model)
    if is_main:
        save_model(out / "final.pt", model, class_names, cfg, step=step,
                   test_accuracy=summary["final_acc"])
        if last_eval is not None:
            (out / "confusion.json").write_text(json.dumps(dict(class_names=class_names, **last_eval)))
        if cfg.export:
            src = out / ("best.pt" if cfg.export_best and (out / "best.pt").is_file() else "final.pt")
            m, meta = snn.load_checkpoint(src)
            more = {k: v for k, v in meta["extra"].items() if k in ("epoch", "step", "test_accuracy")}
            if cfg.aux_data is not None and cfg.aux_data.dataset == "synthetic":
                more["clip_test_accuracy"] = clip_test_accuracy(m, cfg.aux_data, device, cfg.seed)
                say(f"clip test accuracy of the export: {more['clip_test_accuracy']:.4f}")
            if cfg.made_by:
                more["made_by"] = cfg.made_by
            save_model(cfg.export, m, class_names, cfg, fp16=cfg.export_fp16, **more)
            summary["export"] = cfg.export
            say(f"exported {src.name} -> {cfg.export}")
        say(f"done: best test acc {best_acc:.4f}, final {summary['final_acc']}")
        logf.close()
    if distributed:
        torch.distributed.barrier()
    return summary
