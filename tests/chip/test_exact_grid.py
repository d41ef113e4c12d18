"""The exact grid (profile ``exact``, ``scale_grid = "pow2"``): a model snapped to it computes the
chip's integers, so its labels are the chip's (``docs/chip.md``, "The exact grid")."""

import numpy as np
import pytest
import torch

import snn
from eventpipe.represent.apply import normalise as recipe_normalise
from eventpipe.represent.recipe import InputRecipe, RecipeError
from snn.backends.chip.agreement import Agreement
from snn.backends.chip.compile import compile as chip_compile, normalise
from snn.backends.chip.errors import ProfileError
from snn.backends.chip.profile import load_profile
from snn.backends.chip.quantise import input_table
from snn.backends.chip.reference import reference_step
from snn.backends.chip.snap import THRESHOLD_OFFSET, exact_model, pins_for, snap
from snn.neurons.lif import lif_multistep

from .programs import small_model, with_trained_batchnorms

# The small random models here have worst-case sums past 2^24 in a few layers (the sound bound
# of snn.backends.chip.reach assumes every input at its largest); their compiles warn so, and
# the tests check what the bound cannot: the actual sums, spike for spike.  The warning itself
# is tested in tests/chip/test_float32_reach.py.
pytestmark = pytest.mark.filterwarnings("ignore::snn.backends.chip.errors.Float32ReachWarning")

ENC = {"norm": "log1p", "scale": 0.25, "clip": 255}


class Reference:
    """The chip's semantics (the plain dense integer reference) with the Executor's step shape."""

    def __init__(self, program):
        self.program = program

    def step(self, frame, state=None, record=False):
        return reference_step(self.program, frame, state, record=record)


def stream(seed, steps=80, hw=16):
    """Counts with a static stretch (the same frame 40 times: inputs held constant) between two
    moving ones."""
    rng = np.random.default_rng(seed)
    moving = rng.poisson(1.2, (steps, 2, hw, hw)).astype(np.int32)
    moving[20:60] = moving[19]
    return moving


@pytest.fixture(scope="module")
def exact_snap():
    model = with_trained_batchnorms(small_model(v_threshold=0.1))  # every LIF but the attention's fires
    cal = [np.random.default_rng(0).poisson(1.5, (3, 4, 2, 16, 16)).astype(np.int32)]
    return model, snap(model, profile="exact", calibration=cal, input_size=(16, 16), encoding=ENC)


def is_pow2(a):
    a = np.asarray(a, np.float64)
    return np.all((a > 0) & (np.log2(a) == np.round(np.log2(a))))


def test_every_scale_is_a_power_of_two_and_shifts_only_go_left(exact_snap):
    _, res = exact_snap
    prog = res.program
    for b, s in prog.meta["scales"].items():
        assert is_pow2(s), b
    convs = [op for op in prog.ops if op.kind == "conv"]
    assert all(int(op.arrays["shift"].max()) <= 0 for op in convs)
    assert any(int(op.arrays["shift"].min()) < 0 for op in convs)  # coarser writers of a stream shift left
    assert all(int(op.attrs["shift"]) == 0 for op in prog.ops if op.kind == "pool")
    for op in prog.ops:
        if op.kind == "lif":  # the integer threshold IS the float threshold: theta * unit == V_th
            unit = np.asarray(prog.meta["scales"][op.src]) / 2.0 ** op.attrs["in_shift"]
            assert np.array_equal(op.arrays["theta"] * unit, np.asarray(op.attrs["v_threshold"])), op.name


def test_a_stream_takes_its_finest_writers_scale(exact_snap):
    _, res = exact_snap
    prog = res.program
    stream_writers = [op for op in prog.ops if op.kind == "conv" and op.dst == "downsample1_2"]
    assert len(stream_writers) == 3  # the downsampling conv, the SepConv's last conv, the conv block's
    s = np.asarray(prog.meta["scales"]["downsample1_2"])
    # the finest writer of each channel has k = 0 (no shift), every other k <= 0
    ks = np.stack([op.arrays["shift"] for op in stream_writers])
    assert np.all(ks.max(0) == 0) and s.min() > 0


def test_the_snapped_model_is_dense_with_thresholds_off_the_grid(exact_snap):
    model, res = exact_snap
    snapped = res.model
    assert snapped.recipe["args"]["attn_conv"] == "dense"
    assert isinstance(snapped.block3[0].attn.q_conv[0], torch.nn.Conv2d)
    v = snapped.lif.v_threshold
    assert abs(v - 0.1) < 1e-6 and v * 2 ** 22 == round(v * 2 ** 22) and v * 2 ** 21 != round(v * 2 ** 21)
    assert res.record["unsnapped"] == [] and res.recompile_differences == []
    assert res.program.meta["encoding"]["norm"] == "qlog1p:6"


def test_the_snapped_float_model_computes_the_chips_integers(exact_snap):
    """Every LIF spike and every label of the float model equals the chip's, step for step, over
    moving and static stretches (the float model is the independent side: torch float32)."""
    _, res = exact_snap
    state, fired = None, {}
    for frame in stream(1):
        _, state, stats = reference_step(res.program, frame[None], state, record=True)
        for k, v in stats.record.items():
            fired[k] = fired.get(k, 0) + int(v.sum())
    assert all(n > 0 for k, n in fired.items() if "attn_lif" not in k), fired
    a = Agreement(res.program, res.model, executor=Reference(res.program))
    a.stream(stream(1))
    assert a.labels == 80 and a.top1 == 1.0
    assert a.first_divergence() is None, a.per_layer()
    assert min(a.per_layer().values()) == 1.0


def test_the_fitted_grid_does_not_follow_the_float_model(exact_snap):
    """Control: the same source on the fitted grid (``generic``) does not reproduce its float model."""
    model, _ = exact_snap
    cal = [np.random.default_rng(0).poisson(1.5, (3, 4, 2, 16, 16)).astype(np.int32)]
    res = snap(model, profile="generic", calibration=cal, input_size=(16, 16), encoding=ENC)
    a = Agreement(res.program, res.model, executor=Reference(res.program))
    a.stream(stream(1))
    assert a.first_divergence() is not None


def test_a_threshold_on_the_input_grid_is_crossed_by_float32_rounding():
    """Why the thresholds move off the grid: a float32 LIF whose input is held at its threshold
    converges on it from below and, after ~24 steps, rounds onto it and fires; in exact arithmetic
    (and on the chip) it never does.  With the threshold moved by 2^-22 it never fires either."""
    x = torch.full((40, 1, 4), 0.5)
    for v_th, fires in ((0.5, True), (0.5 + THRESHOLD_OFFSET, False)):
        for fused in (True, False):
            s, _ = lif_multistep(x, None, fused=fused, tau=2.0, v_threshold=v_th)
            assert bool(s.any()) == fires, (v_th, fused)


@pytest.mark.parametrize("scale", [1.0, 0.25, 1 / 9])
def test_the_qlog1p_table_is_the_float_input(scale):
    counts = np.arange(256)
    enc = {"norm": "qlog1p:6", "scale": scale, "clip": 255}
    lut, u = input_table(enc, 16, pow2=True)
    assert u == 2.0 ** -6
    want = recipe_normalise(InputRecipe(size=(16, 16), normalisation="qlog1p:6"), counts, scale).numpy()
    assert np.array_equal(lut * u, want.astype(np.float64))
    assert np.array_equal(normalise(counts, enc).numpy(), want)
    # and it is log1p to half a step
    assert np.max(np.abs(want - np.log1p(counts * np.float32(scale)))) <= 2.0 ** -7 + 1e-6


@pytest.mark.parametrize("bad", ["qlog1p:", "qlog1p:x", "qlog1p:17", "qlog1p:-1"])
def test_a_bad_qlog1p_is_a_recipe_error_naming_the_field(bad):
    with pytest.raises(RecipeError, match="normalisation"):
        InputRecipe(size=(16, 16), normalisation=bad)


def test_qlog1p_codes_wider_than_the_input_width_are_coded_coarser():
    """speck's 8-bit codes cannot hold qlog1p:6 (codes up to 267): the table's values are coded to
    the width, to half a (power-of-two) step, as log1p is - not exact, and the program says its step."""
    enc = {"norm": "qlog1p:6", "scale": 0.25, "clip": 255}
    lut, u = input_table(enc, 8, pow2=True)
    want = normalise(np.arange(256), enc).numpy().astype(np.float64)
    assert lut.max() <= 255 and u == 2.0 ** -5
    assert np.max(np.abs(lut * u - want)) <= u / 2 and not np.array_equal(lut * u, want)


def test_dense_attention_models_fold_and_run_the_fast_path_as_defined():
    """A dense-attention model (``attn_conv="dense"``): the folded forms and the CPU fast path
    (which gathers the dense kernels on the spikes, :class:`DenseKernels`) give the definition's logits."""
    from snn.backends.cpu import build
    from snn.backends.cpu.runners import DenseKernels
    from snn.compile import fold_model

    model = with_trained_batchnorms(small_model(attn_conv="dense", v_threshold=0.05))
    x = torch.from_numpy(np.random.default_rng(3).poisson(2.0, (4, 2, 2, 16, 16)).astype(np.float32))
    with torch.no_grad():
        want, _ = model.forward_sequence(x)
        assert want.abs().max() > 0
        fast = build(model)
        runners = [getattr(m, "runner", None) for m in fast.modules()]
        assert sum(isinstance(getattr(r, "qkv", None), DenseKernels) for r in runners) == 2  # block3, block4
        for form in (fold_model(model, repconv="chain"), fold_model(model, repconv="dense"), fast):
            got, _ = form.forward_sequence(x)
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_exact_model_is_the_same_function():
    model = with_trained_batchnorms(small_model(v_threshold=0.05))
    dense = exact_model(model)
    x = torch.from_numpy(np.random.default_rng(4).poisson(2.0, (4, 2, 2, 16, 16)).astype(np.float32))
    with torch.no_grad():
        want, _ = model.forward_sequence(x)
        got, _ = dense.forward_sequence(x)
    assert want.abs().max() > 0
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_scale_grid_is_a_checked_profile_key():
    raw = load_profile("generic").to_dict()
    raw["numerics"]["scale_grid"] = "pow3"
    with pytest.raises(ProfileError, match="scale_grid.*not one of"):
        load_profile(raw)
    del raw["numerics"]["scale_grid"]
    with pytest.raises(ProfileError, match="numerics.scale_grid.*missing"):
        load_profile(raw)
    assert load_profile("exact").numerics.scale_grid == "pow2"
    assert load_profile("exact").numerics.membrane_bits == 32


def test_pins_written_before_the_scale_grid_setting_are_for_the_fitted_grid():
    prof = load_profile("generic")
    numerics = {k: v for k, v in prof.to_dict()["numerics"].items() if k != "scale_grid"}
    extra = {"chip_snap": {"pins": {"numerics": numerics, "scales": {}}}}
    assert pins_for(extra, prof) is not None
    assert pins_for(extra, load_profile("exact")) is None


def test_an_exact_snapped_checkpoint_compiles_to_its_program(tmp_path, exact_snap):
    from snn.backends.chip.snap import same_program, save_snapped

    model, res = exact_snap
    path = tmp_path / "exact.pt"
    res.meta["recipe"] = None
    save_snapped(path, res)
    loaded, meta = snn.load_checkpoint(path)
    assert meta["args"]["attn_conv"] == "dense"
    prog = chip_compile(path, profile="exact", input_size=(16, 16), encoding=res.program.meta["encoding"])
    assert prog.meta["pinned"] is True and same_program(prog, res.program) == []


def test_an_unknown_attention_conv_is_a_value_error():
    with pytest.raises(ValueError, match="unknown attention conv 'sparse'"):
        small_model(attn_conv="sparse")


def test_training_from_the_snapped_file_with_a_repconv_config_says_it_does_not_fit(tmp_path):
    """docs/training.md: the stage configs build RepConvs; the shipped (snapped, dense) file does not
    fit them, and ``train`` says so instead of loading it partly."""
    from eventpipe.training.config import load_train_config
    from eventpipe.training.trainer import train

    from .conftest import SHIPPED

    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    # the stage-1 config's [model] (the shipped architecture with its RepConvs), on a tiny clip set
    cfg = load_train_config(str(root / "configs" / "train_synthetic_halves.toml"), [
        f'init="{SHIPPED}"', f'out_dir="{tmp_path / "run"}"', "progress=false", 'export=""',
        "data.n_per_class=1", "data.n_test_per_class=1", "data.sensor_size=[32, 32]", "data.duration_us=300000",
        "data.T=2", "data.window_us=100000", "data.input_size=[16, 16]", f'data.cache_dir="{tmp_path / "cache"}"',
        "data.gen_workers=1", "optim.epochs=1"])
    with pytest.raises(ValueError, match="its weights do not fit the \\[model\\] of this config"):
        train(cfg)


def test_the_shipped_model_is_snapped_as_the_docs_say():
    """docs/chip.md "The exact grid" and docs/training.md (stage 6): snapped to ``exact`` from the
    stage-5 file (weights moved by at most 1.22 % of a layer's largest), dense attention, 1,110,932
    parameters, a 4.6 MB file, ``qlog1p:6``, thresholds 0.5 + 2^-22; its program's thresholds are
    2^21-2^23 membrane units and it is the pinned program."""
    import os

    from .conftest import SHIPPED

    model, meta = snn.load_checkpoint(SHIPPED)
    rec = meta["extra"]["chip_snap"]
    assert rec["profile"] == "exact" and rec["unsnapped"] == []
    assert round(100 * rec["max_relative_weight_change"], 2) == 1.22
    assert meta["args"]["attn_conv"] == "dense" and meta["recipe"]["normalisation"] == "qlog1p:6"
    assert model.lif.v_threshold == model.block3[0].attn.attn_lif.v_threshold == np.float32(0.5 + THRESHOLD_OFFSET)
    assert sum(p.numel() for p in model.parameters()) == 1_110_932
    assert 4.5e6 < os.path.getsize(SHIPPED) < 4.7e6
    prog = chip_compile(SHIPPED, profile="exact", sensor_size=(128, 128))
    assert prog.meta["pinned"] is True
    theta = np.concatenate([op.arrays["theta"] for op in prog.ops if op.kind == "lif"])
    assert theta.min() >= 2 ** 21 and theta.max() < 2 ** 24


def test_a_threshold_that_is_no_short_binary_fraction_compiles_on_the_fitted_rule():
    """An unsnapped model with V_th = 0.1 (no integer theta fits a 32-bit membrane) still compiles
    for ``exact``: its LIFs take the fitted grid's fractional bits and ``ceil``, as on ``generic``."""
    model = with_trained_batchnorms(small_model(v_threshold=0.1))
    cal = [np.random.default_rng(0).poisson(1.5, (3, 4, 2, 16, 16)).astype(np.int32)]
    prog = chip_compile(model, profile="exact", calibration=cal, input_size=(16, 16), encoding=ENC)
    lifs = [op for op in prog.ops if op.kind == "lif" and "attn_lif" not in op.name]
    assert lifs and all(0 < op.arrays["theta"].max() <= 2 ** 30 for op in lifs)
    unit = np.asarray(prog.meta["scales"][lifs[0].src]) / 2.0 ** lifs[0].attrs["in_shift"]
    assert not np.array_equal(lifs[0].arrays["theta"] * unit, np.asarray(lifs[0].attrs["v_threshold"]))
