"""A learned temporal decoder (``decoder.rule = "learned"``, issue #16): a small network over the
model's last ``k`` per-window outputs that says the class of the current window.

Per stream and step (``history`` holds the last ``k`` log-probability vectors, oldest first; at a
stream's first step it is filled with that step's vector)::

    lp      = max(log_softmax(logits), -clip)            (one vector of C per window)
    x       = concat(history[0], ..., history[k - 1])     (k * C features; the newest last)
    h       = tanh(W_i @ h + b_i)                         (each hidden layer, h = x first)
    probs   = softmax(W_out @ h + b_out)

``probs`` then go through the EMA rule (``ema``, ``hysteresis``, ``challenger_ema``, ``release``,
``dwell``) in place of ``softmax(logits)``: the network reads the history (a transient confusion
that precedes a new action, a circle's curvature over several windows), the EMA rule keeps the
label steady.  The parameters live in a checkpoint's ``extra["decoder"]["learned"]`` as plain
lists (:func:`params_to_stored` / :func:`params_from_stored`); they are fitted by
:func:`fit` on training streams (:mod:`eventpipe.training.learned_tune`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

from eventpipe.errors import ConfigError

#: the stored format's version (``extra["decoder"]["learned"]["version"]``)
VERSION = 1


class LearnedParamsError(ConfigError):
    """Stored parameters of the learned decoder that cannot be used (exit ``CONFIG``); the message
    names the key."""


@dataclasses.dataclass(frozen=True)
class LearnedParams:
    k: int                        # windows of history
    classes: int                  # C
    clip: float                   # log-probabilities are clipped at -clip
    weights: tuple                # one (W [out, in], b [out]) per layer, float64

    @property
    def features(self) -> int:
        return self.k * self.classes


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def window_features(logits: np.ndarray, clip: float) -> np.ndarray:
    """The per-window vectors the history holds: ``max(log_softmax(logits), -clip)``."""
    return np.maximum(log_softmax(np.asarray(logits, np.float64)), -clip)


def forward(params: LearnedParams, x: np.ndarray) -> np.ndarray:
    """Class probabilities of feature rows ``x`` (``[N, k * C]`` or ``[k * C]``)."""
    h = np.asarray(x, np.float64)
    last = len(params.weights) - 1
    for i, (w, b) in enumerate(params.weights):
        h = h @ w.T + b
        if i < last:
            h = np.tanh(h)
    z = h - h.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def push_history(history: np.ndarray | None, vec: np.ndarray, k: int) -> np.ndarray:
    """The history after one window (``[k, C]``, oldest first); ``None``: a stream's first window,
    the history is filled with ``vec``."""
    if history is None:
        return np.repeat(vec[None], k, axis=0)
    out = np.empty_like(history)
    out[:-1] = history[1:]
    out[-1] = vec
    return out


def step(params: LearnedParams, history: np.ndarray | None, logits: np.ndarray):
    """One window of one stream: ``(probs, new_history)``."""
    hist = push_history(history, window_features(logits, params.clip), params.k)
    return forward(params, hist.reshape(-1)), hist


def stream_features(logits: np.ndarray, k: int, clip: float) -> np.ndarray:
    """Feature rows ``[N, k * C]`` of one stream's logits ``[N, C]``, exactly as :func:`step`
    builds them window by window (the first window repeated before the stream's start)."""
    lp = window_features(logits, clip)
    pad = np.concatenate([np.repeat(lp[:1], k - 1, axis=0), lp])
    return np.concatenate([pad[j:j + len(lp)] for j in range(k)], axis=1)


# -- stored form ------------------------------------------------------------------------------

def params_to_stored(params: LearnedParams) -> dict:
    """Plain lists and numbers for ``extra["decoder"]["learned"]``."""
    return {"version": VERSION, "k": int(params.k), "classes": int(params.classes),
            "clip": float(params.clip),
            "layers": [{"weight": w.tolist(), "bias": b.tolist()} for w, b in params.weights]}


def params_from_stored(stored: Any, classes: int | None = None,
                       key: str = "decoder.learned") -> LearnedParams:
    """Check and convert stored parameters; malformed ones raise :class:`LearnedParamsError`
    naming the key (e.g. ``decoder.learned.layers[1].weight``)."""
    if isinstance(stored, LearnedParams):
        p = stored
    else:
        if not isinstance(stored, dict):
            raise LearnedParamsError(f"{key}: expected a table of the learned decoder's parameters, "
                                     f"got {type(stored).__name__}")
        for name in ("version", "k", "classes", "clip", "layers"):
            if name not in stored:
                raise LearnedParamsError(f"{key}.{name}: missing")
        if stored["version"] != VERSION:
            raise LearnedParamsError(f"{key}.version: {stored['version']!r} is not supported "
                                     f"(this eventpipe reads version {VERSION})")
        k, c = _int(stored["k"], f"{key}.k"), _int(stored["classes"], f"{key}.classes")
        clip = stored["clip"]
        if isinstance(clip, bool) or not isinstance(clip, (int, float)) or not 0 < clip < float("inf"):
            raise LearnedParamsError(f"{key}.clip: expected a finite number > 0, got {clip!r}")
        layers = stored["layers"]
        if not isinstance(layers, list) or not layers:
            raise LearnedParamsError(f"{key}.layers: expected a non-empty list of layers")
        weights, width = [], k * c
        for i, layer in enumerate(layers):
            lk = f"{key}.layers[{i}]"
            if not isinstance(layer, dict) or "weight" not in layer or "bias" not in layer:
                raise LearnedParamsError(f"{lk}: expected a table with weight and bias")
            w = _array(layer["weight"], f"{lk}.weight", 2)
            b = _array(layer["bias"], f"{lk}.bias", 1)
            if w.shape[1] != width:
                raise LearnedParamsError(f"{lk}.weight: {w.shape[1]} inputs, expected {width}")
            if b.shape[0] != w.shape[0]:
                raise LearnedParamsError(f"{lk}.bias: {b.shape[0]} values for {w.shape[0]} outputs")
            weights.append((w, b))
            width = w.shape[0]
        if width != c:
            raise LearnedParamsError(f"{key}.layers[{len(layers) - 1}].weight: {width} outputs, "
                                     f"expected {c} (one per class)")
        p = LearnedParams(k=k, classes=c, clip=float(clip), weights=tuple(weights))
    if classes is not None and p.classes != classes:
        raise LearnedParamsError(f"{key}.classes: {p.classes}, but the model has {classes} classes")
    return p


def _int(v, key: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise LearnedParamsError(f"{key}: expected an integer >= 1, got {v!r}")
    return int(v)


def _array(v, key: str, ndim: int) -> np.ndarray:
    try:
        a = np.array(v, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise LearnedParamsError(f"{key}: not a {ndim}-d list of numbers ({e})") from None
    if a.ndim != ndim or 0 in a.shape:
        raise LearnedParamsError(f"{key}: expected a non-empty {ndim}-d list of numbers, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise LearnedParamsError(f"{key}: holds a value that is not finite")
    return a


# -- fitting ----------------------------------------------------------------------------------

def fit(streams: Sequence[tuple], classes: int, *, k: int = 6, hidden: int = 0, clip: float = 12.0,
        switch_weight: float = 1.0, switch_windows: int = 10, l2: float = 1e-4, steps: int = 300,
        seed: int = 0) -> LearnedParams:
    """Fit the network on ``streams`` (``(logits [N, C], truth [N], ...)`` each; truth < 0 is
    ignored) by full-batch L-BFGS on the cross-entropy of the true class, the windows within
    ``switch_windows`` after a change of truth weighing ``switch_weight``; ``hidden`` = 0 is
    multinomial logistic regression, else one tanh layer of that width.  Seeded: the same
    inputs give the same parameters."""
    import torch

    if int(k) < 1 or int(hidden) < 0:
        raise ValueError(f"fit: k must be >= 1 and hidden >= 0, got k={k}, hidden={hidden}")
    xs, ys, ws = [], [], []
    for s in streams:
        logits, truth = np.asarray(s[0]), np.asarray(s[1]).astype(np.int64)
        xs.append(stream_features(logits, k, clip))
        w = np.ones(len(truth))
        for i in np.flatnonzero(truth[1:] != truth[:-1]) + 1:
            w[i:i + switch_windows] = switch_weight
        w[truth < 0] = 0.0
        ys.append(np.maximum(truth, 0))
        ws.append(w)
    x = torch.from_numpy(np.concatenate(xs))
    y = torch.from_numpy(np.concatenate(ys))
    wt = torch.from_numpy(np.concatenate(ws))
    if not float(wt.sum()) > 0:
        raise ValueError("fit: no window with a known truth (truth >= 0) to fit on")
    wt = wt / wt.sum()
    gen = torch.Generator().manual_seed(int(seed))
    dims = [k * classes] + ([hidden] if hidden else []) + [classes]
    params = []
    for i in range(len(dims) - 1):
        w = torch.randn(dims[i + 1], dims[i], generator=gen, dtype=torch.float64) * (1.0 / dims[i]) ** 0.5
        if i == len(dims) - 2 and not hidden:
            w.zero_()
        params += [w.requires_grad_(), torch.zeros(dims[i + 1], dtype=torch.float64, requires_grad=True)]
    opt = torch.optim.LBFGS(params, lr=1.0, max_iter=int(steps), history_size=20,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-9, tolerance_change=1e-12)

    def run(x):
        h = x
        for i in range(0, len(params), 2):
            h = h @ params[i].T + params[i + 1]
            if i + 2 < len(params):
                h = torch.tanh(h)
        return h

    def closure():
        opt.zero_grad()
        ce = torch.nn.functional.cross_entropy(run(x), y, reduction="none")
        loss = (ce * wt).sum() + l2 * sum((p ** 2).sum() for p in params[0::2])
        loss.backward()
        return loss

    opt.step(closure)
    weights = tuple((params[i].detach().numpy().copy(), params[i + 1].detach().numpy().copy())
                    for i in range(0, len(params), 2))
    return LearnedParams(k=int(k), classes=int(classes), clip=float(clip), weights=weights)
