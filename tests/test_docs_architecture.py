"""docs/architecture.md's import rules and command table, as the doc states them: a new
back-edge (or a new command missing from the doc's list) fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.test_import_graph import import_edges, project_modules

DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"


@pytest.fixture(scope="module")
def edges():
    return import_edges(project_modules())


def test_snn_imports_eventpipe_only_in_the_chip_tools_the_doc_names(edges):
    found = {(m, t) for m, ts in edges.items() if m.startswith("snn")
             for t in ts if t.split(".")[0] == "eventpipe"}
    assert found <= {("snn.backends.chip.agreement", "eventpipe.labels"),
                     ("snn.backends.chip.agreement", "eventpipe.runtime.config"),
                     ("snn.backends.chip.finetune", "eventpipe.runtime.chip_counts")}, found


def test_represent_depends_only_on_events_kernels_and_errors(edges):
    deps = {t for m, ts in edges.items() if m.startswith("eventpipe.represent")
            for t in ts if t.split(".")[0] in ("eventpipe", "snn")
            and not t.startswith("eventpipe.represent")}
    assert {d for d in deps if not d.startswith(("eventpipe.events", "eventpipe.kernels",
                                                 "eventpipe.errors"))} == set()


def test_training_takes_from_the_runtime_only_checkpoint_lookup_and_stream_eval(edges):
    deps = {t for m, ts in edges.items() if m.startswith("eventpipe.training")
            for t in ts if t.startswith("eventpipe.runtime")}
    assert deps <= {"eventpipe.runtime.model_loader", "eventpipe.runtime.stream_eval"}, deps


def test_the_chip_backend_imports_and_importers_are_the_documented_ones(edges):
    deps = {t for m, ts in edges.items() if m.startswith("snn.backends.chip")
            for t in ts if t.startswith("snn") and not t.startswith("snn.backends.chip")}
    assert all(d.startswith(("snn.models", "snn.neurons", "snn.checkpoint", "snn.compile"))
               for d in deps), deps
    importers = {m for m, ts in edges.items()
                 if m.startswith("snn") and not m.startswith(("snn.backends.chip", "snn.chip"))
                 and any(t.startswith("snn.backends.chip") or t == "snn.chip" for t in ts)}
    assert importers <= {"snn.stepper"}, importers


def test_the_doc_lists_every_command_of_the_door():
    from eventpipe.cli.door import COMMANDS

    text = " ".join(DOC.read_text().split())
    listed = re.search(r"a literal tuple of module names, one a line: ([a-z_, ]+)\)", text)
    assert listed, "architecture.md no longer lists COMMANDS"
    assert tuple(n.strip() for n in listed.group(1).split(",")) == COMMANDS


def test_backends_are_the_documented_ones():
    from snn.stepper import BACKENDS

    assert f"BACKENDS = {BACKENDS!r}".replace("'", '"') in DOC.read_text()
