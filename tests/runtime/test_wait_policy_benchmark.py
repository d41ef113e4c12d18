"""benchmarks/wait_policy.py: each variant's child gets exactly its OpenMP variables (the spin
variant none, whatever the parent has), the busy loop runs only around the busy-core child and
is ended; the summary is each variant's worst ratio to PASSIVE; bad arguments are one argparse
usage line (exit 2)."""

from __future__ import annotations

import json
import types

import pytest

from tests.benchmark_script import load, usage_error


def test_children_get_their_variables_and_the_worst_ratio_is_reported(monkeypatch, capsys):
    bench = load("wait_policy")
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # the parent's own setting must not leak
    monkeypatch.setenv("GOMP_SPINCOUNT", "7")
    seen, hogs = [], []
    median = {("PASSIVE", False): 100.0, ("spin", False): 150.0, ("bounded", False): 90.0,
              ("PASSIVE", True): 200.0, ("spin", True): 260.0, ("bounded", True): 500.0}

    class Hog:
        def __init__(self, cmd):
            self.killed = self.waited = False
            hogs.append(self)

        def kill(self):
            self.killed = True

        def wait(self):
            self.waited = True

    def fake_run(cmd, env, **kw):
        policy = env.get("OMP_WAIT_POLICY")
        passive = "bounded" if "GOMP_SPINCOUNT" in env else "PASSIVE"
        name = {None: "spin", "PASSIVE": passive}[policy]
        busy = bool(hogs) and not hogs[-1].killed
        seen.append((name, busy, env.get("GOMP_SPINCOUNT")))
        out = json.dumps({"min_ms": 1.0, "median_ms": median[(name, busy)]})
        return types.SimpleNamespace(returncode=0, stdout=out + "\n", stderr="")

    monkeypatch.setattr(bench.subprocess, "Popen", Hog)
    monkeypatch.setattr(bench.subprocess, "run", fake_run)
    assert bench.main(["--steps", "2"]) == 0
    assert seen == [("PASSIVE", False, None), ("spin", False, None), ("bounded", False, "30000"),
                    ("PASSIVE", True, None), ("spin", True, None), ("bounded", True, "30000")]
    assert len(hogs) == 3 and all(h.killed and h.waited for h in hogs)
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == ("worst  spin x1.50 of PASSIVE; "
                       "PASSIVE + GOMP_SPINCOUNT=30000 x2.50 of PASSIVE")


@pytest.mark.parametrize("args,says", [
    (["--steps", "0"], "argument --steps: must be >= 1, got 0"),
    (["--steps", "ten"], "argument --steps: invalid int value: 'ten'")])
def test_bad_arguments_are_one_usage_line(args, says):
    assert usage_error("wait_policy", args) == f"wait_policy.py: error: {says}"
