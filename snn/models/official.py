"""Load checkpoints of the official Spike-driven Transformer V2 code.

The architecture (widths, depths, channels, classes, MLP ratios, distillation head) is inferred from
key names and shapes; only the number of attention heads is not recoverable from weights (the
official models all use 8) and can be passed explicitly.
"""

from __future__ import annotations

import argparse
import os
import re
from typing import Any, Dict, Mapping, Optional, Union

import torch
from torch import Tensor

from .metaspikeformer import MetaSpikeFormer

_WRAPPER_KEYS = ("model", "state_dict", "model_state_dict", "module")


def _load_file(path: Union[str, os.PathLike]) -> Any:
    # Official training checkpoints may carry ``args`` (an argparse.Namespace): allow exactly that
    # type in the weights-only unpickler and nothing else.
    with torch.serialization.safe_globals([argparse.Namespace]):
        return torch.load(path, map_location="cpu", weights_only=True)


def unwrap_state_dict(obj: Any) -> Dict[str, Tensor]:
    """Accept a bare state dict or ``{'model': sd, ...}``-style wrappers; drop ``module.`` prefixes."""
    for _ in range(3):
        if isinstance(obj, Mapping) and not any(isinstance(v, Tensor) for v in obj.values()):
            for k in _WRAPPER_KEYS:
                if k in obj and isinstance(obj[k], Mapping):
                    obj = obj[k]
                    break
            else:
                break
        else:
            break
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ValueError("not a state dict: expected a mapping of tensors or {'model': state_dict, ...}")
    sd = dict(obj)
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def _count(sd: Mapping[str, Tensor], prefix: str) -> int:
    pat = re.compile(re.escape(prefix) + r"\.(\d+)\.")
    idx = {int(m.group(1)) for k in sd for m in [pat.match(k)] if m}
    return max(idx) + 1 if idx else 0


def infer_config(sd: Mapping[str, Tensor]) -> Dict[str, Any]:
    """MetaSpikeFormer keyword arguments that reproduce the shapes in ``sd``."""
    def shape(key: str):
        if key not in sd:
            raise ValueError(f"state dict lacks {key!r}: not an official Meta-SpikeFormer checkpoint")
        return tuple(sd[key].shape)

    stem = shape("downsample1_1.encode_conv.weight")
    dims = [shape(f"{d}.encode_conv.weight")[0] for d in ("downsample1_2", "downsample2", "downsample3", "downsample4")]
    if stem[0] * 2 != dims[0]:
        raise ValueError(f"stem width {stem[0]} is not half of stage-1 width {dims[0]}")
    depths = (_count(sd, "block3"), _count(sd, "block4"))
    if min(depths) < 1:
        raise ValueError(f"transformer stage depths {depths} inferred; expected at least one block each")
    head = shape("head.weight")
    cfg: Dict[str, Any] = dict(
        embed_dims=tuple(dims),
        depths=depths,
        in_channels=stem[1],
        num_classes=head[0],
        kd="head_kd.weight" in sd,
        mlp_ratio=shape("block3.0.mlp.fc1_conv.weight")[0] / dims[2],
        conv_mlp_ratio=shape("ConvBlock1_2.0.conv1.weight")[0] // dims[0],
        sep_expansion=shape("ConvBlock1_2.0.Conv.pwconv1.weight")[0] / dims[0],
        sep_kernel=shape("ConvBlock1_2.0.Conv.dwconv.weight")[-1],
    )
    if float(cfg["mlp_ratio"]).is_integer():
        cfg["mlp_ratio"] = int(cfg["mlp_ratio"])
    if float(cfg["sep_expansion"]).is_integer():
        cfg["sep_expansion"] = int(cfg["sep_expansion"])
    return cfg


def checkpoint_time_steps(obj: Any) -> Optional[int]:
    """``args.time_steps`` of an official training checkpoint (``{'model': ..., 'args': Namespace}``;
    ``main_finetune.py`` sets ``model.T = args.time_steps``), or None when it does not say."""
    if not isinstance(obj, Mapping) or "args" not in obj:
        return None
    args = obj["args"]
    args = vars(args) if isinstance(args, argparse.Namespace) else args
    T = args.get("time_steps") if isinstance(args, Mapping) else None
    if T is None:
        return None
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise ValueError(f"checkpoint args.time_steps must be a positive int, got {T!r}")
    return T


def load_official(
    path_or_state_dict: Union[str, os.PathLike, Mapping[str, Any]],
    *,
    T: Optional[int] = None,
    num_heads: int = 8,
    **overrides: Any,
) -> MetaSpikeFormer:
    """Build the model an official checkpoint describes, load it strictly, return it in eval mode.

    ``T`` is the number of repeats for static-image input: given here, else the checkpoint's
    ``args.time_steps`` (official training checkpoints record it), else 4 (the released V2
    setting); event input ``[T, B, C, H, W]`` always runs for its own T.  ``overrides`` are
    :class:`MetaSpikeFormer` arguments, e.g. ``head_input="features"`` for the head as BICLab's
    published classification code computes it (see :data:`~snn.models.metaspikeformer.HEAD_INPUTS`).
    """
    obj = path_or_state_dict
    if isinstance(obj, (str, os.PathLike)):
        obj = _load_file(obj)
    sd = unwrap_state_dict(obj)
    cfg = infer_config(sd)
    if T is None:
        T = checkpoint_time_steps(obj)
    cfg.update(num_heads=num_heads, T=4 if T is None else T)
    cfg.update(overrides)
    model = MetaSpikeFormer(**cfg)
    model.load_state_dict(sd, strict=True)
    model.recipe = {"name": "official", "args": {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()}}
    return model.eval()
