"""Training a model to be insensitive to small perturbations (issue #13's agreement).

The shipped model is chaotic over a stream: a spike flipped near its threshold by any rounding
(the chip's integers, 0.1 % weight noise) changes the membranes it feeds for the following steps,
and about a tenth of the raw stream labels move (docs/chip.md, "Agreement with the float model").
These options perturb the model while it trains, so that it may learn to let such perturbations
die out (all off by default; ``[optim]`` keys):

* ``noise_lif_std``: Gaussian noise added to every LIF neuron's input current at every step, its
  std a fraction of that neuron's threshold (``x + std * v_th * N(0, 1)``; with the default
  ``tau = 2`` the membrane moves by half of that);
* ``noise_weight_std``: relative Gaussian noise on every parameter, drawn anew for every batch
  (``w * (1 + std * N(0, 1))``: what the benchmark's float-vs-float floor draws once, at 1e-3);
  the gradient is taken at the perturbed weights and applied to the clean ones;
* ``noise_consistency_weight``: with a weight > 0 the training forward stays clean and a second,
  perturbed forward of the same batch (the two noises above) is added, with the loss
  ``weight * KL(softmax(clean) || softmax(perturbed))`` over every window of every run (the clean
  side detached: the perturbed pass is pulled to the clean one); with 0 (the default) the noise,
  if any, is put into every training forward itself (noise injection).

The model definition is untouched: the noise comes from forward pre-hooks on the LIF neurons that
add nothing unless a perturbed forward is running, and from ``torch.func.functional_call`` with
perturbed copies of the parameters.  Evaluation and the saved weights are clean.  One seeded
generator (``seed``) draws all noise, so a run from scratch is reproducible (a resumed run draws
other noise).
"""

from __future__ import annotations

import math
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from eventpipe.errors import ConfigError

KEYS = ("noise_lif_std", "noise_weight_std", "noise_consistency_weight")


def validate_noise(optim) -> None:
    """Refuse bad noise settings of an ``OptimConfig`` with a :class:`ConfigError` naming the key."""
    for key in KEYS:
        v = getattr(optim, key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise ConfigError(f"optim.{key}: must be a finite number >= 0 (0 = off), got {v!r}")
    if optim.noise_weight_std >= 1:
        raise ConfigError(f"optim.noise_weight_std: a relative weight noise must be < 1 "
                          f"(1e-3 = 0.1 %), got {optim.noise_weight_std!r}")
    if optim.noise_consistency_weight > 0 and not (optim.noise_lif_std > 0 or optim.noise_weight_std > 0):
        raise ConfigError("optim.noise_consistency_weight: the perturbed pass needs a noise: set "
                          "optim.noise_lif_std or optim.noise_weight_std > 0")


def noise_enabled(optim) -> bool:
    return optim.noise_lif_std > 0 or optim.noise_weight_std > 0


class Perturbation:
    """Seeded perturbed forwards of ``model`` (an unwrapped ``MetaSpikeFormer``).

    ``perturbed(x, **kw)`` is ``model(x, **kw)`` with LIF input noise of ``lif_std`` thresholds and
    relative weight noise ``weight_std`` (fresh draws per call); ``model(x)`` itself stays clean.
    ``close()`` removes the hooks."""

    def __init__(self, model: nn.Module, *, lif_std: float = 0.0, weight_std: float = 0.0,
                 seed: int = 0, device: Optional[torch.device] = None) -> None:
        from snn.neurons import LIFNode

        self.model = model
        self.lif_std = float(lif_std)
        self.weight_std = float(weight_std)
        device = torch.device("cpu") if device is None else torch.device(device)
        self.gen = torch.Generator(device=device).manual_seed(int(seed))
        self.active = False
        self.handles = []
        if self.lif_std > 0:
            for m in model.modules():
                if isinstance(m, LIFNode):
                    self.handles.append(m.register_forward_pre_hook(self._lif_hook))
            if not self.handles:
                raise ValueError("optim.noise_lif_std: the model has no LIF neurons to perturb")

    def _randn(self, like: Tensor) -> Tensor:
        return torch.randn(like.shape, generator=self.gen, device=like.device, dtype=like.dtype)

    def _lif_hook(self, module, args):
        if not self.active:
            return None
        x = args[0]
        return (x + (self.lif_std * module.v_threshold) * self._randn(x),) + tuple(args[1:])

    def perturbed_params(self) -> Dict[str, Tensor]:
        """The parameters times ``1 + weight_std * N(0, 1)`` (differentiable in the clean ones)."""
        return {name: p * (1.0 + self.weight_std * self._randn(p))
                for name, p in self.model.named_parameters()}

    def perturbed(self, x: Tensor, **kw):
        self.active = True
        try:
            if self.weight_std > 0:
                return torch.func.functional_call(self.model, self.perturbed_params(), (x,), kw)
            return self.model(x, **kw)
        finally:
            self.active = False

    __call__ = perturbed

    def close(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []


def perturbation_kl(clean_logits: Tensor, perturbed_logits: Tensor) -> Tensor:
    """Mean over rows of ``KL(softmax(clean) || softmax(perturbed))``, the clean side detached."""
    p = F.log_softmax(clean_logits.detach().float(), -1)
    q = F.log_softmax(perturbed_logits.float(), -1)
    return F.kl_div(q, p, log_target=True, reduction="batchmean")
