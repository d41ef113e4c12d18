"""The Stepper protocol and the backend table (snn/stepper.py)."""

from __future__ import annotations

import pytest
import torch

import snn
from snn.backends.cpu import fast_runners
from snn.streaming import StreamingSession

from .conftest import event_input, small_model


def test_backends_build_steppers_that_agree():
    model = small_model(seed=4).train()
    x = event_input(T=3, B=2, seed=4)
    exact = snn.make_stepper(model, "float")
    assert exact is model and not model.training  # the definition itself, in eval mode
    fast = snn.make_stepper(model, "cpu")
    assert fast is not model and fast.is_folded and len(fast_runners(fast)) == 5 + 4 + 2
    assert isinstance(exact, snn.Stepper) and isinstance(fast, snn.Stepper)
    with torch.no_grad():
        st_a = st_b = None
        for t in range(3):
            a, st_a = exact.step(x[t], st_a)
            b, st_b = fast.step(x[t], st_b)
            torch.testing.assert_close(b, a, atol=1e-4, rtol=0)
    assert st_a.keys() == st_b.keys()
    assert sum(r.calls for r in fast_runners(fast)) == 3 * 11
    with torch.no_grad():  # states move between the backends unchanged
        a, _ = exact.step(x[0], st_b)
        b, _ = fast.step(x[0], st_a)
        torch.testing.assert_close(b, a, atol=1e-4, rtol=0)


def test_backend_options_and_errors():
    model = small_model()
    bf16 = snn.make_stepper(model, "cpu", weights="bf16")
    assert all(r.g.w3.dtype.name == "uint16" for r in fast_runners(bf16) if hasattr(r, "g"))
    with pytest.raises(ValueError, match=r"unknown backend 'flaot'; did you mean 'float'\? \(known: float, cpu\)"):
        snn.make_stepper(model, "flaot")
    with pytest.raises(TypeError, match="takes no options"):
        snn.make_stepper(model, "float", weights="bf16")
    with pytest.raises(ValueError, match="threads"):
        snn.make_stepper(model, "cpu", threads=0)
    with pytest.raises(ValueError, match="already folded"):
        snn.make_stepper(snn.fold_model(model), "cpu")


class _Counter:
    """A minimal non-torch Stepper: logits = number of steps each row has taken."""

    def step(self, x, state=None):
        n = torch.zeros(x.shape[0]) if state is None else state["n"].v
        n = n + 1
        return n[:, None].repeat(1, 3), {"n": snn.LIFState(n)}


def test_streaming_session_takes_any_stepper():
    sess = StreamingSession(_Counter())
    f = torch.zeros(2, 4, 4)
    sess.step({"a": f})
    out = sess.step({"a": f, "b": f})
    assert out["a"].tolist() == [2, 2, 2] and out["b"].tolist() == [1, 1, 1]
    with pytest.raises(TypeError, match="needs a Stepper"):
        StreamingSession(object())


def test_built_models_copy():
    import copy

    model = small_model(seed=5)
    fast = snn.make_stepper(model, "cpu")
    twin = copy.deepcopy(fast)
    x = event_input(T=1, B=1, seed=5)[0]
    with torch.no_grad():
        a, _ = fast.step(x)
        b, _ = twin.step(x)
    assert torch.equal(a, b) and sum(r.calls for r in fast_runners(twin)) == 11
