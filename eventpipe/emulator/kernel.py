"""Numba kernels of the DVS emulator, with a plain NumPy/Python reference beside each.

Model (v2e / ESIM): per pixel the (filtered) log intensity ``L`` is linear in
time between two frames, the memorised reference ``R`` drifts linearly down
by the leak, so their difference ``D = L - R`` is linear too:
``D(s) = D0 + (D1 - D0) s`` for ``s`` in ``[0, 1]`` across the interval
``(t0, t1]``.  ON crossing ``k`` (``k = 1 .. floor(D1 / C_on)``) happens where
``D(s) = k C_on``; OFF crossings likewise at ``-k C_off``.  Every crossing
moves ``R`` by one threshold.  A crossing becomes an event unless the pixel
emitted one less than ``refractory_us`` before; a suppressed crossing still
moves ``R`` (the change is lost, as a pixel held in reset loses it).  Shot
noise events (given, already drawn) join each pixel's crossings in time order,
obey the same refractory rule and leave ``R`` alone.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_ROUND_TOL = 1e-9


@njit(cache=True, nogil=True)
def lin_log(intensity, lin_threshold, eps, out):
    """Log response of a float 0-255 intensity image (flat arrays).

    Below ``lin_threshold`` the response is linear, ``I * log(thr) / thr``,
    continuous with ``log(I)`` above it (v2e's ``lin_log``).  With
    ``lin_threshold == 0`` it is ``log(I + eps)``.
    """
    n = intensity.shape[0]
    if lin_threshold > 0:
        f = math.log(lin_threshold) / lin_threshold
        for i in range(n):
            v = intensity[i]
            out[i] = v * f if v <= lin_threshold else math.log(v)
    else:
        for i in range(n):
            out[i] = math.log(intensity[i] + eps)
    return out


def lin_log_reference(intensity, lin_threshold, eps):
    intensity = np.asarray(intensity, dtype=np.float64)
    if lin_threshold > 0:
        f = np.log(lin_threshold) / lin_threshold
        with np.errstate(divide="ignore"):
            return np.where(intensity <= lin_threshold, intensity * f, np.log(np.maximum(intensity, 1e-300)))
    return np.log(intensity + eps)


@njit(cache=True, nogil=True)
def lowpass(lp, log_new, intensity, dt_s, tau_s):
    """First-order photoreceptor filter in place, bandwidth proportional to intensity.

    ``eps = min(1, (I + 20) / 275 * dt / tau)``; ``lp += eps * (log_new - lp)``
    (v2e's ``low_pass_filter``; ``I`` on the 0-255 scale).
    """
    k = dt_s / tau_s
    for i in range(lp.shape[0]):
        e = (intensity[i] + 20.0) / 275.0 * k
        if e > 1.0:
            e = 1.0
        lp[i] += e * (log_new[i] - lp[i])
    return lp


@njit(cache=True, nogil=True)
def _crossings(d1, thr):
    """Number of crossings and their sign (+1 ON, -1 OFF, 0 none) ending at ``D1``.

    A change of exactly ``k`` thresholds counts as ``k`` crossings despite
    round-off (``_ROUND_TOL``), so a pixel returning to its old intensity
    emits as many OFF events as it emitted ON events on the way up.
    """
    q = d1 / thr
    if q >= 1.0 - _ROUND_TOL:
        return int(math.floor(q + _ROUND_TOL)), 1
    if q <= -1.0 + _ROUND_TOL:
        return int(math.floor(-q + _ROUND_TOL)), -1
    return 0, 0


@njit(cache=True, nogil=True)
def emit_events(lp0, lp1, ref, last_t, pos_thr, neg_thr, leak_per_us, t0, t1,
                refractory_us, noise_ptr, noise_t, noise_p, width):
    """Events of one frame interval ``(t0, t1]`` for flat per-pixel arrays.

    Updates ``ref`` (reference log intensity) and ``last_t`` (time of the last
    emitted event per pixel) in place.  Returns ``(x, y, t, p, n_suppressed,
    n_noise)`` with events in pixel order, each pixel's in time order.
    """
    npix = lp0.shape[0]
    dt = float(t1 - t0)
    # pass 1: count (upper bound on the output)
    total = noise_t.shape[0]
    for i in range(npix):
        ref1 = ref[i] - leak_per_us[i] * dt
        d1 = lp1[i] - ref1
        thr = pos_thr[i] if d1 >= 0 else neg_thr[i]
        n, _ = _crossings(d1, thr)
        total += n
    xs = np.empty(total, np.uint16)
    ys = np.empty(total, np.uint16)
    ts = np.empty(total, np.int64)
    ps = np.empty(total, np.uint8)
    m = 0
    n_sup = 0
    n_noise = 0
    for i in range(npix):
        ref0 = ref[i]
        ref1 = ref0 - leak_per_us[i] * dt
        d0 = lp0[i] - ref0
        d1 = lp1[i] - ref1
        thr = pos_thr[i] if d1 >= 0 else neg_thr[i]
        n, sign = _crossings(d1, thr)
        j = noise_ptr[i]
        jend = noise_ptr[i + 1]
        if n == 0 and j == jend:
            ref[i] = ref1
            continue
        x = i % width
        y = i // width
        slope = d1 - d0
        k = 1
        while k <= n or j < jend:
            tk = t1 + 1
            if k <= n:
                s = 1.0
                if slope != 0.0:
                    s = (sign * k * thr - d0) / slope
                    s = min(max(s, 0.0), 1.0)
                tk = t0 + int(round(s * dt))
                if tk <= t0:
                    tk = t0 + 1
                elif tk > t1:
                    tk = t1
            is_noise = j < jend and noise_t[j] < tk
            if is_noise:
                tev = noise_t[j]
                pev = noise_p[j]
                j += 1
            else:
                tev = tk
                pev = 1 if sign > 0 else 0
                k += 1
            if tev - last_t[i] >= refractory_us:
                xs[m] = x
                ys[m] = y
                ts[m] = tev
                ps[m] = pev
                m += 1
                last_t[i] = tev
                if is_noise:
                    n_noise += 1
            else:
                n_sup += 1
        ref[i] = ref1 + sign * n * thr
    return xs[:m], ys[:m], ts[:m], ps[:m], n_sup, n_noise


def emit_events_reference(lp0, lp1, ref, last_t, pos_thr, neg_thr, t0, t1, refractory_us, width):
    """Slow, obvious version of :func:`emit_events` without leak or noise (for tests).

    Walks each pixel's crossings one at a time, moving the reference after each.
    """
    out = []
    dt = t1 - t0
    for i in range(len(lp0)):
        r = ref[i]
        while True:
            d = lp1[i] - r
            if d / pos_thr[i] >= 1.0 - _ROUND_TOL:
                r_new, p, level = r + pos_thr[i], 1, r + pos_thr[i]
            elif -d / neg_thr[i] >= 1.0 - _ROUND_TOL:
                r_new, p, level = r - neg_thr[i], 0, r - neg_thr[i]
            else:
                break
            slope = lp1[i] - lp0[i]
            s = 1.0 if slope == 0 else float(np.clip((level - lp0[i]) / slope, 0.0, 1.0))
            t = int(np.clip(t0 + round(s * dt), t0 + 1, t1))
            if t - last_t[i] >= refractory_us:
                out.append((i % width, i // width, t, p))
                last_t[i] = t
            r = r_new
        ref[i] = r
    return out


@njit(cache=True, nogil=True)
def sort_by_time(x, y, t, p, t0, t1):
    """Stable counting sort of one interval's events by ``t`` in ``(t0, t1]``.

    O(n + t1 - t0); callers use ``np.argsort(kind="stable")`` when the
    interval is much longer than the event count.
    """
    n = t.shape[0]
    span = t1 - t0
    counts = np.zeros(span + 1, np.int64)
    for i in range(n):
        counts[t[i] - t0] += 1
    acc = 0
    for k in range(span + 1):
        c = counts[k]
        counts[k] = acc
        acc += c
    xs = np.empty(n, np.uint16)
    ys = np.empty(n, np.uint16)
    ts = np.empty(n, np.int64)
    ps = np.empty(n, np.uint8)
    for i in range(n):
        j = counts[t[i] - t0]
        counts[t[i] - t0] = j + 1
        xs[j] = x[i]
        ys[j] = y[i]
        ts[j] = t[i]
        ps[j] = p[i]
    return xs, ys, ts, ps
