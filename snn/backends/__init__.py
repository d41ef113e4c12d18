"""Execution backends for the folded Meta-SpikeFormer (``cpu``: float fast path; ``chip``: integer)."""
