"""Model registry: a literal table of named recipes and a factory.

Parameter counts are those of the official code for the same configuration (pinned by a test).
"""

from __future__ import annotations

import difflib
from typing import Any, Callable, Dict, List

from .metaspikeformer import MetaSpikeFormer

_IMAGENET = dict(in_channels=3, num_classes=1000, depths=(6, 2), num_heads=8, mlp_ratio=4, T=4)

# name -> keyword arguments of MetaSpikeFormer (plus "input_size" metadata, not a constructor arg)
_RECIPES: Dict[str, Dict[str, Any]] = {
    # 15,112,208 parameters
    "meta_spikeformer_15m": dict(_IMAGENET, embed_dims=(64, 128, 256, 360), input_size=(224, 224)),
    # 31,333,864 parameters
    "meta_spikeformer_31m": dict(_IMAGENET, embed_dims=(96, 192, 384, 480), input_size=(224, 224)),
    # 55,350,248 parameters (55,991,248 with kd=True)
    "meta_spikeformer_55m": dict(_IMAGENET, embed_dims=(128, 256, 512, 640), input_size=(224, 224)),
    # 18,262,980 parameters: HAR-DVS variant
    "meta_spikeformer_hardvs_18m": dict(
        embed_dims=(80, 160, 320, 400), depths=(4, 2), in_channels=2, num_classes=300, num_heads=8,
        mlp_ratio=4, T=8, input_size=(128, 128),
    ),
    # small event model for real time on 2 CPU cores
    "meta_spikeformer_tiny": dict(
        embed_dims=(32, 64, 128, 192), depths=(2, 1), in_channels=2, num_classes=300, num_heads=8,
        mlp_ratio=4, T=8, input_size=(128, 128),
    ),
}

_EXTRA: Dict[str, Callable[..., MetaSpikeFormer]] = {}

_META_KEYS = ("input_size",)


def list_models() -> List[str]:
    """Names accepted by :func:`create_model`."""
    return sorted(set(_RECIPES) | set(_EXTRA))


def register_model(name: str, factory: Callable[..., MetaSpikeFormer]) -> None:
    """Add a factory under a new name (an existing name is an error)."""
    if name in _RECIPES or name in _EXTRA:
        raise ValueError(f"model name {name!r} is already registered")
    _EXTRA[name] = factory


def recipe(name: str) -> Dict[str, Any]:
    """The default configuration of a named model (a copy)."""
    _check_name(name)
    if name in _EXTRA:
        return {}
    return dict(_RECIPES[name])


def _check_name(name: str) -> None:
    if name not in _RECIPES and name not in _EXTRA:
        close = difflib.get_close_matches(str(name), list_models(), n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise KeyError(f"unknown model {name!r}{hint} (known: {', '.join(list_models())})")


def create_model(name: str, **overrides: Any) -> MetaSpikeFormer:
    """Build a named model; keyword overrides replace recipe entries (e.g. ``num_classes=11``)."""
    _check_name(name)
    if name in _EXTRA:
        model = _EXTRA[name](**overrides)
        model.recipe = {"name": name, "args": dict(overrides)}
        return model
    cfg = dict(_RECIPES[name])
    cfg.update(overrides)
    meta = {k: cfg.pop(k) for k in _META_KEYS if k in cfg}
    try:
        model = MetaSpikeFormer(**cfg)
    except TypeError as e:
        raise TypeError(f"create_model({name!r}): {e}") from None
    model.recipe = {"name": name, "args": dict(overrides), **meta}
    return model
