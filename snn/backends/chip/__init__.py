"""The integer, event-driven chip backend (see :mod:`snn.chip` for the public names)."""
