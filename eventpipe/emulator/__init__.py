"""DVS emulator: video frames -> events with v2e/ESIM semantics (see ``docs/emulator.md``)."""

from eventpipe.emulator.config import EmulatorConfig
from eventpipe.emulator.emulator import (
    DvsEmulator,
    EmulatorParams,
    EmulatorState,
    EmulatorStats,
    frame_intensity,
    init_state,
    make_params,
    step,
)
from eventpipe.emulator.sources import camera_source, frames_source, video_source

__all__ = [
    "DvsEmulator",
    "EmulatorConfig",
    "EmulatorParams",
    "EmulatorState",
    "EmulatorStats",
    "camera_source",
    "frame_intensity",
    "frames_source",
    "init_state",
    "make_params",
    "step",
    "video_source",
]
