"""benchmarks/wait_policy.py: each variant's child gets exactly its OpenMP variables (the spin
variant none, whatever the parent has), the busy loop runs only around the busy-core child and
is ended; the summary is each variant's worst ratio to PASSIVE; bad arguments are one argparse
usage line (exit 2)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import types

import pytest

from tests.conftest import REPO

SCRIPT = REPO / "benchmarks" / "wait_policy.py"


def _load():
    spec = importlib.util.spec_from_file_location("bench_wait_policy", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_children_get_their_variables_and_the_worst_ratio_is_reported(monkeypatch, capsys):
    bench = _load()
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
        name = {None: "spin", "PASSIVE": "bounded" if "GOMP_SPINCOUNT" in env else "PASSIVE"}[policy]
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
    assert out[-1] == "worst  spin x1.50 of PASSIVE; PASSIVE + GOMP_SPINCOUNT=30000 x2.50 of PASSIVE"


@pytest.mark.parametrize("args,says", [
    (["--steps", "0"], "argument --steps: must be >= 1, got 0"),
    (["--steps", "ten"], "argument --steps: invalid int value: 'ten'")])
def test_bad_arguments_are_one_usage_line(args, says):
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == f"wait_policy.py: error: {says}"
