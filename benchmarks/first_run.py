"""What a user's first ``eventpipe run`` costs before its first label: the Numba kernels compile.

    python benchmarks/first_run.py

runs ``eventpipe run --duration 1 --max-speed`` (the shipped model on the built-in synthetic
source) in a child process with an empty numba cache (a temporary ``NUMBA_CACHE_DIR``) and prints
the child's process CPU time and the part of it spent compiling (numba's compile events, outermost
only, per thread), then the same command again on the now-filled cache.  CPU times, not wall time:
they hold on a loaded machine.  Figures: docs/runtime.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time

RUN = ["run", "--duration", "1", "--max-speed"]


def child() -> None:
    from numba.core import event as ev

    compiling = [0.0]
    local = threading.local()
    lock = threading.Lock()

    class Outermost(ev.Listener):
        def on_start(self, event):
            local.__dict__.setdefault("starts", []).append(time.thread_time())

        def on_end(self, event):
            starts = local.__dict__.setdefault("starts", [])
            t = starts.pop()
            if not starts:
                with lock:
                    compiling[0] += time.thread_time() - t

    ev.register("numba:compile", Outermost())
    c0 = time.process_time()
    from eventpipe.cli.door import main

    try:
        rc = main(RUN)
    except SystemExit as e:
        rc = e.code
    print(f"RESULT {time.process_time() - c0:.1f} {compiling[0]:.1f} {rc}", flush=True)


def measure(cache: str) -> tuple[float, float]:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache)
    res = subprocess.run([sys.executable, __file__, "--child"], env=env, capture_output=True, text=True)
    line = [ln for ln in res.stdout.splitlines() if ln.startswith("RESULT ")]
    if res.returncode != 0 or not line:
        raise SystemExit(f"first_run: the child failed (exit {res.returncode}):\n{res.stderr[-2000:]}")
    cpu, comp, rc = line[-1].split()[1:]
    if rc not in ("0", "None"):
        raise SystemExit(f"first_run: eventpipe run exited {rc}:\n{res.stderr[-2000:]}")
    return float(cpu), float(comp)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="first_run.py", description=__doc__.splitlines()[0])
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child()
        return 0
    try:
        load = f"{os.getloadavg()[0]:.1f}"
    except OSError:
        load = "?"
    with tempfile.TemporaryDirectory(prefix="numba-cache-") as cache:
        cold = measure(cache)
        warm = measure(cache)
    print(f"first run ({' '.join(['eventpipe'] + RUN)}, empty numba cache, load average {load}): "
          f"{cold[0]:.1f} s of process CPU, {cold[1]:.1f} s of it compiling")
    print(f"second run (cache filled): {warm[0]:.1f} s of process CPU, {warm[1]:.1f} s compiling")
    return 0


if __name__ == "__main__":
    sys.exit(main())
