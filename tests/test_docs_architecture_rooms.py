"""docs/architecture.md, the claims tests/test_docs_architecture.py does not hold: the low rooms
import nothing above them (kernels: only the event contract, no torch; io: events, errors and
the recorders' reader), the sources' URI table, the Source protocol, the names each room's
table lists, the Stepper factory's signature, and the config engine under every config the doc
names."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
from pathlib import Path

import pytest

from tests.test_import_graph import import_edges, project_modules

REPO = Path(__file__).resolve().parents[1]
DOC = (REPO / "docs" / "architecture.md").read_text()


@pytest.fixture(scope="module")
def edges():
    return import_edges(project_modules())


def _deps(edges, prefix):
    return {t for m, ts in edges.items() if m.startswith(prefix) for t in ts
            if not t.startswith(prefix) and t.split(".")[0] in ("eventpipe", "snn", "recorders")}


def test_kernels_know_nothing_of_io_or_torch(edges):
    assert _deps(edges, "eventpipe.kernels") <= {"eventpipe.events", "eventpipe.errors"}
    for path in (REPO / "eventpipe" / "kernels").rglob("*.py"):
        assert not re.search(r"^\s*(import|from)\s+torch\b", path.read_text(), re.M), path


def test_io_knows_only_the_event_contract_errors_and_the_recorders_reader(edges):
    """"eventpipe/io (... the recorders' HDF5 files too, through eventpipe/io/hdf5.py)"."""
    assert _deps(edges, "eventpipe.io") <= {"eventpipe.events", "eventpipe.errors",
                                             "recorders.reader"}
    users = {m for m, ts in edges.items() if m.startswith("eventpipe.io")
             and any(t.startswith("recorders") for t in ts)}
    assert users == {"eventpipe.io.hdf5"}


def test_sources_and_transport_do_not_know_the_model(edges):
    for room in ("eventpipe.sources", "eventpipe.transport"):
        assert not {d for d in _deps(edges, room)
                    if d.startswith(("snn", "eventpipe.runtime", "eventpipe.represent",
                                     "eventpipe.training"))}, room


def test_the_uri_table_is_the_pictures():
    from eventpipe.sources.uri import SCHEMES

    line = re.search(r"^\s+(file: \|.*synthetic:)$", DOC, re.M).group(1)
    listed = [s.strip().rstrip(":/").rstrip(":") for s in line.split("|")]
    assert listed == list(SCHEMES)


def test_the_source_protocol_and_live_picks_the_queue_policy():
    from eventpipe.sources.base import Source
    from eventpipe.sources.file import FileSource

    class Quiet(Source):
        def _run(self):
            pass

    quiet = Quiet()
    for name in ("live", "read", "packets", "stats", "drop_advice", "close"):
        assert hasattr(quiet, name), name
    assert FileSource.live is False and Source.live is True
    assert quiet.policy == "drop_oldest"
    Quiet.live = False
    assert Quiet().policy == "block"


NAMES = {
    "eventpipe.represent.recipe": ["InputRecipe", "RecipeError"],
    "eventpipe.represent.apply": ["spatial_map", "sensor_counts", "map_frames", "model_counts",
                                  "count_scale", "normalise", "apply"],
    "eventpipe.represent.stream": ["StreamingInput"],
    "eventpipe.represent.checkpoint": ["recipe_from_checkpoint", "recipe_to_checkpoint"],
    "eventpipe.sources": ["open_source", "SCHEMES"],
    "eventpipe.sources.uri": ["SCHEMES", "parse_uri", "known_schemes"],
    "eventpipe.sources.base": ["Source", "BoundedQueue"],
    "eventpipe.sources.sender": ["send_recording"],
    "eventpipe.transport.wire": ["encode_packet", "decode_packet", "peek_header"],
    "eventpipe.transport.broker": ["Broker"],
    "eventpipe.transport.scaleout": ["run_broker"],
    "eventpipe.cli.door": ["COMMANDS", "Parser", "classify", "main", "build_parser"],
    "eventpipe.cli.env": ["Env"],
    "eventpipe.cli.common": ["check_flag"],
    "eventpipe.errors": ["ExitStatus", "ConfigError", "DataError", "EventFormatError",
                         "CheckpointError", "UsageError", "reading_checkpoint"],
    "eventpipe.config": ["bounded", "load_config"],
    "eventpipe.runtime.preflight": ["preflight"],
    "snn.neurons": ["LIFNode", "LIFState", "lif_step"],
    "snn.state": ["ModelState", "StepContext", "clone_state", "reset_rows", "select_rows",
                  "merge_rows", "cat_states", "split_state"],
    "snn.models": ["MetaSpikeFormer", "create_model", "list_models", "load_official",
                   "register_model"],
    "snn.compile": ["fold_model"],
    "snn.stepper": ["Stepper", "BACKENDS", "make_stepper"],
    "snn.streaming": ["StreamingSession"],
}


@pytest.mark.parametrize("module", sorted(NAMES))
def test_every_name_the_doc_gives_a_room_is_there(module):
    mod = importlib.import_module(module)
    for name in NAMES[module]:
        assert f"{name}" in DOC, (module, name)  # still in the doc
        assert hasattr(mod, name), (module, name)


def test_exit_statuses_and_error_classes_are_the_docs():
    from eventpipe.errors import (CheckpointError, ConfigError, DataError, EventFormatError,
                                  ExitStatus, UsageError)

    text = " ".join(DOC.split())
    pairs = re.findall(r"(\d+) ([A-Z_]+)[,;)]", text[text.index("holds `ExitStatus`"):][:200])
    assert {v: int(n) for n, v in pairs} == {s.name: int(s) for s in ExitStatus}
    assert issubclass(EventFormatError, DataError) and issubclass(CheckpointError, DataError)
    assert ConfigError and UsageError


def test_make_stepper_signature_is_the_docs():
    """`make_stepper(model, backend, device=..., **options)`."""
    from snn.stepper import make_stepper

    ps = inspect.signature(make_stepper).parameters
    assert list(ps)[:2] == ["model", "backend"]
    assert ps["device"].kind is inspect.Parameter.KEYWORD_ONLY
    assert ps["options"].kind is inspect.Parameter.VAR_KEYWORD


def test_bounded_declares_bounds_on_the_field_and_load_config_checks_them():
    from eventpipe.config import bounded, load_config
    from eventpipe.errors import ConfigError

    @dataclasses.dataclass
    class C:
        n: int = bounded(8, ge=1, le=4096)

    assert load_config(C).n == 8 and load_config(C, None, ["n=4096"]).n == 4096
    for bad in ("n=0", "n=4097", "m=3"):
        with pytest.raises(ConfigError):
            load_config(C, None, [bad])


def test_every_config_the_doc_names_uses_the_one_engine(edges):
    """"The run config (`runtime/config.py`), the training config and the emulator's
    `EmulatorConfig` all use it"."""
    for module in ("eventpipe.runtime.config", "eventpipe.training.config",
                   "eventpipe.emulator.config"):
        assert "eventpipe.config" in edges[module], module


_MUTATORS = {"append", "extend", "insert", "update", "setdefault", "pop", "popitem", "clear",
             "add", "discard", "remove"}


def _module_state_writes(path: Path) -> set[str]:
    """Module-level containers of ``path`` that a function body writes to."""
    import ast

    tree = ast.parse(path.read_text())
    names = {t.id for n in tree.body if isinstance(n, (ast.Assign, ast.AnnAssign))
             for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
             if isinstance(t, ast.Name)}
    out = set()
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for n in ast.walk(fn):
            if isinstance(n, ast.Global):
                out |= {f"global {g}" for g in n.names}
            if isinstance(n, ast.Subscript) and isinstance(n.ctx, (ast.Store, ast.Del)) and \
                    isinstance(n.value, ast.Name) and n.value.id in names:
                out.add(n.value.id)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and \
                    n.func.attr in _MUTATORS and isinstance(n.func.value, ast.Name) and \
                    n.func.value.id in names:
                out.add(n.func.value.id)
    return out


def test_no_module_level_mutable_state_in_snn_but_the_registry_on_request(monkeypatch):
    """"No module-level mutable state ... The model registry is a literal table;
    `register_model` adds names only when called"."""
    writes = {(str(p.relative_to(REPO)), w) for p in sorted((REPO / "snn").rglob("*.py"))
              for w in _module_state_writes(p)}
    assert writes == {("snn/models/registry.py", "_EXTRA")}, writes
    from snn.models import create_model, list_models, register_model, registry

    monkeypatch.setattr(registry, "_EXTRA", dict(registry._EXTRA))  # the probe leaves no name
    before = list_models()
    importlib.import_module("snn.backends.cpu")
    importlib.import_module("snn.chip")
    assert list_models() == before  # importing registers nothing
    name = "docs_architecture_probe"
    if name not in before:
        register_model(name, lambda **kw: create_model("meta_spikeformer_tiny", **kw))
    assert name in list_models()
    with pytest.raises(ValueError, match="already registered"):
        register_model(name, lambda **kw: None)
