"""Videos of moving shapes for the own-actions tests, as a camera would film them (then
the DVS emulator): a bright square sliding sideways (``horizontal``), a bright square
rising (``vertical``), a disc in the middle blinking (``blink``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

CLASSES = ("horizontal", "vertical", "blink")
SIZE = 64          # video frames (the emulator scales them to its sensor)
FPS = 30
SPEED = 96.0       # pixels per second


def frame(cls: str, t: float, rng_phase: float) -> np.ndarray:
    img = np.full((SIZE, SIZE), 40, np.uint8)
    side = 16
    d = (SPEED * t + rng_phase) % (SIZE + side) - side
    c = SIZE // 2 - side // 2
    if cls == "horizontal":
        x, y = d, c
    elif cls == "vertical":
        x, y = c, SIZE - side - d
    elif cls == "blink":
        if int(t * 6 + rng_phase) % 2:
            import cv2

            cv2.circle(img, (SIZE // 2, SIZE // 2), 12, 200, -1)
        return img
    else:
        raise ValueError(cls)
    x0, y0 = int(round(x)), int(round(y))
    img[max(0, y0):max(0, y0 + side), max(0, x0):max(0, x0 + side)] = 200
    return img


def render_take(path: Path, segments: list[tuple[str, float]], seed: int) -> list[tuple[float, float, str]]:
    """Write an MJPG .avi of consecutive ``(class, seconds)`` segments; returns the
    segments as ``(start_s, end_s, label)`` in video time."""
    import cv2

    rng = np.random.default_rng(seed)
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (SIZE, SIZE), False)
    assert out.isOpened(), f"cannot write {path}"
    t0, truth, i = 0.0, [], 0
    for cls, secs in segments:
        phase = float(rng.uniform(0, SIZE))
        n = int(round(secs * FPS))
        for k in range(n):
            out.write(frame(cls, k / FPS, phase))
        truth.append((t0, t0 + n / FPS, cls))
        t0 += n / FPS
        i += n
    out.release()
    return truth
