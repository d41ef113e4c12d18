"""Fused LIF update for inference (no autograd): one pass over memory per step.

Same arithmetic as :func:`snn.neurons.lif.lif_step` in the tensor dtype (float32 or float64):
``h = v + (x - v) / tau`` (or ``v - v / tau + x``), ``s = h >= v_th``, hard reset ``h * (1 - s)``
or soft reset ``h - s * v_th``.  Bit-identical to the tensor path (pinned by a test).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

import numba


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _lif_seq_kernel(x, v, s_out, tau, vth, soft, decay_input):  # pragma: no cover - jitted
    T, n = x.shape
    for t in range(T):
        for i in range(n):
            vv = v[i]
            xv = x[t, i]
            if decay_input:
                h = vv + (xv - vv) / tau
            else:
                h = vv - vv / tau + xv
            if h >= vth:
                s_out[t, i] = 1.0
                v[i] = h - vth if soft else 0.0
            else:
                s_out[t, i] = 0.0
                v[i] = h


def fused_eligible(x: Tensor) -> bool:
    return (
        x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.float64)
        and not (torch.is_grad_enabled() and x.requires_grad)
        and x.numel() > 0
    )


def lif_seq_fused(x_seq: Tensor, v, tau: float, vth: float, soft: bool, decay_input: bool):
    """``x_seq`` ``[T, ...]`` -> (spikes ``[T, ...]``, v ``[...]``); ``v`` None means rest."""
    T = x_seq.shape[0]
    frame = x_seq.shape[1:]
    x = x_seq.detach().contiguous().view(T, -1).numpy()
    np_dtype = x.dtype.type
    if v is None:
        v_np = np.zeros(x.shape[1], dtype=x.dtype)
    else:
        v_np = v.detach().to(x_seq.dtype).reshape(-1).numpy().copy()
    s = np.empty_like(x)
    _lif_seq_kernel(x, v_np, s, np_dtype(tau), np_dtype(vth), bool(soft), bool(decay_input))
    return torch.from_numpy(s).view(T, *frame), torch.from_numpy(v_np).view(frame)
