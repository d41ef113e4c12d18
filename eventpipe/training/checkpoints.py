"""Models and checkpoints of a training job: the model a config describes, the ``snn``
checkpoints it writes (``best.pt``, ``final.pt``, an export) with their recipe and provenance,
and the resumable train state (``last.pt``: checkpoint + optimizer, step, epoch, history)."""

from __future__ import annotations

import copy
import io
import os
from pathlib import Path
from typing import Any, Dict

import torch

import snn
from eventpipe.represent import recipe_to_checkpoint
from eventpipe.training.config import TrainConfig, config_dict, data_recipe

STATE_FORMAT = "eventpipe.train_state/1"


def build_model(cfg: TrainConfig, num_classes: int) -> torch.nn.Module:
    m, d = cfg.model, cfg.data
    kw: Dict[str, Any] = dict(num_classes=int(num_classes), T=int(d.T), in_channels=2,
                              embed_dims=tuple(m.embed_dims), depths=tuple(m.depths),
                              conv_mlp_ratio=int(m.conv_mlp_ratio), mlp_ratio=m.mlp_ratio,
                              num_heads=int(m.num_heads), input_size=data_recipe(d).size)
    kw.update(m.extra)
    return snn.create_model(m.name, **kw)


def recipe_extra(cfg: TrainConfig, **more) -> Dict[str, Any]:
    """Provenance stored in the checkpoint's ``extra`` (the input itself is the recipe:
    :func:`~eventpipe.training.config.data_recipe`)."""
    d = cfg.data
    out = dict(dataset=d.dataset,
               sensor_size=list(d.sensor_size) if d.dataset.startswith("synthetic") else None,
               train_config=config_dict(cfg))
    out.update(more)
    return out


def checkpoint_meta(cfg: TrainConfig, **more) -> Dict[str, Any]:
    """The keyword arguments of ``snn.save_checkpoint`` that describe the input."""
    recipe = data_recipe(cfg.data)
    return dict(input_size=recipe.size, recipe=recipe_to_checkpoint(recipe),
                extra=recipe_extra(cfg, **more))


def _unwrap(model):
    return model.module if hasattr(model, "module") else model


def save_model(path, model, class_names, cfg: TrainConfig, fp16: bool = False, **more) -> None:
    m = _unwrap(model)
    if fp16:
        m = copy.deepcopy(m).half()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    snn.save_checkpoint(tmp, m, class_names=list(class_names),
                        **checkpoint_meta(cfg, fp16=bool(fp16), **more))
    os.replace(tmp, path)


def _checkpoint_payload(model, class_names, cfg, **more) -> dict:
    buf = io.BytesIO()
    snn.save_checkpoint(buf, _unwrap(model), class_names=list(class_names),
                        **checkpoint_meta(cfg, **more))
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def save_train_state(path, model, optimizer, class_names, cfg, *, step, epoch, best_acc, history) -> None:
    state = dict(format=STATE_FORMAT, checkpoint=_checkpoint_payload(model, class_names, cfg),
                 optimizer=optimizer.state_dict(), step=int(step), epoch=int(epoch),
                 best_acc=float(best_acc), history=history, config=config_dict(cfg))
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_train_state(path) -> dict:
    st = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(st, dict) or st.get("format") != STATE_FORMAT:
        raise ValueError(f"{path}: not an eventpipe training state (last.pt)")
    return st
