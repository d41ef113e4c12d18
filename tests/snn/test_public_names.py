"""Every name a package's ``__all__`` promises exists, and the long-standing public names stay."""

from __future__ import annotations

import importlib

import pytest

MODULES = ["snn", "snn.models", "snn.compile", "snn.backends.cpu", "snn.state", "snn.stepper", "snn.streaming",
           "snn.neurons"]


@pytest.mark.parametrize("name", MODULES)
def test_all_names_exist(name):
    mod = importlib.import_module(name)
    missing = [n for n in mod.__all__ if not hasattr(mod, n)]
    assert not missing, f"{name}.__all__ names missing attributes: {missing}"
    assert len(set(mod.__all__)) == len(mod.__all__)


def test_public_names_keep_working():
    import snn
    from snn.compile import fold_model
    from snn.models import MetaSpikeFormer, create_model, load_official
    from snn.state import ModelState

    assert snn.MetaSpikeFormer is MetaSpikeFormer and snn.create_model is create_model
    assert snn.load_official is load_official and snn.fold_model is fold_model and snn.ModelState is ModelState
    assert not hasattr(MetaSpikeFormer, "fold")  # folding is snn.compile's, not the definition's
