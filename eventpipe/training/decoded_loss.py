"""A loss on the label a user sees: the decoder's smoothed probabilities (issue #16).

The runtime's :class:`~eventpipe.labels.LabelDecoder` shows the class whose EMA of the
softmax probabilities (``s_t = ema * s_{t-1} + (1 - ema) * p_t``, ``s_0 = p_0``) leads; a
challenger takes over once it beats the current label by the hysteresis.  A per-window
cross-entropy does not see that: a window the model gets right after a run of wrong ones is
still shown wrong, and a one-window blip inside a settled action costs as much as a late
switch.  :func:`decoded_margin_loss` runs the same EMA over a run's windows (differentiable)
and asks the target's smoothed probability to lead every other class by ``margin``
(a hinge: windows already shown right with room to spare cost nothing).

Windows right after a switch, where the new action cannot be shown yet, are free: the loss
counts a window once its target has held ``start`` windows of the run (after the grace
windows of the switch, which carry no target), and weighs ``focus_weight`` the windows
that have held ``start`` .. ``focus_end`` windows after a switch inside the run (the windows
where a switch is caught or missed).  Runs without a switch count from their first valid
window, unweighted.
"""

from __future__ import annotations

import torch


def smoothed(p: torch.Tensor, ema: float) -> torch.Tensor:
    """The decoder's EMA over the runs of ``p [B, R, C]`` (probabilities), from each run's
    first window (``s_0 = p_0``, as :func:`eventpipe.labels.ema_update` starts)."""
    out = [p[:, 0]]
    for j in range(1, p.shape[1]):
        out.append(ema * out[-1] + (1.0 - ema) * p[:, j])
    return torch.stack(out, 1)


def held_for(y: torch.Tensor) -> torch.Tensor:
    """``[B, R]``: for each window, how many windows of the run up to and including it have had
    its (valid) target in a row; 0 for ignored windows."""
    b, r = y.shape
    out = torch.zeros_like(y)
    run = torch.zeros(b, dtype=y.dtype, device=y.device)
    for j in range(r):
        ok = y[:, j] >= 0
        cont = ok & (j > 0) & (y[:, j] == y[:, j - 1]) if j > 0 else ok & False
        run = torch.where(cont, run + 1, torch.where(ok, torch.ones_like(run), torch.zeros_like(run)))
        out[:, j] = run
    return out


def after_switch(y: torch.Tensor) -> torch.Tensor:
    """``[B, R]`` bool: an earlier window of the run has another valid target (the window
    belongs to an action that began inside the run)."""
    b, r = y.shape
    out = torch.zeros_like(y, dtype=torch.bool)
    first = torch.full((b,), -1, dtype=y.dtype, device=y.device)   # first valid target seen
    seen_other = torch.zeros(b, dtype=torch.bool, device=y.device)
    for j in range(r):
        ok = y[:, j] >= 0
        first = torch.where((first < 0) & ok, y[:, j], first)
        seen_other = seen_other | (ok & (first >= 0) & (y[:, j] != first))
        out[:, j] = seen_other & ok & (y[:, j] != first)
    return out


def decoded_margin_loss(logits: torch.Tensor, y: torch.Tensor, *, ema: float = 0.6,
                        margin: float = 0.4, start: int = 5, focus_end: int = 8,
                        focus_weight: float = 4.0) -> torch.Tensor:
    """Mean hinge ``relu(margin - (s_y - max_{c != y} s_c))`` over the counted windows of runs
    ``y [B, R]`` (``logits [B * R, C]`` as the trainer flattens them; ``s`` = :func:`smoothed`
    softmax), weighted as the module docstring says.  0 when no window counts."""
    b, r = y.shape
    s = smoothed(torch.softmax(logits.reshape(b, r, -1).float(), -1), float(ema))
    valid = y >= 0
    yy = y.clamp_min(0)
    s_y = s.gather(-1, yy[..., None])[..., 0]
    others = s.masked_fill(torch.nn.functional.one_hot(yy, s.shape[-1]).bool(), -1.0)
    lead = s_y - others.max(-1).values
    held = held_for(y)
    new = after_switch(y)
    count = valid & (~new | (held >= int(start)))
    w = torch.where(new & (held >= int(start)) & (held <= int(focus_end)),
                    torch.full_like(lead, float(focus_weight)), torch.ones_like(lead)) * count
    if not bool(count.any()):
        return logits.sum() * 0.0
    return (torch.relu(float(margin) - lead) * w).sum() / w.sum()


def transition_pairs(y: torch.Tensor, start: int = 5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The windows of a switch inside a run and its two actions: ``(mask, old, new)``, each
    ``[B, R]``.  A window is in a transition when it is a grace window (no target) between two
    different valid targets, or a window of the new target that has held fewer than ``start``
    windows (what :func:`decoded_margin_loss` leaves free); ``old``/``new`` are the targets
    before/after that switch (-1 elsewhere)."""
    b, r = y.shape
    nxt = torch.full_like(y, -1)
    run = torch.full((b,), -1, dtype=y.dtype, device=y.device)
    for j in range(r - 1, -1, -1):
        run = torch.where(y[:, j] >= 0, y[:, j], run)
        nxt[:, j] = run
    held = held_for(y)
    mask = torch.zeros_like(y, dtype=torch.bool)
    old = torch.full_like(y, -1)
    new = torch.full_like(y, -1)
    cur = torch.full((b,), -1, dtype=y.dtype, device=y.device)
    before = torch.full((b,), -1, dtype=y.dtype, device=y.device)
    for j in range(r):
        ok = y[:, j] >= 0
        changed = ok & (y[:, j] != cur)
        before = torch.where(changed, cur, before)
        cur = torch.where(ok, y[:, j], cur)
        grace = ~ok & (cur >= 0) & (nxt[:, j] >= 0) & (nxt[:, j] != cur)
        early = ok & (before >= 0) & (held[:, j] < int(start))
        mask[:, j] = grace | early
        old[:, j] = torch.where(grace, cur, torch.where(early, before, old[:, j]))
        new[:, j] = torch.where(grace, nxt[:, j], torch.where(early, cur, new[:, j]))
    return mask, old, new


def transition_loss(logits: torch.Tensor, y: torch.Tensor, *, ema: float = 0.6, margin: float = 0.1,
                    start: int = 5) -> torch.Tensor:
    """While the label turns at a switch (:func:`transition_pairs`), no third class may lead in
    the decoder's EMA: mean ``relu(max_{c not in {old, new}} s_c - max(s_old, s_new) + margin)``
    over the transition windows (a detour through a third label is two label changes more).
    0 when the runs hold no switch."""
    b, r = y.shape
    mask, old, new = transition_pairs(y, start)
    if not bool(mask.any()):
        return logits.sum() * 0.0
    s = smoothed(torch.softmax(logits.reshape(b, r, -1).float(), -1), float(ema))
    o, n = old.clamp_min(0), new.clamp_min(0)
    s_o = s.gather(-1, o[..., None])[..., 0]
    s_n = s.gather(-1, n[..., None])[..., 0]
    pair = torch.nn.functional.one_hot(o, s.shape[-1]).bool() | torch.nn.functional.one_hot(n, s.shape[-1]).bool()
    third = s.masked_fill(pair, -1.0).max(-1).values
    return torch.relu(third - torch.maximum(s_o, s_n) + float(margin))[mask].mean()


def direction_loss(logits: torch.Tensor, y: torch.Tensor, partner: torch.Tensor, *,
                   margin: float = 2.0) -> torch.Tensor:
    """The two directions of one motion told apart: for every window whose (valid) target ``t``
    has a partner class ``partner[t] != t`` (its time reversal: clockwise <-> anticlockwise,
    swipe left <-> right, ...; -1 / itself = none), mean ``relu(margin - (z_t - z_partner))``
    over those windows (``z`` = logits ``[B * R, C]``, ``y [B, R]`` or ``[B]``).  0 when no
    window has one."""
    yy = y.reshape(-1)
    valid = yy >= 0
    pt = torch.full_like(yy, -1)
    pt[valid] = partner.to(yy.device)[yy[valid]]
    mask = valid & (pt >= 0) & (pt != yy)
    if not bool(mask.any()):
        return logits.sum() * 0.0
    z = logits.float()[mask]
    gap = z.gather(-1, yy[mask][:, None])[:, 0] - z.gather(-1, pt[mask][:, None])[:, 0]
    return torch.relu(float(margin) - gap).mean()
