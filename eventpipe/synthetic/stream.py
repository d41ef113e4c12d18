"""An endless live stream of synthetic actions with ground truth, for runtime demos and tests.

One continuous scene and one emulator run for the whole stream; every
``switch_every_s`` a new performer (a different class, drawn from the seed)
cross-fades in over ``crossfade_s`` while the old one keeps moving, so event
time and sensor state never jump.  ``truth`` switches exactly at the segment
boundary ``k * switch_every_s``.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Iterator, Mapping

import numpy as np

from eventpipe.emulator import DvsEmulator, EmulatorConfig
from eventpipe.events import EVENT_DTYPE, check_sensor_size
from eventpipe.synthetic.actors import CLASS_NAMES, Actor, label_index, sample_actor
from eventpipe.synthetic.clips import DEFAULT_FPS, render_frame
from eventpipe.synthetic.scene import sample_scene

#: a new performer fades in over this long at each switch
DEFAULT_CROSSFADE_S = 0.2

#: sensor settings of the stream unless given: a clean-ish modern sensor
STREAM_CONFIG = EmulatorConfig(refractory_us=100, shot_noise_rate_hz=0.05, leak_rate_hz=0.02)


@dataclasses.dataclass(frozen=True)
class StreamPacket:
    """Events with ``t_start_us <= t < t_end_us`` and the action performed at ``t_start_us``."""

    events: np.ndarray
    t_start_us: int
    t_end_us: int
    truth: int
    truth_name: str


class SyntheticStream:
    """Iterate to get :class:`StreamPacket` s of ``packet_us`` each, forever or for
    ``duration_s``.  Every iteration restarts the same stream from ``seed``.

    ``classes`` restricts the actions (``truth`` indexes :data:`CLASS_NAMES`);
    ``realtime=True`` paces packets to the wall clock (for live demos).
    """

    def __init__(self, seed: int = 0, switch_every_s: float = 3.0, sensor_size=(128, 128),
                 packet_us: int = 10_000, fps: float = DEFAULT_FPS, classes=CLASS_NAMES,
                 crossfade_s: float = DEFAULT_CROSSFADE_S, duration_s: float | None = None,
                 config: EmulatorConfig | Mapping[str, Any] | None = None, realtime: bool = False):
        self.seed = int(seed)
        self.sensor_size = check_sensor_size(sensor_size)
        if not (switch_every_s > 0 and packet_us > 0 and fps > 0):  # NaN too
            raise ValueError("switch_every_s, packet_us and fps must be > 0")
        if not 0 <= crossfade_s < switch_every_s:
            raise ValueError(f"crossfade_s must be in [0, switch_every_s), got {crossfade_s}")
        self.classes = tuple(label_index(c) for c in classes)
        if len(self.classes) < 2:
            raise ValueError("a stream needs at least two classes to switch between")
        self.switch_us = int(round(switch_every_s * 1e6))
        self.packet_us = int(packet_us)
        self.fps = float(fps)
        self.crossfade_us = int(round(crossfade_s * 1e6))
        self.duration_us = None if duration_s is None else int(round(duration_s * 1e6))
        self.config = STREAM_CONFIG if config is None else config
        self.realtime = bool(realtime)

    # -- the schedule (pure functions of the seed) --------------------------

    def labels(self, n_segments: int) -> list[int]:
        """The class of each of the first ``n_segments`` segments (no repeats in a row)."""
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 1]))
        out = [self.classes[int(rng.integers(len(self.classes)))]]
        while len(out) < n_segments:
            k = int(rng.integers(len(self.classes) - 1))
            choices = [c for c in self.classes if c != out[-1]]
            out.append(choices[k])
        return out[:n_segments]

    def truth_at(self, t_us: int) -> int:
        return self.labels(int(t_us) // self.switch_us + 1)[-1]

    def _actor(self, segment: int, label: int, scene_mean: float) -> Actor:
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 2, segment]))
        return sample_actor(label, rng, self.sensor_size, scene_mean)

    # -- iteration --------------------------------------------------------------

    def __iter__(self) -> Iterator[StreamPacket]:
        scene = sample_scene(np.random.default_rng(np.random.SeedSequence([self.seed, 0])),
                             self.sensor_size)
        emu = DvsEmulator(self.sensor_size, self.config, seed=self.seed)
        labels: list[int] = []
        actors: dict[int, Actor] = {}

        def performers(t_us: int):
            seg = t_us // self.switch_us
            while len(labels) <= seg:
                labels[:] = self.labels(len(labels) + 16)
            for s in (seg - 1, seg):
                if s >= 0 and s not in actors:
                    actors[s] = self._actor(s, labels[s], scene.mean_intensity)
            for s in [s for s in actors if s < seg - 1]:
                del actors[s]
            into = t_us - seg * self.switch_us
            t_cur = (t_us - seg * self.switch_us) * 1e-6
            if seg == 0 or into >= self.crossfade_us:
                return [(actors[seg], t_cur, 1.0)]
            a = into / self.crossfade_us
            t_old = (t_us - (seg - 1) * self.switch_us) * 1e-6
            return [(actors[seg - 1], t_old, 1.0 - a), (actors[seg], t_cur, a)]

        frame_k = 0
        pending = [np.empty(0, EVENT_DTYPE)]
        t_frame = 0
        wall0 = time.monotonic()
        packet = 0
        while self.duration_us is None or (packet + 1) * self.packet_us <= self.duration_us:
            t0, t1 = packet * self.packet_us, (packet + 1) * self.packet_us
            # render until a frame at or past t1 so (t0, t1) is covered, events at t1 wait
            while t_frame < t1:
                t_frame = int(round(frame_k * 1e6 / self.fps))
                pending.append(emu.push(render_frame(scene, performers(t_frame), t_frame * 1e-6),
                                        t_frame))
                frame_k += 1
            ev = np.concatenate(pending)
            cut = int(np.searchsorted(ev["t"], t1, side="left"))
            pending = [ev[cut:]]
            if self.realtime:
                _sleep_until(wall0 + t1 * 1e-6)
            truth = labels[t0 // self.switch_us]
            yield StreamPacket(ev[:cut], t0, t1, truth, CLASS_NAMES[truth])
            packet += 1


def _sleep_until(deadline: float) -> None:
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, 0.05))
