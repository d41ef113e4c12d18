"""``eventpipe run --backend chip``: swap the loaded float model for the chip executor.

The chip reads integer counts, so the run's recipe keeps its geometry and window but hands the
model the sum-pooled counts (``pooling="sum"``, ``normalisation="counts"``); the program's input
table applies the checkpoint's count scale and normalisation in integers.  The program is compiled
at start-up for the source's sensor size (the count scale ``1/f^2`` depends on it), calibrated on
two synthetic training clips.
"""

from __future__ import annotations

import math



def snapped_profile(extra) -> str | None:
    """The profile a snapped checkpoint was snapped for (``extra["chip_snap"]["profile"]``), if any."""
    rec = extra.get("chip_snap") if isinstance(extra, dict) else None
    name = rec.get("profile") if isinstance(rec, dict) else None
    return name if isinstance(name, str) and name else None


def resolve_profile(profile: str, extra) -> str:
    """``profile``, or for ``"auto"`` the profile the checkpoint (its ``extra``) was snapped for, else
    ``generic`` - the one rule the runtime, ``eventpipe chip compile|snap`` and the benchmarks share."""
    return (snapped_profile(extra) or "generic") if profile == "auto" else profile


def use_chip(loaded, recipe, sensor_size, profile: str = "auto", calibration_clips: int = 2):
    """``(loaded, recipe)`` with ``loaded.model`` a :class:`snn.chip.ChipStepper` and the recipe
    handing it counts; ``loaded.backend = "chip"``.  ``profile="auto"``: the profile the checkpoint
    was snapped for (:func:`snapped_profile`), else ``generic``."""
    import snn.chip
    from eventpipe.runtime.chip_counts import count_clips
    from eventpipe.errors import ConfigError

    profile = resolve_profile(profile, getattr(loaded, "extra", None))
    loaded.profile = profile
    try:
        snn.chip.load_profile(profile)
    except snn.chip.ProfileError as e:
        raise ConfigError(f"model.profile: {e}") from None

    if sensor_size is None:
        raise ValueError("--backend chip needs the sensor size (set source.sensor_size)")
    if recipe.size is None:
        raise ValueError("--backend chip needs the model input size (set [input] size)")
    W, H = recipe.size
    f = max(1, math.ceil(max(sensor_size[0] / W, sensor_size[1] / H)))
    scale = 1.0 / f ** 2 if recipe.pooling == "mean" else 1.0
    clip = min(recipe.count_ceiling, 65535)
    encoding = {"norm": recipe.normalisation, "scale": scale, "clip": clip}
    model = loaded.model
    T = int(getattr(model, "T", 8))
    from snn.backends.chip.pins import pins_for

    pins = pins_for(getattr(loaded, "extra", None), snn.chip.load_profile(profile))  # a snapped checkpoint's grid
    try:
        prog = snn.chip.compile(model, profile=profile, input_size=(W, H), encoding=encoding, pins=pins)
    except snn.chip.CompileError as e:
        raise ConfigError(f"--backend chip: {e}") from None
    if calibration_clips:
        cal = count_clips(calibration_clips, seed=0, split="train", sensor_size=(W * f, H * f), input_size=(W, H),
                          T=T, window_us=recipe.window_us, clip=clip,
                          channels=recipe.channels).transpose(1, 0, 2, 3, 4)
        prog = snn.chip.compile(model, profile=profile, input_size=(W, H), encoding=encoding, calibration=[cal],
                                pins=pins)
    prog.meta["class_names"] = list(loaded.class_names)
    loaded.model = snn.chip.Executor(prog).stepper()
    loaded.backend = "chip"
    return loaded, recipe.replace(pooling="sum", normalisation="counts")
