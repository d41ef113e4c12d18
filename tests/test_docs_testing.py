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


# -- the files and tests the doc names ------------------------------------------------------

def _doc() -> str:
    return (REPO / "docs" / "testing.md").read_text()


def test_every_test_file_and_test_the_doc_names_exists():
    import re

    text = _doc()
    paths = set(re.findall(r"tests/[\w/]+\.py", text))
    short = set(re.findall(r"`(test_\w+\.py)`", text)) | set(re.findall(r", `(test_\w+\.py)`", text))
    assert len(paths) >= 15
    for p in paths:
        assert (REPO / p).is_file(), p
    for name in short:
        assert list((REPO / "tests").rglob(name)), name
    sources = "\n".join(p.read_text() for p in (REPO / "tests").rglob("test_*.py"))
    names = set(re.findall(r"`(?:[\w/]+\.py::)?(test_\w+)`", text)) - {n[:-3] for n in short}
    assert names, "the doc names tests"
    for name in names:
        assert f"def {name}(" in sources, name


# -- benchmarks/mutation.py, as the doc describes it --------------------------------------------

def _mutation():
    import importlib.util
    import sys

    if "bench_mutation" not in sys.modules:  # its dataclasses look their module up there
        spec = importlib.util.spec_from_file_location("bench_mutation",
                                                      REPO / "benchmarks" / "mutation.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules["bench_mutation"] = mod
        spec.loader.exec_module(mod)
    return sys.modules["bench_mutation"]


SAMPLE = b'''"""Docstring with a < b and 1 + 2."""


def f(a: int = 3, b=None) -> bool:
    """Also skipped: x == y."""
    if a > 5 and not b:
        raise ValueError(f"a must be <= {a + 1}")
    return (a - 1) & 2 == 0 or a | b
'''


def test_generated_mutants_are_the_listed_operators_and_skip_docs_raises_annotations():
    """"`<` <-> `<=`, `>` <-> `>=`, `==` <-> `!=`, `+` <-> `-`, `&` <-> `|`, `and` <-> `or`,
    `not x` -> `x`, integer constants `n` -> `n + 1`; docstrings, `raise` statements
    (messages) and annotations are left alone": whole lines, so the default `3` on the
    annotated `def` line is left alone too (as the doc says)."""
    mutants = _mutation().auto_mutants("sample", SAMPLE)
    got = {(m.line, m.what) for m in mutants}
    assert got == {(6, "> -> >="), (6, "5 -> 6"), (6, "and -> or"),
                   (6, "not x -> x"), (8, "- -> +"), (8, "1 -> 2"), (8, "& -> |"),
                   (8, "2 -> 3"), (8, "== -> !="), (8, "0 -> 1"), (8, "or -> and"),
                   (8, "| -> &")}
    for m in mutants:
        assert m.source != SAMPLE and not m.listed


def test_list_caps_generated_mutants_per_module(tmp_path):
    """"A seeded sample of at most `--cap` (10) per module, `--cap-numba` (5) per Numba
    module", after every listed mutant; `--list` runs nothing."""
    import subprocess
    import sys

    def listing(*args):
        out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "mutation.py"), "--list",
                              "--json", str(tmp_path / "none.json"), *args], capture_output=True,
                             text=True, timeout=120, check=True).stdout.splitlines()
        return [line.split(" ", 1) for line in out[:-1]]

    mut = _mutation()
    udp, evt3 = listing("--modules", "udp"), listing("--modules", "evt3")
    assert [k for k, _ in udp].count("L") == len(mut.LISTED["udp"])
    assert [k for k, _ in udp].count("A") == 10 and [k for k, _ in evt3].count("A") == 5
    assert "udp" not in mut.NUMBA and "evt3" in mut.NUMBA
    assert listing("--modules", "udp") == udp  # seeded
    assert [k for k, _ in listing("--modules", "udp", "--cap", "3")].count("A") == 3
    assert not (tmp_path / "none.json").exists()


def test_dependents_are_every_module_whose_kernels_call_a_mutated_modules_kernels():
    """"the modules whose kernels inline the mutated ones (`DEPENDENTS`: `frames.py`,
    `_writeonce.py` and `_streaming_core.py` inline `_window_loop._bin_window`) recompile
    too": checked on the source, for every Numba module the script mutates."""
    import ast
    import importlib

    from numba.core.registry import CPUDispatcher

    mut = _mutation()
    assert set(mut.DEPENDENTS["eventpipe/kernels/_window_loop.py"]) == {
        "eventpipe/kernels/frames.py", "eventpipe/kernels/_writeonce.py",
        "eventpipe/kernels/_streaming_core.py"}
    kernel_files = [p for p in (REPO / "eventpipe").rglob("*.py")]
    for key in mut.NUMBA:
        rel = mut.MODULES[key][0]
        dotted = rel[:-3].replace("/", ".")
        target = importlib.import_module(dotted)
        kernels = {n for n, v in vars(target).items() if isinstance(v, CPUDispatcher)}
        need = set()
        for path in kernel_files:
            tree = ast.parse(path.read_text())
            imported = {a.asname or a.name for node in ast.walk(tree)
                        if isinstance(node, ast.ImportFrom) and node.module == dotted
                        for a in node.names if a.name in kernels}
            for fn in ast.walk(tree):
                if isinstance(fn, ast.FunctionDef) and any(
                        "njit" in ast.unparse(d) or "jit" in ast.unparse(d)
                        for d in fn.decorator_list):
                    used = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name)}
                    if used & imported:
                        need.add(str(path.relative_to(REPO)))
        assert need <= set(mut.DEPENDENTS.get(rel, [])), (rel, need)


# -- "Randomness is seeded; sockets bind port 0 on 127.0.0.1 ... never on bare sleeps" --------

def test_global_generators_start_from_seed_0_in_every_test():
    """tests/conftest.py seeds them per test: a draw without a generator is reproducible."""
    import random

    import numpy as np
    import torch

    assert random.random() == random.Random(0).random()
    assert np.random.random() == np.random.RandomState(0).random_sample()
    assert torch.equal(torch.rand(3), torch.rand(3, generator=torch.Generator().manual_seed(0)))


def test_global_generators_are_seeded_again_for_the_next_test():
    test_global_generators_start_from_seed_0_in_every_test()


def _test_sources():
    return {p: p.read_text() for p in (REPO / "tests").rglob("*.py")
            if p.name != "test_docs_testing.py"}


def test_every_socket_the_tests_bind_is_port_0_on_loopback():
    import re

    binds = [(p, m.group(1)) for p, src in _test_sources().items()
             for m in re.finditer(r"\.bind\((.*)\)", src)]
    assert len(binds) >= 5
    for path, arg in binds:
        ok = arg in ('("127.0.0.1", 0)', '"tcp://127.0.0.1:0"')
        assert ok, f"{path.relative_to(REPO)} binds {arg}"


def test_every_sleep_in_the_tests_polls_a_condition_or_says_why():
    """A `time.sleep` sits in a `while` loop (polling a condition with a deadline) or carries
    a comment on its line saying what it waits for."""
    import ast

    for path, src in _test_sources().items():
        lines = src.splitlines()
        tree = ast.parse(src)
        in_loop = {id(n) for loop in ast.walk(tree) if isinstance(loop, ast.While)
                   for n in ast.walk(loop)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "time.sleep":
                assert id(node) in in_loop or "#" in lines[node.lineno - 1], \
                    f"{path.relative_to(REPO)}:{node.lineno} sleeps without a condition"
