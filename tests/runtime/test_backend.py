"""`model.backend` / `--backend`: which Stepper the runtime builds, checked before the model loads."""

from __future__ import annotations

import argparse

import pytest

from eventpipe.cli.run import add_parser, flag_values
from eventpipe.errors import ConfigError, ExitStatus
from eventpipe.runtime import run as run_mod
from eventpipe.runtime.config import load_run_config
from snn.backends.cpu import FastBlock
from tests.cli.conftest import assert_one_error_line, run_cli


def _cfg(*over):
    return load_run_config(None, ["source.uri='synthetic:'", "sinks.console=false", *over])


@pytest.mark.parametrize("over,want", [((), "cpu"), (("model.fold=false",), "float"),
                                       (("model.backend='float'",), "float"),
                                       (("model.backend='cpu'",), "cpu")])
def test_backend_from_config(over, want):
    assert run_mod.model_backend(_cfg(*over).model) == want


def test_unknown_or_contradictory_backend_is_a_config_error_before_loading(monkeypatch):
    def no_load(*a, **k):  # the model must not be loaded for a bad config
        raise AssertionError("model loaded")

    monkeypatch.setattr(run_mod, "load_model", no_load)
    with pytest.raises(ConfigError, match=r"model\.backend: unknown backend 'cpuu'; did you mean 'cpu'"):
        run_mod.build_pipeline(_cfg("model.backend='cpuu'"))
    with pytest.raises(ConfigError, match="contradicts"):
        run_mod.build_pipeline(_cfg("model.fold=false", "model.backend='cpu'"))


@pytest.mark.parametrize("backend,folded", [("float", False), ("cpu", True)])
def test_pipeline_steps_the_chosen_backend(backend, folded):
    pipe = run_mod.build_pipeline(_cfg(f"model.backend='{backend}'"))
    try:
        stepper = pipe.session.stepper
        assert stepper.is_folded == folded
        assert any(isinstance(m, FastBlock) for m in stepper.modules()) == folded
        assert not stepper.training
    finally:
        pipe.source.close()


def test_cli_backend_flag(monkeypatch):
    sub = argparse.ArgumentParser().add_subparsers()
    args = add_parser(sub).parse_args(["--backend", "float"])
    assert flag_values(args)["model.backend"] == "float"

    def no_load(*a, **k):
        raise AssertionError("model loaded")

    monkeypatch.setattr(run_mod, "load_model", no_load)
    res = run_cli(["run", "--backend", "fast", "--duration", "1"])
    assert_one_error_line(res, ExitStatus.CONFIG, "model.backend: unknown backend 'fast'", "known: float, cpu")
