"""A frame of another size than the checkpoint's recipe: the model warns once per size, a
streaming session refuses it (typed error, before anything runs)."""

import warnings

import pytest
import torch

from snn import create_model, load_checkpoint, save_checkpoint
from snn.frame_size import FrameSizeError, FrameSizeWarning
from snn.streaming import StreamingSession


def _model():
    torch.manual_seed(0)
    return create_model("meta_spikeformer_tiny", embed_dims=(8, 16, 32, 48), num_classes=5, T=4).eval()


def _frame(w, h, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(2, h, w, generator=g) < 0.2).float() * 3


@pytest.fixture
def trained_32x24(tmp_path):
    """A checkpoint whose recipe says 32x24 (W x H); its input_size says something else, so the
    test shows which one counts (the recipe's)."""
    path = tmp_path / "m.pt"
    save_checkpoint(path, _model(), input_size=(64, 64),
                    recipe={"recipe_version": 1, "size": [32, 24], "window_us": 10_000})
    return path


def test_load_checkpoint_knows_the_trained_size(trained_32x24, tmp_path):
    model, meta = load_checkpoint(trained_32x24)
    assert model.input_size == (32, 24) and meta["recipe"]["size"] == [32, 24]
    old = tmp_path / "old.pt"  # a file written before recipes: its input_size
    save_checkpoint(old, _model(), input_size=(40, 16))
    assert load_checkpoint(old)[0].input_size == (40, 16)
    assert _model().input_size is None  # a fresh model knows no size


def test_model_step_warns_once_per_other_size(trained_32x24):
    model, _ = load_checkpoint(trained_32x24)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.step(_frame(32, 24)[None])  # the trained size: silent
        _model().step(_frame(24, 32)[None])  # a model that knows no size: silent
    with pytest.warns(FrameSizeWarning) as rec:
        model.step(_frame(24, 32)[None])  # W and H swapped
        model.step(_frame(24, 32, 1)[None])  # the same size again: not again
        model.step(_frame(16, 16)[None])  # another size: once more
    msgs = [str(r.message) for r in rec]
    assert len(msgs) == 2, msgs
    assert "24x32 (W x H)" in msgs[0] and "recipe is 32x24" in msgs[0] and "16x16" in msgs[1]
    assert rec[0].filename == __file__  # points at the caller
    model.input_size = (16, 16)  # on purpose: silent
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.step(_frame(16, 16)[None])


def test_session_refuses_a_frame_of_another_size_before_anything_runs(trained_32x24):
    model, _ = load_checkpoint(trained_32x24)
    sess = StreamingSession(model)
    assert sess.input_size == (32, 24)
    first = sess.step({"a": _frame(32, 24), "b": _frame(32, 24, 1)})
    before = {s: {k: v.v.clone() for k, v in st.items()} for s, st in sess.states.items()}
    with pytest.raises(FrameSizeError, match=r"stream 'b': frame \(2, 32, 24\) is 24x32 \(W x H\), "
                                             r"but this session runs 32x24 \(the model's "
                                             r"checkpoint recipe\)"):
        sess.step({"a": _frame(32, 24, 2), "b": _frame(24, 32)})
    assert sess.steps == {"a": 1, "b": 1}  # stream a did not advance either
    for s, st in sess.states.items():
        assert all(torch.equal(v.v, before[s][k]) for k, v in st.items())
    assert isinstance(FrameSizeError("x"), ValueError)
    assert set(first) == {"a", "b"}


def test_session_without_a_known_size_keeps_its_first_frames_size():
    sess = StreamingSession(_model())
    sess.step({0: _frame(32, 32)})
    with pytest.raises(FrameSizeError, match=r"stream 1: .* is 48x32 .*runs 32x32 \(set by the "
                                             r"first frame, stream 0\)"):
        sess.step({1: _frame(48, 32)})
    sess.reset()  # no state left at 32x32: a new size may start
    sess.step({1: _frame(48, 32)})
    assert sess.input_size == (48, 32)


def test_session_at_another_size_on_purpose_runs_and_the_model_says_so_once(trained_32x24):
    model, _ = load_checkpoint(trained_32x24)
    sess = StreamingSession(model, input_size=(16, 16))
    with pytest.warns(FrameSizeWarning) as rec:
        for t in range(3):
            sess.step({0: _frame(16, 16, t)})
    assert len(rec) == 1 and sess.steps[0] == 3
    with pytest.raises(FrameSizeError, match=r"runs 16x16 \(input_size=\)"):
        sess.step({0: _frame(32, 24)})
