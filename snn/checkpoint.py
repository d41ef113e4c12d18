"""Our checkpoint format: weights plus the recipe that rebuilds the model.

Files hold only tensors and plain Python values, so they load with
``torch.load(..., weights_only=True)``; nothing unpickles arbitrary objects.

Besides the model (``model_name``, ``args``, ``T``, ``state_dict``) a file carries
``class_names``, ``input_size`` (W, H), the *input recipe* (``recipe``: how events
become the model's input, a plain dict with a ``recipe_version``, written and read by
``eventpipe.represent``; ``None`` in files written before it existed) and ``extra``
(anything else: provenance such as the training config, epoch, accuracy).  This
module stores the recipe as given and reads only its ``size`` (``model.input_size``).
"""

from __future__ import annotations

import os
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import torch

from .models.metaspikeformer import MetaSpikeFormer
from .models.registry import create_model

FORMAT = "eventpipe.snn.checkpoint/1"

_PLAIN = (str, int, float, bool, type(None))


def _plain(v: Any) -> Any:
    if isinstance(v, _PLAIN):
        return v
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    raise TypeError(f"checkpoint metadata must be plain data, got {type(v).__name__}")


def save_checkpoint(
    path: Union[str, os.PathLike],
    model: MetaSpikeFormer,
    *,
    class_names: Optional[Sequence[str]] = None,
    input_size: Optional[Tuple[int, int]] = None,
    extra: Optional[Dict[str, Any]] = None,
    recipe: Optional[Dict[str, Any]] = None,
) -> None:
    """Write ``model`` (unfolded) and its metadata to ``path`` (a path or a binary file).

    ``input_size``: the model input (W, H) (default: the model's registry size);
    ``recipe``: the input recipe as plain data (``eventpipe.represent.InputRecipe.to_dict()``);
    ``extra``: any other plain data."""
    if getattr(model, "is_folded", False):
        raise ValueError("save the unfolded model; fold after loading (folded weights are derived)")
    build = getattr(model, "recipe", None) or {}
    name = build.get("name")
    if not name:
        raise ValueError("model has no recipe name; build it with snn.create_model or snn.load_official")
    if recipe is not None and not isinstance(recipe, dict):
        raise TypeError(f"recipe must be a dict of plain data, got {type(recipe).__name__}")
    if class_names is not None and len(class_names) != model.num_classes:
        raise ValueError(f"{len(class_names)} class names for {model.num_classes} classes")
    payload = {
        "format": FORMAT,
        "model_name": name,
        "args": _plain(build.get("args", {})),
        "input_size": _plain(input_size if input_size is not None else build.get("input_size")),
        "T": int(model.T),
        "class_names": _plain(list(class_names) if class_names is not None else None),
        "extra": _plain(extra or {}),
        "recipe": _plain(recipe),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    torch.save(payload, path)


def load_checkpoint(path: Union[str, os.PathLike]) -> Tuple[MetaSpikeFormer, Dict[str, Any]]:
    """Rebuild and strictly load a model saved by :func:`save_checkpoint`; returns (model in
    eval, metadata: ``model_name``, ``args``, ``input_size``, ``T``, ``class_names``,
    ``extra``, ``recipe`` (None for files written before recipes)).  ``model.input_size`` is
    set to the size it was trained at (the recipe's ``size``, else ``input_size``)."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path}: not an eventpipe SNN checkpoint (use snn.load_official for official files)")
    args = dict(ckpt["args"])
    for k in ("embed_dims", "depths"):
        if k in args and isinstance(args[k], list):
            args[k] = tuple(args[k])
    args["T"] = ckpt["T"]
    if ckpt["model_name"] == "official":
        from .models.metaspikeformer import MetaSpikeFormer as _M

        model = _M(**args)
        model.recipe = {"name": "official", "args": ckpt["args"]}
    else:
        model = create_model(ckpt["model_name"], **args)
        model.recipe["args"] = dict(ckpt["args"])
    model.load_state_dict(ckpt["state_dict"], strict=True)
    meta = {k: ckpt[k] for k in ("model_name", "args", "input_size", "T", "class_names", "extra")}
    meta["recipe"] = ckpt.get("recipe")
    # the size the model was trained at (the recipe's, else the file's input_size): step()
    # warns at frames of another size (snn.frame_size); the only recipe key read here
    rec = meta["recipe"] if isinstance(meta["recipe"], dict) else {}
    size = rec.get("size") or meta["input_size"]
    if isinstance(size, (list, tuple)) and len(size) == 2:
        model.input_size = (int(size[0]), int(size[1]))
    return model.eval(), meta
