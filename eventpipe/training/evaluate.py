"""Clip-level evaluation of a checkpoint: accuracy, confusion matrix, confusion-matrix PNG."""

from __future__ import annotations

import os
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch.utils.data import DataLoader

import snn
from eventpipe.training.trainer import evaluate


def load_for_eval(checkpoint) -> Tuple[torch.nn.Module, Dict[str, Any]]:
    """``snn`` checkpoint path (fp16 weights are loaded into the fp32 model) -> (model.eval(), meta)."""
    model, meta = snn.load_checkpoint(checkpoint)
    return model.float().eval(), meta


@torch.no_grad()
def eval_clips(checkpoint: Union[str, os.PathLike, Tuple[torch.nn.Module, Dict[str, Any]]], dataset,
               batch_size: int = 32, png: Optional[str] = None, device: str = "cpu",
               title: Optional[str] = None) -> Dict[str, Any]:
    """Accuracy and confusion matrix (rows = truth, columns = prediction) of ``checkpoint`` on
    ``dataset`` (items ``(frames [T, 2, H, W], label)``, e.g. from
    :func:`eventpipe.training.datasets.build_dataset` with ``train=False``); for items with one
    target per window (``synthetic_stream``) the accuracy is per window.

    ``png``: also draw the row-normalised confusion matrix there."""
    model, meta = load_for_eval(checkpoint) if isinstance(checkpoint, (str, os.PathLike)) else checkpoint
    model = model.to(device).eval()
    names = list(meta.get("class_names") or getattr(dataset, "class_names", None)
                 or [str(i) for i in range(model.num_classes)])
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    conf = np.asarray(evaluate(model, loader, torch.device(device), model.num_classes)["confusion"], np.int64)
    n = int(conf.sum())
    acc = float(np.trace(conf)) / max(1, n)
    per_class = (np.diag(conf) / np.maximum(1, conf.sum(1))).tolist()
    res = dict(accuracy=acc, confusion=conf, n=n, class_names=names, per_class_accuracy=per_class)
    if png:
        plot_confusion(conf, names, png, title=title or f"clip accuracy {acc:.3f} (n={n})")
    return res


def plot_confusion(conf, class_names: Sequence[str], path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conf = np.asarray(conf)
    norm = conf / np.maximum(1, conf.sum(1, keepdims=True))
    k = len(class_names)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * k, 0.8 + 0.5 * k))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), class_names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(k), class_names, fontsize=8)
    ax.set_xlabel("predicted"); ax.set_ylabel("true")
    for i in range(k):
        for j in range(k):
            if conf[i, j]:
                ax.text(j, i, str(int(conf[i, j])), ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
