"""Typed errors of the chip backend; each names what it is about (a layer, a key, a file)."""

from __future__ import annotations


class ChipError(Exception):
    """Base class of every chip-backend error."""


class CompileError(ChipError):
    """The compiler cannot express a part of the model; ``layer`` names it."""

    def __init__(self, layer: str, reason: str):
        self.layer = layer
        self.reason = reason
        super().__init__(f"cannot compile layer {layer!r}: {reason}")


class ProfileError(ChipError):
    """A hardware profile is missing a key, has an unknown one, or a bad value; ``key`` names it."""

    def __init__(self, source: str, key: str, reason: str):
        self.source = source
        self.key = key
        self.reason = reason
        super().__init__(f"profile {source}: key {key!r}: {reason}")


class ProgramFormatError(ChipError):
    """A program file is damaged, not a program, or from another format version."""

    def __init__(self, path: str, reason: str, key: str | None = None):
        self.path = path
        self.key = key
        self.reason = reason
        where = f" (entry {key!r})" if key else ""
        super().__init__(f"{path}: not a usable chip program{where}: {reason}")


class Float32ReachWarning(UserWarning):
    """A program on the ``pow2`` grid whose worst-case sums can pass float32's 2^24 units: there the
    float model may not compute the chip's integers (:mod:`~snn.backends.chip.reach`)."""
