"""The action classes: stick figures and a hand, posed as a pure function of time.

"Left"/"right" are the viewer's (image) left and right; image ``y`` grows
downwards, so ``swipe_up`` moves towards ``y = 0`` and ``circle_clockwise``
turns clockwise as seen on screen.
"""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np

from eventpipe.synthetic.scene import SHIFT, pt, sub

CLASS_NAMES: tuple[str, ...] = (
    "wave_left_hand", "wave_right_hand", "clap", "jump",
    "circle_clockwise", "circle_anticlockwise",
    "swipe_up", "swipe_down", "swipe_left", "swipe_right",
    "push", "idle",
)
FIGURE_CLASSES = frozenset({"wave_left_hand", "wave_right_hand", "clap", "jump", "idle"})
SWIPE_DIRECTIONS = {"swipe_left": (-1.0, 0.0), "swipe_right": (1.0, 0.0),
                    "swipe_up": (0.0, -1.0), "swipe_down": (0.0, 1.0)}
_TAU = 2 * math.pi


@dataclasses.dataclass(frozen=True)
class Actor:
    """One performer: where, how big, how fast; everything else follows from time."""

    label: str
    sensor_size: tuple[int, int]
    cx: float            # figure hip / hand or circle centre (px)
    cy: float
    size: float          # figure height, or palm radius (px)
    freq_hz: float       # repetitions per second
    phase: float         # 0-1 of a cycle at t = 0
    intensity: int       # 0-255 drawing level
    orient: float        # hand tilt (rad)
    extra: float         # circle radius (px) or swipe offset across the path (px)


def label_index(label) -> int:
    if isinstance(label, (int, np.integer)):
        if not 0 <= int(label) < len(CLASS_NAMES):
            raise ValueError(f"label index {label} out of range 0..{len(CLASS_NAMES) - 1}")
        return int(label)
    try:
        return CLASS_NAMES.index(label)
    except ValueError:
        import difflib
        close = difflib.get_close_matches(str(label), CLASS_NAMES, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown action {label!r}{hint} (classes: {', '.join(CLASS_NAMES)})") from None


def sample_actor(label, rng: np.random.Generator, sensor_size=(128, 128),
                 scene_mean: float = 100.0) -> Actor:
    """Draw an actor.  The same ``rng`` state gives the same place, size and tempo
    for every label (draws do not depend on it), so classes can be compared
    like for like."""
    name = CLASS_NAMES[label_index(label)]
    w, h = sensor_size
    m = min(w, h)
    ux, uy, us, uf, phase, bright, level, orient, ue = (float(v) for v in rng.random(9))
    intensity = (min(250.0, max(2.0 * scene_mean, 180 + 70 * level)) if bright < 0.5
                 else max(3.0, min(0.4 * scene_mean, 5 + 25 * level)))
    orient = (orient - 0.5) * math.radians(40)
    if name in FIGURE_CLASSES:
        s = (0.55 + 0.25 * us) * h
        top = 0.56 * s + (0.2 * s if name == "jump" else 0) + 1
        lo, hi = top, max(top, h - 0.44 * s - 1)
        xlo, xhi = 0.36 * s, max(0.36 * s, w - 0.36 * s)
        cx, cy = xlo + ux * (xhi - xlo), lo + uy * (hi - lo)
        freq = {"jump": 1.2 + 0.8 * uf, "idle": 0.2 + 0.3 * uf}.get(name, 1.5 + 1.5 * uf)
        return Actor(name, (w, h), cx, cy, s, freq, phase, int(intensity), orient, 0.0)
    r = (0.06 + 0.03 * us) * m
    if name.startswith("circle"):
        radius = (0.15 + 0.12 * ue) * m
        reach = radius + 1.5 * r
        cx = reach + ux * max(w - 2 * reach, 0)
        cy = reach + uy * max(h - 2 * reach, 0)
        return Actor(name, (w, h), cx, cy, r, 0.8 + 0.8 * uf, phase, int(intensity), orient, radius)
    if name == "push":
        reach = 2.6 * r
        cx = reach + ux * max(w - 2 * reach, 0)
        cy = reach + uy * max(h - 2 * reach, 0)
        return Actor(name, (w, h), cx, cy, r, 0.8 + 0.8 * uf, phase, int(intensity), orient, 0.0)
    offset = (ue - 0.5) * 0.5 * m
    return Actor(name, (w, h), w / 2, h / 2, r, 1.1 + 0.9 * uf, phase, int(intensity), orient, offset)


# -- drawing -----------------------------------------------------------------

def _line(img, a, b, level, thickness):
    cv2.line(img, pt(*a), pt(*b), level, max(int(round(thickness)), 1), cv2.LINE_AA, SHIFT)


def _limb(start, angle_deg, length, outward):
    """End of a limb ``length`` long at ``angle_deg`` from straight down, bending outward."""
    a = math.radians(angle_deg)
    return (start[0] + outward * math.sin(a) * length, start[1] + math.cos(a) * length)


def _ik_elbow(shoulder, hand, l1, l2, outward):
    dx, dy = hand[0] - shoulder[0], hand[1] - shoulder[1]
    d = min(max(math.hypot(dx, dy), 1e-6), l1 + l2 - 1e-6)
    base = math.atan2(dy, dx)
    bend = math.acos(max(-1.0, min(1.0, (l1 * l1 + d * d - l2 * l2) / (2 * l1 * d))))
    ang = base - outward * bend  # elbow below and outside the shoulder-hand line
    return (shoulder[0] + l1 * math.cos(ang), shoulder[1] + l1 * math.sin(ang))


def figure_pose(a: Actor, t_s: float) -> dict[str, tuple]:
    """Joint positions of a stick figure at time ``t_s``."""
    s = a.size
    th = _TAU * (a.freq_hz * t_s + a.phase)
    dy, crouch, air, sway = 0.0, 0.0, 0.0, 0.0
    if a.label == "jump":
        air, crouch = max(0.0, math.sin(th)), max(0.0, -math.sin(th))
        dy = -0.18 * s * air + 0.06 * s * crouch
    elif a.label == "idle":
        sway = 0.015 * s * math.sin(th)
    hip = (a.cx + sway, a.cy + dy)
    neck = (hip[0] + 0.5 * sway, hip[1] - 0.35 * s)
    head = (neck[0], neck[1] - 0.11 * s)
    legs = []
    for side in (-1, 1):
        root = (hip[0] + side * 0.04 * s, hip[1])
        knee = _limb(root, 8 + 30 * crouch, 0.22 * s, side)
        legs.append((root, knee, _limb(knee, 8 - 30 * crouch, 0.2 * s, side)))
    arms = []
    for side in (-1, 1):
        sh = (neck[0] + side * 0.09 * s, neck[1] + 0.02 * s)
        waving = (a.label == "wave_left_hand" and side < 0) or (a.label == "wave_right_hand" and side > 0)
        if waving:
            elbow = _limb(sh, 110 + 8 * math.sin(th), 0.17 * s, side)
            hand = _limb(elbow, 155 + 35 * math.sin(th + 0.3), 0.15 * s, side)
        elif a.label == "clap":
            open_ = 0.5 + 0.5 * math.cos(th)
            hand = (neck[0] + side * (0.02 + 0.3 * open_) * s, neck[1] + 0.2 * s)
            elbow = _ik_elbow(sh, hand, 0.17 * s, 0.15 * s, side)
        else:
            up = 70 * air
            elbow = _limb(sh, 12 + up + 2 * math.sin(th), 0.17 * s, side)
            hand = _limb(elbow, 8 + 1.0 * up, 0.15 * s, side)
        arms.append((sh, elbow, hand))
    return {"hip": hip, "neck": neck, "head": head, "legs": legs, "arms": arms}


def _draw_figure(img, a: Actor, t_s: float) -> None:
    p = figure_pose(a, t_s)
    th = max(2.0, 0.045 * a.size)
    level = int(a.intensity)
    _line(img, p["hip"], p["neck"], level, th * 1.3)
    cv2.circle(img, pt(*p["head"]), sub(0.08 * a.size), level, -1, cv2.LINE_AA, SHIFT)
    for root, knee, foot in p["legs"]:
        _line(img, p["hip"], root, level, th)
        _line(img, root, knee, level, th)
        _line(img, knee, foot, level, th)
    for sh, elbow, hand in p["arms"]:
        _line(img, p["neck"], sh, level, th)
        _line(img, sh, elbow, level, th)
        _line(img, elbow, hand, level, th)
        cv2.circle(img, pt(*hand), sub(0.6 * th), level, -1, cv2.LINE_AA, SHIFT)


def draw_hand(img, x: float, y: float, r: float, tilt: float, level: int) -> None:
    """An open palm: a disc, four fingers and a thumb, fingers pointing up (tilted)."""
    cv2.circle(img, pt(x, y), sub(r), level, -1, cv2.LINE_AA, SHIFT)
    for k, spread in enumerate((-0.45, -0.15, 0.15, 0.45)):
        ang = tilt + spread
        base = (x + 0.7 * r * math.sin(ang), y - 0.7 * r * math.cos(ang))
        length = r * (1.1 if k in (1, 2) else 0.9)
        tip = (base[0] + length * math.sin(ang), base[1] - length * math.cos(ang))
        _line(img, base, tip, level, max(1.0, 0.38 * r))
    ang = tilt - 1.3
    _line(img, (x + 0.6 * r * math.sin(ang), y - 0.6 * r * math.cos(ang)),
          (x + 1.4 * r * math.sin(ang), y - 1.4 * r * math.cos(ang)), level, max(1.0, 0.4 * r))


def hand_position(a: Actor, t_s: float) -> tuple[float, float, float]:
    """Centre and palm radius of the hand at ``t_s`` (hand classes only)."""
    cyc = a.freq_hz * t_s + a.phase
    if a.label.startswith("circle"):
        sign = 1.0 if a.label == "circle_clockwise" else -1.0
        ang = _TAU * sign * cyc
        return a.cx + a.extra * math.cos(ang), a.cy + a.extra * math.sin(ang), a.size
    if a.label == "push":
        grow = 0.5 - 0.5 * math.cos(_TAU * cyc)
        return a.cx, a.cy, a.size * (1.0 + 1.3 * grow)
    dx, dy = SWIPE_DIRECTIONS[a.label]
    w, h = a.sensor_size
    path = (w if dx else h) + 5.0 * a.size
    along = (cyc % 1.0 - 0.5) * path
    return a.cx + along * dx - a.extra * dy, a.cy + along * dy + a.extra * dx, a.size


def draw_actor(img: np.ndarray, a: Actor, t_s: float) -> None:
    """Draw ``a`` at time ``t_s`` onto a uint8 image, in place."""
    if a.label in FIGURE_CLASSES:
        _draw_figure(img, a, t_s)
    else:
        x, y, r = hand_position(a, t_s)
        draw_hand(img, x, y, r, a.orient, int(a.intensity))
