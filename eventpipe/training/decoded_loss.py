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
