"""Resolve ``--model``: the shipped default, a checkpoint file, or a registry name; and the
input recipe the runtime feeds it (the checkpoint's, with the run config on top)."""

from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path

import torch

from eventpipe.errors import CheckpointError, DataError
from eventpipe.paths import special_kind
from eventpipe.represent import InputRecipe, RecipeError, recipe_from_checkpoint

DEFAULT_WEIGHTS = (Path(__file__).resolve().parents[2] / "snn" / "weights"
                   / "meta_spikeformer_tiny_synthetic.pt")

#: model input (W, H) when neither the checkpoint nor ``[input] size`` states one
DEFAULT_INPUT_SIZE = (128, 128)


@dataclasses.dataclass
class LoadedModel:
    model: torch.nn.Module
    class_names: list[str]
    input_size: tuple[int, int] | None   # (W, H)
    source: str                          # what was loaded, for the log
    extra: dict = dataclasses.field(default_factory=dict)  # the checkpoint's provenance
    random_weights: bool = False
    recipe: InputRecipe | None = None    # the checkpoint's input recipe (None: defaults)


def resolve_checkpoint(name: str) -> Path:
    """'default' -> the shipped weights; anything else is a path."""
    if name == "default":
        if not DEFAULT_WEIGHTS.exists():
            raise FileNotFoundError(f"the shipped default model is missing: {DEFAULT_WEIGHTS}")
        return DEFAULT_WEIGHTS
    return Path(name)


def check_checkpoint_file(path, what: str | None = None) -> None:
    """An existing checkpoint path must be a regular, non-empty file: a folder, a device or a
    pipe (reading one could block for ever or never end; a symlink counts as what it points at)
    is a ``DataError`` naming ``what`` (default: the path)."""
    kind = special_kind(path)
    if kind == "a directory":
        raise DataError(f"{what or path}: is a directory, not a checkpoint")
    if kind is not None:
        raise CheckpointError(f"{path}: {kind}, not a checkpoint file")
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"{path}: empty file, not a checkpoint")


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
        recipe = recipe_from_checkpoint(meta, source=str(path))
        names = meta.get("class_names") or [str(i) for i in range(model.num_classes)]
        return LoadedModel(model.eval(), list(names), recipe.size, str(path),
                           dict(meta.get("extra") or {}), recipe=recipe)
    if name not in list_models():
        create_model(name)  # raises with the closest names
    overrides = {"num_classes": num_classes} if num_classes else {}
    model = create_model(name, **overrides).eval()
    warnings.warn(f"model {name!r} runs with random weights: labels are meaningless "
                  "(pass a trained checkpoint, or omit --model for the shipped default)",
                  stacklevel=2)
    names = list(class_names) if class_names else [f"class_{i}" for i in range(model.num_classes)]
    size = getattr(model, "recipe", {}).get("input_size")
    size = tuple(size) if size else None
    return LoadedModel(model, names, size, name, random_weights=True,
                       recipe=InputRecipe(size=size))


def apply_run_config(recipe: InputRecipe, cfg) -> InputRecipe:
    """``recipe`` with the run config's ``[input]`` / ``[window]`` values that are set
    (a key left unset keeps the recipe's value); no size anywhere: 128x128."""
    i, w = cfg.input, cfg.window
    try:
        out = recipe.replace(size=i.size, window_us=w.window_us, stride_us=w.stride_us,
                             channels=i.channels, normalisation=i.frame_norm,
                             policy=i.policy, roi=i.roi, flip_x=i.flip_x, flip_y=i.flip_y)
        if out.size is None:
            out = out.replace(size=DEFAULT_INPUT_SIZE)
        return out
    except RecipeError as e:
        raise e.located("the run config's [input]/[window] on the model's recipe") from None


def run_recipe(cfg, loaded: LoadedModel) -> InputRecipe:
    """What the runtime feeds ``loaded``: its checkpoint recipe (or the defaults with its
    input size) under the run config's explicit ``[input]`` / ``[window]`` values."""
    base = loaded.recipe if loaded.recipe is not None else InputRecipe(size=loaded.input_size)
    return apply_run_config(base, cfg)
