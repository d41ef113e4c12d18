"""Helpers for the tests of benchmarks/*.py: load a script as a module, run it with bad
arguments and get its one usage line."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

from tests.conftest import REPO


def load(name: str):
    """``benchmarks/<name>.py`` as a module (its ``main(argv)`` callable in-process)."""
    path = REPO / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def usage_error(name: str, args: list[str]) -> str:
    """Run ``benchmarks/<name>.py args``: it must exit 2 without a traceback; its last stderr
    line (argparse's ``<name>.py: error: ...``)."""
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / f"{name}.py"), *args],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    return proc.stderr.strip().splitlines()[-1]
