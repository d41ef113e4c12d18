"""Resolve ``--model``: the shipped default, a checkpoint file, or a registry name."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import torch

DEFAULT_WEIGHTS = (Path(__file__).resolve().parents[2] / "snn" / "weights"
                   / "meta_spikeformer_tiny_synthetic.pt")

# training's representation names -> the runtime's frame_norm
REPRESENTATION = {"log": "log1p", "counts": "counts", "binary": "binary"}


@dataclasses.dataclass
class LoadedModel:
    model: torch.nn.Module
    class_names: list[str]
    input_size: tuple[int, int] | None   # (W, H)
    source: str                          # what was loaded, for the log
    extra: dict = dataclasses.field(default_factory=dict)  # the checkpoint's input recipe
    random_weights: bool = False


def resolve_checkpoint(name: str) -> Path:
    """'default' -> the shipped weights; anything else is a path."""
    if name == "default":
        if not DEFAULT_WEIGHTS.exists():
            raise FileNotFoundError(f"the shipped default model is missing: {DEFAULT_WEIGHTS}")
        return DEFAULT_WEIGHTS
    return Path(name)


def load_model(name: str, *, num_classes: int | None = None, class_names=None) -> LoadedModel:
    from snn import create_model, list_models, load_checkpoint

    path = resolve_checkpoint(name)
    if path.suffix in (".pt", ".pth") or path.exists():
        if not path.exists():
            raise FileNotFoundError(f"no such checkpoint: {path}")
        try:
            model, meta = load_checkpoint(path)
        except ValueError:
            from snn import load_official
            model = load_official(str(path))
            meta = {"class_names": None, "input_size": None, "extra": {}}
        extra = meta.get("extra") or {}
        names = meta.get("class_names") or [str(i) for i in range(model.num_classes)]
        size = meta.get("input_size")
        return LoadedModel(model.eval(), list(names), tuple(size) if size else None, str(path),
                           dict(extra))
    if name not in list_models():
        create_model(name)  # raises with the closest names
    overrides = {"num_classes": num_classes} if num_classes else {}
    model = create_model(name, **overrides).eval()
    warnings.warn(f"model {name!r} runs with random weights: labels are meaningless "
                  "(pass a trained checkpoint, or omit --model for the shipped default)",
                  stacklevel=2)
    names = list(class_names) if class_names else [f"class_{i}" for i in range(model.num_classes)]
    size = getattr(model, "recipe", {}).get("input_size")
    return LoadedModel(model, names, tuple(size) if size else None, name, random_weights=True)
