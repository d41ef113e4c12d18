"""Turning per-step logits into label messages.

Functional core (:func:`softmax`, :func:`ema_update`, :func:`choose_label`) and a
thin :class:`LabelDecoder` that keeps one explicit :class:`StreamState` per stream.

Per stream and step::

    probs  = softmax(logits)
    smooth = probs                                  (first step)
    smooth = ema * smooth_prev + (1 - ema) * probs  (later steps; ema=0: no smoothing)

The candidate is ``argmax(smooth)``.  With a current label ``L``, the candidate
``K`` wins only when ``smooth[K] >= smooth[L] + hysteresis``.
When ``max(smooth) < threshold`` the candidate is ``None`` (no confident class).

With ``challenger_ema`` set (below ``ema``), a challenger is judged on a faster EMA of the
same probabilities (``fast``, that factor) while the current label keeps the slower one:
the candidate is ``argmax(fast)`` and ``K`` wins when ``fast[K] >= max(smooth[L], fast[L]) +
hysteresis`` (the threshold applies to ``fast``).  A new action that the model says clearly is
taken within a step or two; a blip must still beat the current label's steady support by the
margin.  ``challenger_ema=None`` (or ``>= ema``) is the single-EMA rule above.
With ``release`` set, a current label the model has let go of is let go of sooner: once its
slow EMA ``smooth[L]`` is below ``release``, its support is its fast EMA alone (``fast[L]``;
``smooth[L]`` without a challenger EMA) and the margin is ``release_hysteresis`` (None: the
``hysteresis``).  A settled label keeps its full support; after a switch the old class's
probability halves within ~100 ms, and the new one no longer has to beat what the slow EMA
still remembers of it.
With ``rule="hmm"`` the label comes from an online Bayes (HMM forward) filter over the
classes instead (``ema``, ``hysteresis``, ``challenger_ema`` and ``release*`` are then unused)::

    prior  = uniform                                          (first step)
    prior  = (1 - hazard) * post_prev + hazard * (1 - post_prev) / (C - 1)
             (the action stays with probability 1 - hazard per step, else any other class)
    like   = (1 - floor) * softmax(logits / temperature) + floor / C
    post   = prior * like / sum(prior * like)

The candidate is ``argmax(post)``; a challenger ``K`` replaces the current label once
``post[K] >= min_posterior``.  ``temperature`` > 1 flattens the model's evidence (consecutive
windows overlap and share membranes, so their outputs are not independent); ``floor`` bounds
what one window can say.  ``score`` and ``topk`` are then posterior probabilities.
With ``rule="learned"`` a small network over the last ``k`` windows' log-probabilities
(:mod:`eventpipe.learned_decoder`, its parameters ``learned``: a checkpoint's
``extra["decoder"]["learned"]``) gives each step's class probabilities in place of
``softmax(logits)``; they then go through the EMA rule above (``ema``, ``hysteresis``,
``challenger_ema``, ``release*``).
The label becomes a winning candidate once it has won ``dwell`` steps in a row
(1: at once); a step where the current label wins again resets that count.
A message is emitted when the label changed (``emit_on_change``) and/or
every ``emit_every`` steps (0: never periodically).

A message: ``{"stream", "seq", "t_us", "label", "score", "topk": [[name, prob], ...],
"latency_ms", "truth"?}``; ``score`` is the smoothed probability of ``label``.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Sequence

import numpy as np

from eventpipe.learned_decoder import LearnedParamsError, params_from_stored
from eventpipe.learned_decoder import step as learned_step


#: decoder settings a checkpoint may carry (``extra["decoder"]``) and their values for one
#: that carries none: no smoothing, the label follows the argmax at once
STORED_SETTINGS = {"ema": 0.0, "hysteresis": 0.0, "dwell": 1, "challenger_ema": None}

#: optional settings, passed on only when the config or the checkpoint sets them (None = off)
OPTIONAL_SETTINGS = ("release", "release_hysteresis", "rule", "hazard", "temperature", "floor",
                     "min_posterior", "margin", "hazard_ramp", "learned")

#: the decoding rules (``rule``): EMA + hysteresis (the default), the HMM forward filter, or the
#: learned network over the recent windows followed by the EMA rule
RULES = ("ema", "hmm", "learned")


def decoder_settings(configured: dict, stored: dict | None) -> dict:
    """The ``ema``/``hysteresis``/``dwell``/``challenger_ema`` a stream decoder uses: the run config's value where
    it sets one (not None), else the checkpoint's stored value (``extra["decoder"]``, e.g. the
    shipped model's, chosen by ``eventpipe.training.decoder_tune``), else
    :data:`STORED_SETTINGS`."""
    stored = stored if isinstance(stored, dict) else {}
    out = {}
    for key, default in STORED_SETTINGS.items():
        v = configured.get(key)
        out[key] = v if v is not None else stored.get(key, default)
    for key in OPTIONAL_SETTINGS:
        v = configured.get(key)
        v = v if v is not None else stored.get(key)
        if v is not None:
            out[key] = v
    return out


def to_numpy(logits) -> np.ndarray:
    """numpy or torch (any device, with grad) -> float64 numpy array."""
    if hasattr(logits, "detach"):
        logits = logits.detach().cpu().numpy()
    return np.asarray(logits, dtype=np.float64)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def ema_update(prev: np.ndarray | None, probs: np.ndarray, ema: float) -> np.ndarray:
    if prev is None:
        return probs.copy()
    return ema * prev + (1.0 - ema) * probs


def hmm_update(prev: np.ndarray | None, likelihood: np.ndarray, hazard: float) -> np.ndarray:
    """One step of the forward filter (module docstring): the posterior over the classes after
    ``likelihood`` (one value per class), from the previous posterior ``prev`` (``None``: a
    uniform prior).  A step whose evidence rules out every class left keeps the prior."""
    c = likelihood.shape[-1]
    if prev is None:
        prior = np.full(c, 1.0 / c)
    elif c == 1:
        prior = prev
    else:
        prior = (1.0 - hazard) * prev + hazard * (1.0 - prev) / (c - 1)
    post = prior * likelihood
    total = post.sum()
    if not np.isfinite(total) or total <= 0.0:
        return prior
    return post / total


def hmm_likelihood(logits: np.ndarray, temperature: float, floor: float) -> np.ndarray:
    """The emission likelihood of one step: ``(1 - floor) * softmax(logits / temperature) +
    floor / C``."""
    return (1.0 - floor) * softmax(logits / temperature) + floor / logits.shape[-1]


def choose_hmm_label(post: np.ndarray, current: int | None, threshold: float,
                     min_posterior: float, margin: float = 0.0) -> int | None:
    """The candidate label of one step of the HMM rule: ``argmax(post)`` (``None`` below
    ``threshold``); a challenger replaces ``current`` once its posterior is >= ``min_posterior``
    and leads the current label's by ``margin``."""
    k = int(np.argmax(post))
    if post[k] < threshold:
        return None
    if current is None or k == current or (post[k] >= min_posterior
                                           and post[k] >= post[current] + margin):
        return k
    return current


def choose_label(smooth: np.ndarray, current: int | None, threshold: float,
                 hysteresis: float, fast: np.ndarray | None = None,
                 release: float | None = None, release_hysteresis: float | None = None) -> int | None:
    """The candidate label of one step (module docstring): ``fast`` (the challengers' EMA;
    ``None`` = ``smooth``) picks it and must beat the current label's support by
    ``hysteresis`` (by ``release_hysteresis`` over ``fast[current]`` alone once
    ``smooth[current] < release``)."""
    f = smooth if fast is None else fast
    k = int(np.argmax(f))
    if f[k] < threshold:
        return None
    if current is None or k == current:
        return k
    if release is not None and smooth[current] < release:
        margin = hysteresis if release_hysteresis is None else release_hysteresis
        return k if f[k] >= f[current] + margin else current
    lead = smooth[current] if fast is None else max(smooth[current], f[current])
    return k if f[k] >= lead + hysteresis else current


@dataclasses.dataclass
class StreamState:
    smooth: np.ndarray | None = None   # the EMA of the probabilities, or the HMM posterior
    fast: np.ndarray | None = None   # the challengers' EMA (challenger_ema), when set
    label: int | None = None
    steps: int = 0
    since_emit: int = 0
    pending: int | None = None   # the challenger of the current label and its winning streak
    streak: int = 0
    since_change: int = 0        # steps since the label last changed (the HMM's hazard_ramp)
    history: np.ndarray | None = None   # the learned rule's last k log-probability vectors


class LabelDecoder:
    def __init__(self, class_names: Sequence[str], *, ema: float = 0.6, topk: int = 5,
                 threshold: float = 0.0, hysteresis: float = 0.0, dwell: int = 1,
                 emit_every: int = 0, emit_on_change: bool = True,
                 challenger_ema: float | None = None, release: float | None = None,
                 release_hysteresis: float | None = None, rule: str = "ema",
                 hazard: float = 0.01, temperature: float = 1.0, floor: float = 0.0,
                 min_posterior: float = 0.5, margin: float = 0.0, hazard_ramp: int = 0,
                 learned=None):
        self.class_names = [str(c) for c in class_names]
        if not self.class_names:
            raise ValueError("class_names must not be empty")
        _check_unit_interval(ema=ema, threshold=threshold, hysteresis=hysteresis,
                             challenger_ema=challenger_ema, release=release,
                             release_hysteresis=release_hysteresis, hazard=hazard, floor=floor,
                             min_posterior=min_posterior, margin=margin)
        if int(topk) < 1:
            raise ValueError(f"topk must be >= 1, got {topk}")
        if rule not in RULES:
            raise ValueError(f"rule must be one of {', '.join(RULES)}, got {rule!r}")
        if _not_number(temperature) or not 0.0 < temperature < float("inf"):
            raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
        if isinstance(hazard_ramp, bool) or int(hazard_ramp) != hazard_ramp or int(hazard_ramp) < 0:
            raise ValueError(f"hazard_ramp must be an integer >= 0, got {hazard_ramp!r}")
        self.learned = None
        if rule == "learned":
            if learned is None:
                raise LearnedParamsError(
                    "decoder.rule = 'learned' needs the learned decoder's parameters "
                    "(decoder.learned: a checkpoint's extra['decoder']['learned'], written by "
                    "python -m eventpipe.training.learned_tune --store)")
            self.learned = params_from_stored(learned, len(self.class_names))
        if isinstance(dwell, bool) or int(dwell) != dwell or int(dwell) < 1:
            raise ValueError(f"dwell must be an integer >= 1, got {dwell}")
        if int(emit_every) < 0:
            raise ValueError(f"emit_every must be >= 0, got {emit_every}")
        self.ema = float(ema)
        self.topk = min(int(topk), len(self.class_names))
        self.threshold = float(threshold)
        self.hysteresis = float(hysteresis)
        self.dwell = int(dwell)
        # a challenger EMA no faster than ``ema`` is the single-EMA rule (e.g. ``ema=0``)
        self.challenger_ema = (None if challenger_ema is None or float(challenger_ema) >= self.ema
                               else float(challenger_ema))
        self.release = None if release is None else float(release)
        self.release_hysteresis = None if release_hysteresis is None else float(release_hysteresis)
        self.rule = rule
        self.hazard = float(hazard)
        self.temperature = float(temperature)
        self.floor = float(floor)
        self.min_posterior = float(min_posterior)
        self.margin = float(margin)
        self.hazard_ramp = int(hazard_ramp)
        self.emit_every = int(emit_every)
        self.emit_on_change = bool(emit_on_change)
        self.states: dict[Any, StreamState] = {}

    def reset(self, stream=None) -> None:
        """Forget one stream's state (or all)."""
        if stream is None:
            self.states.clear()
        else:
            self.states.pop(stream, None)

    def step(self, logits, *, streams: Sequence | None = None, seq=None, t_us=None,
             t_arrival: float | Sequence[float] | None = None, truth=None) -> list[dict]:
        """Feed logits ``[B, C]`` (or ``[C]``); return the messages to emit.

        ``streams``: B stream ids (default 0..B-1).  ``seq``/``t_us``/``truth``:
        a scalar or B values.  ``t_arrival``: ``time.monotonic()`` when the
        step's newest events arrived; ``latency_ms`` = now - t_arrival.
        """
        x = to_numpy(logits)
        if x.ndim == 1:
            x = x[None]
        if x.ndim != 2 or x.shape[1] != len(self.class_names):
            raise ValueError(f"logits must be [B, {len(self.class_names)}], got {x.shape}")
        b = x.shape[0]
        streams = list(range(b)) if streams is None else list(streams)
        if len(streams) != b:
            raise ValueError(f"{len(streams)} stream ids for a batch of {b}")
        probs = softmax(x)
        now = time.monotonic()
        out = []
        for i, sid in enumerate(streams):
            st = self.states.setdefault(sid, StreamState())
            if self.rule == "hmm":
                # st.smooth holds the posterior (messages report it as score / topk)
                h = self.hazard
                if self.hazard_ramp:
                    h *= min(1.0, (st.since_change + 1) / self.hazard_ramp)
                st.smooth = hmm_update(st.smooth, hmm_likelihood(x[i], self.temperature, self.floor), h)
                cand = choose_hmm_label(st.smooth, st.label, self.threshold, self.min_posterior,
                                        self.margin)
            else:
                p = probs[i]
                if self.learned is not None:
                    p, st.history = learned_step(self.learned, st.history, x[i])
                st.smooth = ema_update(st.smooth, p, self.ema)
                if self.challenger_ema is not None:
                    st.fast = ema_update(st.fast, p, self.challenger_ema)
                cand = choose_label(st.smooth, st.label, self.threshold, self.hysteresis, st.fast,
                                    self.release, self.release_hysteresis)
            new = self._debounce(st, cand)
            changed = new != st.label or st.steps == 0
            st.since_change = 0 if changed else st.since_change + 1
            st.label = new
            st.steps += 1
            st.since_emit += 1
            periodic = self.emit_every > 0 and st.since_emit >= self.emit_every
            if not ((self.emit_on_change and changed) or periodic):
                continue
            st.since_emit = 0
            out.append(self._message(sid, st, _pick(seq, i), _pick(t_us, i),
                                     _pick(t_arrival, i), _pick(truth, i), now))
        return out

    def _debounce(self, st: StreamState, cand: int | None) -> int | None:
        """The label after this step: ``cand`` once it has won ``dwell`` steps in a row."""
        if st.steps == 0 or cand == st.label:
            st.pending, st.streak = None, 0
            return cand
        if cand == st.pending:
            st.streak += 1
        else:
            st.pending, st.streak = cand, 1
        if st.streak >= self.dwell:
            st.pending, st.streak = None, 0
            return cand
        return st.label

    def _message(self, sid, st: StreamState, seq, t_us, t_arrival, truth, now) -> dict:
        order = np.argsort(-st.smooth, kind="stable")[:self.topk]
        msg = {
            "stream": sid,
            "seq": None if seq is None else int(seq),
            "t_us": None if t_us is None else int(t_us),
            "label": None if st.label is None else self.class_names[st.label],
            "score": None if st.label is None else float(st.smooth[st.label]),
            "topk": [[self.class_names[k], float(st.smooth[k])] for k in order],
            "latency_ms": None if t_arrival is None else (now - float(t_arrival)) * 1e3,
        }
        if truth is not None:
            msg["truth"] = truth if isinstance(truth, str) else (
                self.class_names[int(truth)] if 0 <= int(truth) < len(self.class_names)
                else int(truth))
        return msg


# the settings that are fractions: name -> (right end open, None allowed)
_UNIT_INTERVAL = {"ema": (True, False), "threshold": (False, False), "hysteresis": (False, False),
                  "challenger_ema": (True, True), "release": (False, True),
                  "release_hysteresis": (False, True), "hazard": (True, False),
                  "floor": (True, False), "min_posterior": (False, False), "margin": (False, False)}


def _check_unit_interval(**values) -> None:
    """ValueError naming the first setting outside [0, 1] (or [0, 1) where the right end is open)."""
    for name, v in values.items():
        open_right, nullable = _UNIT_INTERVAL[name]
        if v is None and nullable:
            continue
        if _not_number(v) or not (0.0 <= v < 1.0 if open_right else 0.0 <= v <= 1.0):
            raise ValueError(f"{name} must be in [0, 1{')' if open_right else ']'}, got {v!r}")


def _not_number(v) -> bool:
    return isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or v != v


def _pick(v, i):
    if v is None or isinstance(v, (str, bytes)) or np.ndim(v) == 0:
        return v
    return v[i]
