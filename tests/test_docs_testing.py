"""docs/testing.md: "`pytest-timeout` is configured in `pyproject.toml` (`timeout = 300` seconds
per test, `pytest-timeout` is in the `dev` extra)", and the pipeline's injected clock defaults
to `time.monotonic`."""

from __future__ import annotations

import inspect
import time
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_pytest_timeout_is_configured_and_in_the_dev_extra():
    cfg = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert cfg["tool"]["pytest"]["ini_options"]["timeout"] == 300
    dev = cfg["project"]["optional-dependencies"]["dev"]
    assert any(d.replace(" ", "").startswith("pytest-timeout") for d in dev)


def test_pipeline_clock_defaults_to_monotonic():
    from eventpipe.runtime.pipeline import Pipeline

    default = inspect.signature(Pipeline).parameters["clock"].default
    assert default is time.monotonic
