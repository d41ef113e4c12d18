"""A few hundred mutated inputs in CI: only typed errors, no crash, no hang.

The long run (>= 2,000 inputs per format) is ``benchmarks/fuzz.py``.
"""

import faulthandler

import pytest

from eventpipe.io.formats import format_names
from tests.fuzz.corpus import SUFFIX, donors, seeds
from tests.fuzz.harness import fuzz_format

N_PER_FORMAT = 40


@pytest.fixture(scope="module")
def donor_heads():
    return donors()


@pytest.mark.fuzz
@pytest.mark.parametrize("fmt", format_names())
def test_mutated_inputs_give_only_typed_errors(fmt, donor_heads, tmp_path):
    corpus = seeds(fmt)
    if not corpus:
        pytest.skip(f"no seed for {fmt} (shared sample missing)")
    faulthandler.dump_traceback_later(120, exit=True)  # a hang kills the run loudly
    try:
        stats = fuzz_format(fmt, corpus, N_PER_FORMAT, seed=1234, donors=donor_heads,
                            suffix=SUFFIX[fmt], keep_dir=tmp_path / "failures", workdir=tmp_path)
    finally:
        faulthandler.cancel_dump_traceback_later()
    assert stats.inputs == N_PER_FORMAT
    assert not stats.failures, "\n".join(f"#{i} {name}: {msg}\n{tb}"
                                         for i, name, msg, tb in stats.failures[:3])
