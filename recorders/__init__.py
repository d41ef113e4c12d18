"""Recorders that write and replay event and label streams."""
