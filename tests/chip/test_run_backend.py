"""``eventpipe run --backend chip``: the runtime steps the chip executor; labels carry the backend."""

import io
import json

import pytest

from eventpipe.cli import main

pytestmark = pytest.mark.timeout(600)


def _run(argv):
    out, err = io.StringIO(), io.StringIO()
    rc = main(argv, out=out, err=err)
    return rc, out.getvalue(), err.getvalue()


def test_run_on_the_chip():
    rc, out, err = _run(["run", "--backend", "chip", "--duration", "2", "--max-speed", "--jsonl", "-", "--quiet"])
    assert rc == 0, err
    labels = [json.loads(line) for line in out.splitlines() if line.startswith("{") and '"label"' in line]
    assert labels and all(m["backend"] == "chip" for m in labels)


def test_float_labels_say_float():
    rc, out, err = _run(["run", "--backend", "float", "--duration", "1", "--max-speed", "--jsonl", "-", "--quiet"])
    assert rc == 0, err
    labels = [json.loads(line) for line in out.splitlines() if line.startswith("{") and '"label"' in line]
    assert labels and all(m["backend"] == "float" for m in labels)


def test_bad_profile_is_one_line():
    rc, out, err = _run(["run", "--backend", "chip", "--profile", "spek", "--duration", "1", "--quiet"])
    assert rc == 4
    assert "did you mean 'speck'" in err and "Traceback" not in err and err.count("\n") == 1


def _labels(out):
    return [(m["t_us"], m["label"], m["topk"]) for m in (json.loads(line) for line in out.splitlines()
                                            if line.startswith("{") and '"label"' in line)]


def test_the_shipped_model_says_the_same_labels_on_the_chip():
    """The shipped model is snapped to the exact grid and the runtime compiles it for that profile
    (``--profile auto``): the chip's label stream is the float model's, label for label."""
    argv = ["run", "--source", "synthetic:seed=1000,duration_s=6", "--max-speed", "--jsonl", "-", "--quiet",
            "--set", "decoder.emit_every=1"]
    rc, chip_out, err = _run(argv + ["--backend", "chip"])
    assert rc == 0, err
    rc, float_out, err = _run(argv + ["--backend", "float"])
    assert rc == 0, err
    chip, flt = _labels(chip_out), _labels(float_out)
    assert len(chip) >= 110 and chip == flt  # labels, times and top-3 scores
    rc, fitted_out, err = _run(argv + ["--backend", "chip", "--profile", "generic"])  # control: another grid
    assert rc == 0, err
    assert _labels(fitted_out) != flt


def test_profile_auto_is_the_one_the_checkpoint_was_snapped_for(tmp_path):
    from eventpipe.represent.recipe import InputRecipe
    from eventpipe.runtime.chip import use_chip
    from eventpipe.runtime.model_loader import load_model

    loaded = load_model("default")
    assert loaded.extra["chip_snap"]["profile"] == "exact"
    recipe = loaded.recipe
    got, _ = use_chip(loaded, recipe, (128, 128), "auto", calibration_clips=0)
    assert got.profile == "exact" and got.model.executor.program.profile.name == "exact"
    loaded = load_model("default")
    loaded.extra = {k: v for k, v in loaded.extra.items() if k != "chip_snap"}  # not a snapped checkpoint
    got, _ = use_chip(loaded, recipe, (128, 128), "auto", calibration_clips=0)
    assert got.profile == "generic"
    assert isinstance(recipe, InputRecipe)
