"""Snapping a model to the chip's integers (``snn.backends.chip.snap``): the folded weights of the
snapped model are the program's integers times their scales, a recompile gives the same program,
and the chip follows the snapped model where it did not follow the source."""

import io

import numpy as np
import pytest
import torch

import snn
import snn.chip
from eventpipe.cli import main
from snn.backends.chip.compile import normalise
from snn.backends.chip.lower import lower
from snn.backends.chip.simulate import ChipSim
from snn.backends.chip.snap import grid_values, pins_for, same_program, save_snapped, snap

from .conftest import SHIPPED
from .programs import small_model, with_trained_batchnorms

ENC = {"norm": "log1p", "scale": 0.25, "clip": 255}


def small():
    return with_trained_batchnorms(small_model())


def frames(seed, n=3, batch=4):
    return np.random.default_rng(seed).poisson(1.5, (n, batch, 2, 16, 16)).astype(np.int32)


@pytest.fixture(scope="module")
def snapped():
    model = small()
    res = snap(model, calibration=[frames(0)], input_size=(16, 16), encoding=ENC)
    return model, res


def test_folded_weights_are_the_integers_times_their_scales(snapped):
    model, res = snapped
    prog = res.program
    grid = grid_values(prog)
    scales = {b: np.asarray(v) for b, v in prog.meta["scales"].items()}
    folded = {op.name: op for op in lower(res.model, (16, 16)).ops if op.kind == "conv"}
    before = {op.name: op for op in lower(model, (16, 16)).ops if op.kind == "conv"}
    assert len(res.record["snapped_ops"]) == len(grid) - 4 and res.record["unsnapped"] == [
        "block3.0.attn.qkv_conv", "block3.0.attn.proj_conv", "block4.0.attn.qkv_conv", "block4.0.attn.proj_conv"]
    for op in prog.ops:
        if op.kind != "conv":
            continue
        w, b = folded[op.name].arrays["weight"], folded[op.name].arrays["bias"]
        if op.name in res.record["unsnapped"]:   # RepConvs keep their weights
            assert np.array_equal(w, before[op.name].arrays["weight"]), op.name
            continue
        # the folded float weights are w_q * S / (u * 2^k), to float32 rounding ...
        np.testing.assert_allclose(w, grid[op.name][0], rtol=0, atol=4e-7 * np.abs(grid[op.name][0]).max(),
                                   err_msg=op.name)
        np.testing.assert_allclose(b, grid[op.name][1], rtol=0, atol=4e-7 * max(np.abs(b).max(), 1e-30),
                                   err_msg=op.name)
        # ... hand-worked for one entry: the integer times the destination scale over 2^k and the source scale
        co, ci = 0, 0
        k = int(op.arrays["shift"][co])
        u = scales[op.src][ci]
        want = float(op.arrays["weight"][co, ci, 0, 0]) * scales[op.dst][co] / (u * 2 ** k)
        assert abs(w[co, ci, 0, 0] - want) <= 1e-6 * abs(want) + 1e-12, op.name
        # and the snap moved something: the source was off the grid
        assert not np.allclose(before[op.name].arrays["weight"], grid[op.name][0], rtol=0, atol=1e-9), op.name


def test_recompile_gives_the_same_program(snapped, tmp_path):
    _, res = snapped
    assert res.recompile_differences == []
    path = tmp_path / "s.pt"
    meta = {"class_names": None, "input_size": (16, 16), "extra": {"note": "kept"}, "recipe": None}
    save_snapped(path, type(res)(res.model, meta, res.program, res.record, [], {}))
    m2, meta2 = snn.load_checkpoint(path)
    assert meta2["extra"]["note"] == "kept" and meta2["extra"]["chip_snap"]["profile"] == "generic"
    # from the file, with another calibration: the pins decide, the same integers come out
    again = snn.chip.compile(str(path), calibration=[frames(7)], input_size=(16, 16), encoding=ENC)
    assert again.meta["pinned"] is True
    assert same_program(res.program, again) == []
    # snapping the snapped file again changes no weight and keeps the first record under "previous"
    twice = snap(str(path), calibration=[frames(7)], input_size=(16, 16), encoding=ENC)
    assert twice.recompile_differences == [] and twice.record["previous"]["profile"] == "generic"
    for (n, p1), p2 in zip(m2.state_dict().items(), twice.model.state_dict().values()):
        assert torch.equal(p1, p2), n
    # a weight changed after snapping is off the grid: the pins are not used
    with torch.no_grad():
        m2.ConvBlock1_1[0].conv1.weight[0, 0, 1, 1] += 1e-3
    stale = snn.chip.compile(m2, calibration=[frames(7)], input_size=(16, 16), encoding=ENC,
                             pins=pins_for(meta2["extra"], snn.chip.load_profile("generic")))
    assert str(stale.meta["pinned"]).startswith("stale")
    # pins for other numerics or another input encoding are not used
    assert pins_for(meta2["extra"], snn.chip.load_profile("speck")) is None
    other = snn.chip.compile(str(path), input_size=(16, 16), encoding=dict(ENC, scale=1.0))
    assert "another input encoding" in other.meta["pinned"]


def test_the_chip_follows_the_snapped_model_where_it_did_not_follow_the_source(snapped):
    """With the roundings the snap cannot remove left out of the chip's twin (the shift and membrane
    floors, the input table, the pooling shift; thresholds compared exactly), the snapped model's
    chip gives the float model's logits; the source's chip does not."""
    model, res = snapped
    x = frames(11, n=4, batch=8)
    keep_out = ("shift", "membrane", "input", "pool", "threshold")

    def gap(prog, m):
        sim = ChipSim(prog, exact=keep_out)
        weights = sim.quantise_all()
        # the RepConvs are not snapped (see the module): their exact weights, to isolate the others
        exact = ChipSim(prog, m, exact=("weights", "bias")).quantise_all()
        for name in res.record["unsnapped"]:
            weights[name] = exact[name]
        with torch.no_grad():
            xs = torch.from_numpy(x.astype(np.int64))
            st, q = None, []
            for t in range(xs.shape[0]):
                lg, st, _ = sim.step(xs[t], st, weights=weights)
                q.append(lg)
            f, _ = m.run(normalise(x, prog.meta["encoding"]))
        return float(np.abs(torch.stack(q).numpy() * prog.logit_scale - f.numpy()).max())

    source_prog = snn.chip.compile(model, calibration=[frames(0)], input_size=(16, 16), encoding=ENC, pins=None)
    assert gap(source_prog, model) > 1e-3
    assert gap(res.program, res.model) < 1e-4


def _cli(argv):
    out, err = io.StringIO(), io.StringIO()
    rc = main(argv, out=out, err=err)
    return rc, out.getvalue(), err.getvalue()


def test_cli_snaps_the_shipped_model_and_the_runtime_takes_its_pins(tmp_path):
    out = tmp_path / "snapped.pt"
    rc, text, err = _cli(["chip", "snap", "-o", str(out)])
    assert rc == 0, err
    assert "recompiled: the same program" in text and "0 left as they were" in text   # dense attention
    model, meta = snn.load_checkpoint(out)
    src_model, src = snn.load_checkpoint(SHIPPED)
    rec = meta["extra"]["chip_snap"]
    # the profile it was snapped for (the shipped model: exact)
    assert rec["profile"] == src["extra"].get("chip_snap", {}).get("profile", "generic")
    assert rec["source_sha256"] and rec["calibration"]["clips"] == 2
    assert meta["class_names"] == src["class_names"] and meta["recipe"] == src["recipe"]
    kept = lambda extra: {k: v for k, v in extra.items() if k != "chip_snap"}  # noqa: E731
    assert kept(meta["extra"]) == kept(src["extra"]) and "decoder" in meta["extra"]   # decoder etc. kept
    # the weights moved by at most a rounding step: under 2% of a layer's largest weight (nothing
    # moves when the shipped file is itself snapped)
    if "chip_snap" in src["extra"]:
        assert rec["max_relative_weight_change"] < 1e-5 and "previous" in rec
    else:
        assert 0 < rec["max_relative_weight_change"] < 0.02
    # eventpipe run --backend chip compiles it on its pins
    from eventpipe.runtime.chip import use_chip
    from eventpipe.runtime.model_loader import load_model

    loaded, _ = use_chip(load_model(str(out)), load_model(str(out)).recipe, (128, 128))
    assert loaded.model.program.meta["pinned"] is True
    # an unsnapped model has no pins: compiled as before
    if "chip_snap" not in src["extra"]:
        plain, _ = use_chip(load_model(SHIPPED), load_model(SHIPPED).recipe, (128, 128), calibration_clips=0)
        assert "pinned" not in plain.model.program.meta


def test_cli_bad_inputs_are_one_line(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_text("not a checkpoint")
    for argv, code, text in [
        (["chip", "snap", str(bad), "-o", str(tmp_path / "x.pt")], 3, "bad.pt"),
        (["chip", "snap", str(tmp_path / "none.pt"), "-o", str(tmp_path / "x.pt")], 3, "none.pt"),
        (["chip", "snap", "-o", str(tmp_path / "x.pt"), "--profile", "spek"], 4, "did you mean 'speck'"),
        (["chip", "snap", "-o", str(tmp_path / "x.pt"), "--calibration", "-1"], 2, "--calibration"),
        (["chip", "snap", "-o", str(bad / "x.pt")], 4, f"{str(bad)!r} is a file, not a folder"),
    ]:
        rc, _, err = _cli(argv)
        assert rc == code, (argv, err)
        assert text in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "x.pt").exists()
