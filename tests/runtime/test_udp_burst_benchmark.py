"""benchmarks/udp_burst.py: one sender's burst with the shipped settings and with the old
256-datagram queue prints both lines and the worst share; bad arguments are one argparse usage
line (exit 2)."""

from __future__ import annotations

import re

import pytest

from tests.benchmark_script import load, usage_error


@pytest.mark.filterwarnings("ignore::ResourceWarning",
                            "ignore::pytest.PytestUnraisableExceptionWarning")
def test_one_sender_prints_both_settings_and_the_worst_share(capsys):
    pytest.importorskip("faery")
    mod = load("udp_burst")
    assert mod.main(["--only", "t32_x16_y15_on1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("udp_burst benchmark") and "source.queue_size=256" in out[0]
    lines = [ln for ln in out if ln.startswith("udp ")]
    assert [ln.split()[4] for ln in lines] == ["shipped", "queue_size=256"], lines
    shares = []
    for ln in lines:
        share = float(re.search(r" in +([\d.]+)% of 539,481", ln).group(1))
        dropped = int(re.search(r"queue dropped ([\d,]+) events", ln).group(1).replace(",", ""))
        # the share is printed to 0.1 %: events in (at least share - 0.05 %) and dropped add up to at
        # most the burst (a 99.1 % line may stand for 99.05 %)
        assert (share - 0.05) / 100 * 539_481 + dropped <= 539_481 + 1, ln
        shares.append(share)
    assert out[-1].startswith(f"worst share with the shipped settings: {shares[0]:.1f}%")


@pytest.mark.parametrize("args,says", [
    (["--repeat", "0"], "argument --repeat: must be >= 1, got 0"),
    (["--only", "zmq"], "argument --only: invalid choice: 'zmq'")])
def test_bad_arguments_are_one_usage_line(args, says):
    assert usage_error("udp_burst", args).startswith(f"udp_burst.py: error: {says}")
