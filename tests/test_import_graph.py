"""The project's import graph has no cycle, and no source file is too long.

The graph is built from the source with ``ast`` (nothing is imported): one node per module under
``eventpipe/``, ``snn/`` and ``recorders/``; one edge per import of another project module
anywhere in a file - at module level, inside functions (lazy imports) or under ``if`` blocks.
Imports under ``if TYPE_CHECKING:`` are not edges: they never run (annotations only).
``import a.b.c`` and ``from a.b import c`` name the module they load (``a.b.c``; ``from a.b
import name`` names ``a.b`` when ``name`` is not a submodule).  Parents that Python initialises
on the way (``a``, ``a.b``) are not edges: that order is fixed and cannot loop.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("eventpipe", "snn", "recorders")
MAX_LINES = 600
# files allowed past MAX_LINES, each with its reason (keep this list empty if at all possible)
LONG_FILE_EXCEPTIONS: dict[str, str] = {}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            mods[_module_name(path)] = path
    return mods


def _resolve(mod: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _is_type_checking(test: ast.expr) -> bool:
    """``TYPE_CHECKING`` or ``typing.TYPE_CHECKING`` (``if`` tests that are never true at run time)."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
        and isinstance(test.value, ast.Name) and test.value.id == "typing")


def _runtime_nodes(tree: ast.AST):
    """Every node of ``tree`` (as ``ast.walk``) except the bodies of ``if TYPE_CHECKING:``
    blocks: imports there only name types for annotations and never run, so they cannot
    make an import cycle (their ``else`` branch does run and is kept)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            todo.append(node.test)
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))


def import_edges(mods: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the project modules it imports (anywhere in its file)."""
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_pkg = path.name == "__init__.py"
        for node in _runtime_nodes(tree):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(mod, is_pkg, node)
                for a in node.names:
                    sub = f"{base}.{a.name}"
                    targets.append(sub if sub in mods else base)
            for t in targets:
                # the longest project module that the dotted name starts with
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if t and t != mod:
                    edges[mod].add(t)
    return edges


def find_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle path per strongly connected component of more than one module."""
    return [_cycle_in(c, edges) for c in tangles(edges)]


def tangles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    sccs: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # iterative enough for this graph's depth
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(comp)

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return [sorted(c) for c in sccs]


def _cycle_in(comp: list[str], edges: dict[str, set[str]]) -> list[str]:
    """One concrete cycle through the component's first module (breadth-first back to it)."""
    members = set(comp)
    start = comp[0]
    prev: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(edges[v] & members):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return [start] + path[::-1][1:] + [start] if len(path) > 1 else [start, v, start]
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return comp  # pragma: no cover - a component always has a cycle


def test_graph_builder_sees_lazy_relative_and_absolute_imports(tmp_path):
    # a hand-made package: a -> b at module level, b -> c inside a function, c -> a absolutely
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("def f():\n    from .c import g\n    return g\n")
    (pkg / "c.py").write_text("import pkg.a\n\ndef g():\n    pass\n")
    (pkg / "d.py").write_text("from .a import something\nfrom pkg import c\n")
    mods = {_module_name_in(tmp_path, p): p for p in sorted(pkg.rglob("*.py"))}
    edges = import_edges(mods)
    assert edges["pkg.a"] == {"pkg.b"} and edges["pkg.b"] == {"pkg.c"} and edges["pkg.c"] == {"pkg.a"}
    assert edges["pkg.d"] == {"pkg.a", "pkg.c"}
    cycles = find_cycles(edges)
    assert cycles == [["pkg.a", "pkg.b", "pkg.c", "pkg.a"]]
    edges["pkg.c"].clear()
    assert find_cycles(edges) == []


def test_type_checking_imports_are_not_edges(tmp_path):
    """``if TYPE_CHECKING:`` imports (names for annotations, never run) make no edge and no
    cycle; their ``else`` branch and any other ``if`` still count."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from .b import B\n    return B\n")
    (pkg / "b.py").write_text(
        "from __future__ import annotations\nfrom typing import TYPE_CHECKING\nimport typing\n"
        "if TYPE_CHECKING:\n    from .a import A\nelse:\n    from . import c\n"
        "if typing.TYPE_CHECKING:\n    import pkg.a\n"
        "if True:\n    from . import d\n"
        "def g(x: A) -> A:\n    return x\n")
    (pkg / "c.py").write_text("")
    (pkg / "d.py").write_text("")
    mods = {_module_name_in(tmp_path, p): p for p in sorted(pkg.rglob("*.py"))}
    edges = import_edges(mods)
    assert edges["pkg.a"] == {"pkg.b"} and edges["pkg.b"] == {"pkg.c", "pkg.d"}
    assert find_cycles(edges) == []
    (pkg / "b.py").write_text("from .a import A\n")  # the same import at run time: a cycle
    assert find_cycles(import_edges(mods)) == [["pkg.a", "pkg.b", "pkg.a"]]


def _module_name_in(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def test_no_import_cycles():
    mods = project_modules()
    assert {"snn", "snn.models", "snn.compile", "snn.backends.cpu", "eventpipe"} <= set(mods)
    edges = import_edges(mods)
    assert "snn.compile" in edges["snn.backends.cpu.build"]  # the builder sees real edges
    assert any(t.startswith("snn.backends.cpu") for t in edges["snn.stepper"])  # lazy ones too
    report = [f"{' -> '.join(_cycle_in(c, edges))}   (all tangled: {', '.join(c)})" for c in tangles(edges)]
    assert not report, "import cycles:\n" + "\n".join(report)


def test_definition_does_not_know_its_compiled_forms():
    edges = import_edges(project_modules())
    for mod, targets in edges.items():
        if mod.startswith("snn.models"):
            bad = {t for t in targets if t.startswith(("snn.compile", "snn.backends", "snn.stepper",
                                                        "snn.streaming"))}
            assert not bad, f"{mod} imports {sorted(bad)}"
        if mod.startswith("snn.compile"):
            bad = {t for t in targets if t.startswith(("snn.backends", "snn.stepper", "snn.streaming"))}
            assert not bad, f"{mod} imports {sorted(bad)}"


def _python_files():
    skip = {".venv", ".git", "node_modules"}
    for path in sorted(REPO.rglob("*.py")):
        rel = path.relative_to(REPO)
        if not any(part in skip or part.startswith(".") for part in rel.parts):
            yield rel


@pytest.mark.parametrize("limit", [MAX_LINES])
def test_no_long_files(limit):
    long = {}
    for rel in _python_files():
        n = len((REPO / rel).read_text(encoding="utf-8").splitlines())
        if n > limit and str(rel) not in LONG_FILE_EXCEPTIONS:
            long[str(rel)] = n
    assert not long, f"files over {limit} lines (split them by what they do): {long}"
    stale = [p for p in LONG_FILE_EXCEPTIONS if not (REPO / p).exists()]
    assert not stale, f"exceptions for files that no longer exist: {stale}"
