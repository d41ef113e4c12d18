"""Optimizers and the learning-rate schedule (linear warm-up, then cosine to ``min_lr_ratio``)."""

from __future__ import annotations

import math

import torch


class Lamb(torch.optim.Optimizer):
    """LAMB (You et al. 2019): Adam moments, decoupled weight decay, layer-wise trust ratio."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for g in self.param_groups:
            b1, b2 = g["betas"]
            for p in g["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if not st:
                    st["step"] = torch.zeros((), dtype=torch.float32)
                    st["exp_avg"] = torch.zeros_like(p)
                    st["exp_avg_sq"] = torch.zeros_like(p)
                st["step"] += 1
                k = float(st["step"])
                m, v = st["exp_avg"], st["exp_avg_sq"]
                m.mul_(b1).add_(p.grad, alpha=1 - b1)
                v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                upd = (m / (1 - b1 ** k)) / ((v / (1 - b2 ** k)).sqrt().add_(g["eps"]))
                if g["weight_decay"]:
                    upd.add_(p, alpha=g["weight_decay"])
                wn, un = p.norm(), upd.norm()
                trust = (wn / un) if (wn > 0 and un > 0) else torch.tensor(1.0)
                p.add_(upd, alpha=-g["lr"] * float(trust))
        return loss


def param_groups(model: torch.nn.Module, weight_decay: float):
    """No weight decay on biases, norms and 1-D parameters."""
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or n.endswith(".bias") else decay).append(p)
    return [dict(params=decay, weight_decay=weight_decay), dict(params=no_decay, weight_decay=0.0)]


def make_optimizer(model, o) -> torch.optim.Optimizer:
    groups = param_groups(model, o.weight_decay)
    if o.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=o.lr, betas=tuple(o.betas))
    if o.optimizer == "lamb":
        return Lamb(groups, lr=o.lr, betas=tuple(o.betas))
    raise ValueError(f"unknown optimizer {o.optimizer!r}")


def lr_at(step: int, total: int, warmup: int, base: float, min_ratio: float) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine from ``base`` to ``base * min_ratio``."""
    if warmup > 0 and step < warmup:
        return base * (step + 1) / warmup
    span = max(1, total - warmup)
    p = min(1.0, (step - warmup) / span)
    return base * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * p)))
