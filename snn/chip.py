"""The chip backend's public names: an integer, event-driven Meta-SpikeFormer mirroring the hardware.

    prog = snn.chip.compile("model.pt", profile="generic", calibration=[counts])   # -> Program
    prog.save("prog.npz"); prog = snn.chip.Program.load("prog.npz")
    logits, state, stats = snn.chip.Executor(prog).step(frame_counts, state)
    logits, state, stats = snn.chip.reference_step(prog, frame_counts, state)      # dense int64
    snn.chip.export_nir(model, "model.nir")

See ``docs/chip.md``.
"""

from .backends.chip.compile import compile, encoding_from_meta
from .backends.chip.errors import ChipError, CompileError, ProfileError, ProgramFormatError
from .backends.chip.executor import ChipStepper, Executor
from .backends.chip.profile import Profile, list_profiles, load_profile
from .backends.chip.program import Program
from .backends.chip.reference import reference_step
from .backends.chip.stats import COUNTERS, Stats


def export_nir(model, path, **kw):
    """Write the part of ``model`` NIR can express to ``path`` (see :mod:`snn.backends.chip.nir_export`)."""
    from .backends.chip.nir_export import export_nir as _export

    return _export(model, path, **kw)


__all__ = [
    "COUNTERS", "ChipError", "ChipStepper", "CompileError", "Executor", "Profile", "ProfileError", "Program",
    "ProgramFormatError", "Stats", "compile", "encoding_from_meta", "export_nir", "list_profiles", "load_profile",
    "reference_step",
]
