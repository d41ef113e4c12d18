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
