"""Mutation testing of the core modules: do the tests notice when the code is wrong?

For each module: a list of hand-written, meaningful mutations (the ones a review found
surviving, issue 17) plus operator and boundary mutations generated from the module's AST
(``<`` <-> ``<=``, ``>`` <-> ``>=``, ``==`` <-> ``!=``, ``+`` <-> ``-``, ``&`` <-> ``|``,
``and`` <-> ``or``, ``not x`` -> ``x``, integer constants ``n`` -> ``n + 1``), a seeded
sample of at most ``--cap`` of them per module.  Each mutant is applied, one at a time, to a
private copy of the repository (the worktree is never touched), the module's tests run with
a timeout (``-x``: the first failure kills it; a hang past the timeout kills it too), and
the mutant is recorded as killed or survived.

    python benchmarks/mutation.py                       # every module, default cap
    python benchmarks/mutation.py --modules labels udp  # some of them
    python benchmarks/mutation.py --list                # the mutants, nothing run
    python benchmarks/mutation.py --write-docs          # the table into docs/testing.md

Not part of the CI run (it takes ~20 min on 2 cores); run it before a stop that touched
these modules.  Numba: the copy gets its own ``NUMBA_CACHE_DIR``; a mutated module
recompiles (its source stamp changed), and so do the modules that inline its kernels
(``DEPENDENTS``), whose cached machine code would otherwise still hold the original.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tqdm import tqdm

REPO = Path(__file__).resolve().parent.parent

# module key -> (path, the tests that guard it, first the focused ones: -x stops early)
MODULES: dict[str, tuple[str, list[str]]] = {
    "pipeline": ("eventpipe/runtime/pipeline.py", ["tests/runtime/test_pipeline_promises.py"]),
    "udp": ("eventpipe/sources/udp.py",
            ["tests/transport/test_udp_bounds.py", "tests/transport/test_udp.py"]),
    "labels": ("eventpipe/labels.py",
               ["tests/transport/test_labels_bounds.py", "tests/transport/test_labels.py",
                "tests/transport/test_labels_release.py", "tests/transport/test_labels_dwell.py",
                "tests/transport/test_labels_hmm.py"]),
    "evt3": ("eventpipe/io/evt3.py",
             ["tests/io/test_decoder_bounds.py", "tests/io/test_prophesee.py"]),
    "aedat2": ("eventpipe/io/aedat2.py",
               ["tests/io/test_decoder_bounds.py", "tests/io/test_aedat.py"]),
    "frames": ("eventpipe/kernels/frames.py",
               ["tests/kernels/test_kernel_bounds.py", "tests/kernels/test_frames.py",
                "tests/kernels/test_teamwork.py"]),
    "chunkplan": ("eventpipe/kernels/_chunkplan.py",
                  ["tests/kernels/test_chunkplan.py", "tests/kernels/test_frames.py",
                   "tests/kernels/test_teamwork.py"]),
    "window_loop": ("eventpipe/kernels/_window_loop.py",
                    ["tests/kernels/test_kernel_bounds.py", "tests/kernels/test_frames.py",
                     "tests/kernels/test_streaming.py"]),
    "streaming": ("eventpipe/kernels/streaming.py",
                  ["tests/kernels/test_kernel_bounds.py", "tests/kernels/test_streaming.py"]),
    "streaming_core": ("eventpipe/kernels/_streaming_core.py",
                       ["tests/kernels/test_kernel_bounds.py", "tests/kernels/test_streaming.py"]),
    "filters": ("eventpipe/kernels/filters.py",
                ["tests/kernels/test_kernel_bounds.py", "tests/kernels/test_stream_filters.py",
                 "tests/kernels/test_filters_spatial.py"]),
    "attention": ("snn/models/attention.py",
                  ["tests/snn/test_attention_fires.py", "tests/snn/test_attention.py"]),
    "lif": ("snn/neurons/lif.py",
            ["tests/snn/test_lif_bounds.py", "tests/snn/test_neurons.py"]),
}

# numba modules whose cached kernels inline (call) kernels of the key module
DEPENDENTS = {"eventpipe/kernels/frames.py": ["eventpipe/kernels/_streaming_core.py"],
              "eventpipe/kernels/_window_loop.py": ["eventpipe/kernels/frames.py",
                                                    "eventpipe/kernels/_writeonce.py",
                                                    "eventpipe/kernels/_streaming_core.py"]}
# Numba modules: every mutant recompiles kernels (tens of seconds), so fewer generated ones
NUMBA = {"evt3", "aedat2", "frames", "chunkplan", "window_loop", "streaming", "streaming_core", "filters"}

# The hand-written mutants: (what it breaks, exact old text (unique in the file), new text).
LISTED: dict[str, list[tuple[str, str, str]]] = {
    "pipeline": [
        ("dropped frames not counted", "self.metrics.frames_dropped += 1", "pass"),
        ("newest frame dropped instead of the oldest",
         "                self.items.popleft()\n                self.metrics.frames_dropped",
         "                self.items.pop()\n                self.metrics.frames_dropped"),
        ("live sources block instead of dropping",
         "live = source is not None and source.live", "live = False"),
        ("a batch of max_batch + 1", "len(out) >= max_streams", "len(out) > max_streams"),
        ("a blocking queue holding maxlen + 1",
         "while len(self.items) >= self.maxlen and not self.drop_oldest",
         "while len(self.items) > self.maxlen and not self.drop_oldest"),
        ("idle reset fires on active streams", "if now - t > idle:", "if now - t < idle:"),
        ("idle reset leaves the membranes", "self.session.reset(sid)\n", "pass\n"),
        ("idle reset leaves the label state", "self.decoder.reset(sid)\n", "pass\n"),
        ("idle resets not counted", "self.metrics.streams_reset += 1", "pass"),
        ("frames counter counts steps", "self.metrics.frames += len(ready)",
         "self.metrics.frames += 1"),
    ],
    "udp": [
        ("y not bounds-checked", '(("x", sensor_size[0]), ("y", sensor_size[1]))',
         '(("x", sensor_size[0]),)'),
        ("polarity byte 2 accepted", 'r["on"] > 1', 'r["on"] > 2'),
        ("arrival stamp in ms", "(arrival_ns - self._t0_ns) // 1000",
         "(arrival_ns - self._t0_ns) // 1000000"),
        ("kernel-drop counter adds the cumulative total",
         "st.kernel_dropped += (total - last_ovfl) & 0xFFFFFFFF", "st.kernel_dropped += total"),
        ("timestamp unwrap at 2**30", "d < -(1 << 31)", "d < -(1 << 30)"),
    ],
    "labels": [
        ("latency_ms in microseconds", "(now - float(t_arrival)) * 1e3",
         "(now - float(t_arrival)) * 1e6"),
        ("threshold boundary < -> <=", "if f[k] < threshold:", "if f[k] <= threshold:"),
        ("hysteresis boundary >= -> >", "return k if f[k] >= lead + hysteresis else current",
         "return k if f[k] > lead + hysteresis else current"),
        ("challenger support ignores the current label's fast EMA",
         "max(smooth[current], f[current])", "smooth[current]"),
        ("release boundary < -> <=", "smooth[current] < release:", "smooth[current] <= release:"),
        ("released label keeps its slow support",
         "return k if f[k] >= f[current] + margin else current",
         "return k if f[k] >= max(smooth[current], f[current]) + margin else current"),
        ("softmax without max subtraction",
         "z = logits - logits.max(axis=-1, keepdims=True)", "z = logits"),
        ("truth index off by one", "self.class_names[int(truth)]",
         "self.class_names[int(truth) - 1]"),
    ],
    "evt3": [
        ("x == width accepted", "(is_x & (a >= w_lim))", "(is_x & (a > w_lim))"),
        ("y bound dropped", "((1 - is_x) & (a >= h_lim))", "((1 - is_x) & (a >= 65536))"),
        ("vector x bound dropped",
         "if base + width > w_lim and base + 16 - _clz16(m) > w_lim:", "if False:"),
        ("wrap threshold >= -> >", "tbase - nb >= MAX_BASE - LOOP_THRESHOLD",
         "tbase - nb > MAX_BASE - LOOP_THRESHOLD"),
    ],
    "aedat2": [
        ("x == width accepted", "if x >= w:", "if x > w:"),
        ("y == height accepted", "if y >= h:", "if y > h:"),
        ("wrap threshold > -> >=", "prev - ts > 0x80000000", "prev - ts >= 0x80000000"),
        ("wrap threshold 2**31 -> 2**30", "prev - ts > 0x80000000", "prev - ts > 0x40000000"),
    ],
    "frames": [
        ("chunk search upper bound instead of lower", "if t[mid] < v:", "if t[mid] <= v:"),
    ],
    "window_loop": [  # (the per-window loops, moved out of frames.py)
        ("saturation < -> <= (window kernel)",
         "        v = frame[j]\n        if v < maxval:", "        v = frame[j]\n        if v <= maxval:"),
        ("saturation < -> <= (overlapping windows)",
         "            v = out[k, pi, yi, xi]\n            if v < maxval:",
         "            v = out[k, pi, yi, xi]\n            if v <= maxval:"),
        ("tolerance > -> >= (window kernel)", "if runmax - ti > tol:", "if runmax - ti >= tol:"),
    ],
    "streaming": [
        ("reset leaves the open window", "self._outbuf[0] = 0\n", "pass\n"),
        ("reset leaves the ring", "self._ring.fill(0)\n        self._outbuf[0] = 0",
         "self._outbuf[0] = 0"),
        ("running max not advanced by advance_to", "self._state[S_RUNMAX] = int(t)\n",
         "pass\n"),
    ],
    "streaming_core": [
        ("running max not advanced on window close", "        runmax = ti\n        _close_until",
         "        _close_until"),
        ("ring tolerance <= -> <", "elif runmax - ti <= tol:", "elif runmax - ti < tol:"),
    ],
    "filters": [
        ("hot pixels against the mean", "np.median(active)", "np.mean(active)"),
        ("denoise left edge", "(xi > 0 and mem[xi - 1, yi] > ti)", "(xi > 1 and mem[xi - 1, yi] > ti)"),
        ("denoise memory > -> >=", "(xi > 0 and mem[xi - 1, yi] > ti)",
         "(xi > 0 and mem[xi - 1, yi] >= ti)"),
        ("refractory > -> >=", "t[i] - last[yi, xi] > period", "t[i] - last[yi, xi] >= period"),
        ("hot min_events >= -> >", "(counts >= min_events)", "(counts > min_events)"),
        ("hot rate > -> >=", "(rates > limit)", "(rates >= limit)"),
    ],
    "attention": [
        ("SDSA-1 column mean instead of sum", "kv = (k * v).flatten(3).sum(-1, keepdim=True)",
         "kv = (k * v).flatten(3).mean(-1, keepdim=True)"),
        ("SDSA-1 gates V instead of Q", "return q * kv.unsqueeze(-1)",
         "return v * kv.unsqueeze(-1)"),
    ],
    "lif": [
        ("tau boundary <= -> <", "if tau <= 1.0:", "if tau < 1.0:"),
        ("decay_input sign", "h = v + (x - v) / tau", "h = v + (x + v) / tau"),
        ("reset not detached", "r = s.detach() if detach_reset else s", "r = s"),
        ("spike at > instead of >=",
         "        return SigmoidSurrogate.apply(x, alpha)\n    return (x >= 0).to(x.dtype)",
         "        return SigmoidSurrogate.apply(x, alpha)\n    return (x > 0).to(x.dtype)"),
    ],
}

# Survivors judged after a run: mutant id -> why it is equivalent (or left).  The ids are
# printed by the run ("module:line:what").
NOTES: dict[str, str] = {
    "udp:41:65536 -> 65537": "equivalent: the receive buffer is larger than any UDP payload "
                             "(65,507 bytes over IPv4, 65,527 over IPv6) either way",
    "pipeline:251:1 -> 2": "killed by a test added after the run (`test_warm_up_leaves_no_"
                           "state`: `warm_up` resets stream -2 instead of its scratch stream "
                           "-1, leaving a state behind); checked by hand on the merged file "
                           "(the test fails with the mutant), not rerun by the script",
    "pipeline:265:not x -> x": "killed by a test added after the run (`test_stop_without_"
                               "drain_steps_nothing_more`); checked by hand on the merged "
                               "file, not rerun by the script",
    "pipeline:269:+ -> -": "left: `wait(duration_s)` with its deadline in the past stops the "
                           "run at once; pinning it needs a wall-clock test of the duration "
                           "(flaky on a loaded machine) or `wait` on the injected clock",
    "pipeline:271:>= -> >": "equivalent: `time.monotonic()` equal to the deadline to the last "
                            "bit; the next 0.1 s join loop stops it either way",
    "streaming:181:running max not advanced on window close":
        "equivalent: the event that closed the window is the next one `_bin_window` reads, "
        "and it sets the running maximum to that event's time on either branch (in a window "
        "or in a gap), before any other event is compared with it; the early return stores "
        "the maximum before this line in both versions",
    "filters:48:1 -> 2": "equivalent: a grid one column (row) wider than the events need; "
                         "the extra cells keep their initial memory (`filter_time`), which "
                         "can only support an event with t < filter_time, and every such "
                         "event is kept anyway (tonic's initial memory); refractory and "
                         "hot-pixel results do not depend on unused cells",
    "frames:162:1 -> 2": "equivalent: `_valid_mask`'s count of kept events only decides "
                         "whether the index-window path copies the valid events out; with "
                         "every event valid the mutant copies all of them, and the frames and "
                         "counters are the same (only slower)",
    "chunkplan:90:>= -> >": "equivalent: the cut's window `k` is at most T - 1 on every path "
                            "(`_window_of` returns at most T - 1, `k += 1` only below T - 1, "
                            "the empty-window branch only lowers it), so `k >= T` and `k > T` "
                            "are both never true; the guard stays against a future edit",
    "udp:119:256 -> 257": "equivalent: `read_limit` only says how many queued datagrams one "
                          "`read()` decodes together; the events, their order and every "
                          "counter are the same",
}


@dataclasses.dataclass
class Mutant:
    module: str
    line: int
    what: str
    source: bytes          # the whole mutated file
    listed: bool

    @property
    def id(self) -> str:
        return f"{self.module}:{self.line}:{self.what}"


# -- generating mutants ------------------------------------------------------------------------

_SWAP = {ast.Lt: "<=", ast.LtE: "<", ast.Gt: ">=", ast.GtE: ">", ast.Eq: "!=", ast.NotEq: "=="}
_TOK = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!="}
_BIN = {ast.Add: ("+", "-"), ast.Sub: ("-", "+"), ast.BitAnd: ("&", "|"), ast.BitOr: ("|", "&")}


def _offsets(src: bytes) -> list[int]:
    starts, pos = [0], 0
    for line in src.splitlines(keepends=True):
        pos += len(line)
        starts.append(pos)
    return starts


def _skipped_ranges(tree: ast.AST) -> list[tuple[int, int]]:
    """Line ranges not worth mutating: docstrings, raise statements (messages), annotations,
    ``extra_repr``/``__repr__`` bodies, f-strings, logging of text."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Raise, ast.JoinedStr)):
            out.append((node.lineno, node.end_lineno))
        if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Module)):
            body = getattr(node, "body", [])
            if body and isinstance(body[0], ast.Expr) and isinstance(
                    getattr(body[0], "value", None), ast.Constant) and isinstance(
                    body[0].value.value, str):
                out.append((body[0].lineno, body[0].end_lineno))
            if isinstance(node, ast.FunctionDef):
                if node.name in ("extra_repr", "__repr__"):
                    out.append((node.lineno, node.end_lineno))
                if node.returns is not None:
                    out.append((node.returns.lineno, node.returns.end_lineno))
                for a in node.args.args + node.args.kwonlyargs:
                    if a.annotation is not None:
                        out.append((a.annotation.lineno, a.annotation.end_lineno))
        if isinstance(node, ast.AnnAssign):
            out.append((node.annotation.lineno, node.annotation.end_lineno))
    return out


def auto_mutants(module: str, src: bytes) -> list[Mutant]:
    tree = ast.parse(src)
    starts = _offsets(src)
    skip = _skipped_ranges(tree)
    pos = lambda ln, col: starts[ln - 1] + col  # col offsets are UTF-8 byte offsets
    out: list[Mutant] = []

    def skipped(node):
        return any(a <= node.lineno <= b for a, b in skip)

    def add(node, a, b, new, what):
        m = src[:a] + new + src[b:]
        out.append(Mutant(module, node.lineno, what, m, False))

    def between(left, right, tokens):
        a, b = pos(left.end_lineno, left.end_col_offset), pos(right.lineno, right.col_offset)
        seg = src[a:b].decode("utf-8", "replace")
        m = re.search(r"(<=|>=|==|!=|<|>|\band\b|\bor\b|[+\-&|])", seg)
        if m is None or m.group(1) not in tokens:
            return None
        return a + len(seg[:m.start()].encode()), a + len(seg[:m.end()].encode())

    for node in ast.walk(tree):
        if not hasattr(node, "lineno") or skipped(node):
            continue
        if isinstance(node, ast.Compare):
            left = node.left
            for op, right in zip(node.ops, node.comparators):
                if type(op) in _SWAP:
                    span = between(left, right, {_TOK[type(op)]})
                    if span:
                        add(node, *span, _SWAP[type(op)].encode(),
                            f"{_TOK[type(op)]} -> {_SWAP[type(op)]}")
                left = right
        elif isinstance(node, ast.BinOp) and type(node.op) in _BIN:
            old, new = _BIN[type(node.op)]
            span = between(node.left, node.right, {old})
            if span:
                add(node, *span, new.encode(), f"{old} -> {new}")
        elif isinstance(node, ast.BoolOp):
            old = "and" if isinstance(node.op, ast.And) else "or"
            span = between(node.values[0], node.values[1], {old})
            if span:
                new = "or" if old == "and" else "and"
                add(node, *span, new.encode(), f"{old} -> {new}")
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            a, b = pos(node.lineno, node.col_offset), pos(node.operand.lineno,
                                                          node.operand.col_offset)
            if src[a:b].strip() == b"not":
                add(node, a, b, b"", "not x -> x")
        elif isinstance(node, ast.Constant) and type(node.value) is int:
            a = pos(node.lineno, node.col_offset)
            b = pos(node.end_lineno, node.end_col_offset)
            add(node, a, b, str(node.value + 1).encode(), f"{node.value} -> {node.value + 1}")
    return out


def listed_mutants(module: str, src: bytes) -> list[Mutant]:
    out = []
    for what, old, new in LISTED.get(module, []):
        ob = old.encode()
        n = src.count(ob)
        if n != 1:
            raise SystemExit(f"{module}: listed mutation {what!r} matches {n} times; update it")
        i = src.index(ob)
        line = src[:i].count(b"\n") + 1 + (len(ob) - len(ob.lstrip(b" \n")) > 0
                                            and ob.lstrip(b" ").startswith(b"\n"))
        out.append(Mutant(module, line, what, src.replace(ob, new.encode()), True))
    return out


def mutants_for(module: str, cap: int, seed: int) -> list[Mutant]:
    path = REPO / MODULES[module][0]
    src = path.read_bytes()
    listed = listed_mutants(module, src)
    seen = {m.source for m in listed} | {src}
    auto = []
    for m in auto_mutants(module, src):
        if m.source in seen:
            continue
        try:
            ast.parse(m.source)
        except SyntaxError:
            continue
        seen.add(m.source)
        auto.append(m)
    rng = random.Random(f"{seed}:{module}")
    auto = sorted(rng.sample(auto, min(cap, len(auto))), key=lambda m: m.line)
    return listed + auto


# -- running them ---------------------------------------------------------------------------

def copy_repo(dst: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
                           check=True, capture_output=True).stdout.split(b"\0")
    for f in files:
        if not f:
            continue
        s = REPO / f.decode()
        if not s.is_file():
            continue
        d = dst / f.decode()
        d.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(s, d)


def run_tests(root: Path, tests: list[str], env: dict, timeout: float) -> tuple[str, float]:
    """``passed``, ``failed`` or ``timeout`` (a hang counts as a kill), and the seconds.
    The last output of the latest run is kept in ``run_tests.tail``."""
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
           f"--timeout={int(timeout)}", *tests]
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, cwd=root, env=env, capture_output=True, timeout=timeout + 30)
    except subprocess.TimeoutExpired:
        return "timeout", time.monotonic() - t0
    dt = time.monotonic() - t0
    run_tests.tail = (p.stdout + p.stderr)[-3000:].decode("utf-8", "replace")
    if p.returncode == 0:
        return "passed", dt
    if p.returncode in (1, 2, 3):  # tests failed / interrupted / internal error (import)
        return "failed", dt
    return f"rc{p.returncode}", dt


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--modules", nargs="*", default=list(MODULES), choices=list(MODULES))
    ap.add_argument("--cap", type=int, default=10, help="generated mutants per module")
    ap.add_argument("--cap-numba", type=int, default=5,
                    help="generated mutants per Numba module (each recompiles kernels)")
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--timeout", type=float, default=240, help="seconds per test run")
    ap.add_argument("--list", action="store_true", help="print the mutants, run nothing")
    ap.add_argument("--only", nargs="*", default=None,
                    help="run only the mutants whose id contains one of these strings")
    ap.add_argument("--json", type=Path, default=REPO / "benchmarks" / "mutation_results.json")
    ap.add_argument("--update", action="store_true",
                    help="keep the other modules' results in --json (rerun some modules)")
    ap.add_argument("--combine", nargs="+", metavar="JSON",
                    help="merge result files into --json: later files replace a module's "
                         "results (only the mutants they ran, for an --only run)")
    ap.add_argument("--write-docs", action="store_true",
                    help="write the score table from --json into docs/testing.md")
    args = ap.parse_args(argv)

    if args.combine:
        results = combine([json.loads(Path(f).read_text()) for f in args.combine])
        args.json.write_text(json.dumps(results, indent=1))
        print(table(results))
        return 0
    if args.write_docs:
        write_docs(json.loads(args.json.read_text()))
        return 0
    plan = {m: mutants_for(m, args.cap_numba if m in NUMBA else args.cap, args.seed)
            for m in args.modules}
    if args.only is not None:
        plan = {k: [m for m in v if any(o in m.id for o in args.only)] for k, v in plan.items()}
    if args.list:
        for mod, ms in plan.items():
            for m in ms:
                print(f"{'L' if m.listed else 'A'} {m.id}")
        print(sum(map(len, plan.values())), "mutants")
        return 0

    results = {"modules": {}, "cap": args.cap, "cap_numba": args.cap_numba, "seed": args.seed,
               "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    if args.update and args.json.exists():  # rerun some modules, keep the others' figures
        results = json.loads(args.json.read_text())
        results.setdefault("reruns", []).append(
            {"modules": args.modules, "started": time.strftime("%Y-%m-%d %H:%M:%S UTC",
                                                               time.gmtime())})
    with tempfile.TemporaryDirectory(prefix="eventpipe-mutation-") as tmp:
        root = Path(tmp) / "repo"
        copy_repo(root)
        env = dict(os.environ, PYTHONPATH=str(root), NUMBA_CACHE_DIR=str(Path(tmp) / "numba"),
                   EVENTPIPE_SHARED=os.environ.get("EVENTPIPE_SHARED",
                                                   str(REPO.parent / "shared")),
                   PYTHONDONTWRITEBYTECODE="1")
        bar = tqdm(total=sum(len(v) + 1 for v in plan.values()), desc="mutants", unit="run")
        for mod, mutants in plan.items():
            rel, tests = MODULES[mod]
            target = root / rel
            original = target.read_bytes()
            st = target.stat()
            deps = [root / d for d in DEPENDENTS.get(rel, [])]
            base, dt = run_tests(root, tests, env, args.timeout)
            bar.update()
            rec = {"path": rel, "tests": tests, "baseline": base, "baseline_s": round(dt, 1),
                   "mutants": []}
            results["modules"][mod] = rec
            if base != "passed":
                tqdm.write(f"{mod}: the unmutated tests do not pass ({base}); skipped\n"
                           f"{getattr(run_tests, 'tail', '')}")
                bar.update(len(mutants))
                continue
            dep_src = {d: d.read_bytes() for d in deps}
            for m in mutants:
                try:
                    target.write_bytes(m.source)
                    # their cached kernels inline the mutated ones: Numba (0.59+) stamps a
                    # cache with a hash of the source's content, so touching the file is not
                    # enough; a comment naming the mutant makes them recompile
                    for d, src in dep_src.items():
                        d.write_bytes(src + f"\n# mutant {m.id}\n".encode())
                    outcome, dt = run_tests(root, tests, env, args.timeout)
                finally:
                    target.write_bytes(original)
                    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
                    for d, src in dep_src.items():
                        d.write_bytes(src)
                killed = outcome != "passed"
                rec["mutants"].append({"id": m.id, "listed": m.listed, "outcome": outcome,
                                       "killed": killed, "seconds": round(dt, 1)})
                if not killed:
                    tqdm.write(f"SURVIVED {m.id}")
                bar.update()
            n = len(rec["mutants"])
            k = sum(r["killed"] for r in rec["mutants"])
            tqdm.write(f"{mod}: {k}/{n} killed")
            args.json.write_text(json.dumps(results, indent=1))
        bar.close()
    if args.update and results.get("reruns"):
        results["reruns"][-1]["finished"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    else:
        results["finished"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    args.json.write_text(json.dumps(results, indent=1))
    print(table(results))
    return 0


def combine(runs: list[dict]) -> dict:
    out = json.loads(json.dumps(runs[0]))
    out.setdefault("reruns", [])
    for r in runs[1:]:
        for mod, rec in r["modules"].items():
            base = out["modules"].get(mod)
            ids = {m["id"] for m in rec["mutants"]}
            if base is not None and ids and ids < {m["id"] for m in base["mutants"]}:
                new = {m["id"]: m for m in rec["mutants"]}
                base["mutants"] = [new.get(m["id"], m) for m in base["mutants"]]
                what = f"{mod} ({', '.join(sorted(ids))})"
            else:
                out["modules"][mod] = rec
                what = mod
            out["reruns"].append({"modules": [what], "started": r.get("started", "?"),
                                  "finished": r.get("finished", "?")})
    return out


def table(results: dict) -> str:
    rows = ["| module | listed killed | generated killed | all killed | equivalent | "
            "score (killed / non-equivalent) |", "|---|---|---|---|---|---|"]
    for mod, rec in results["modules"].items():
        ms = rec["mutants"]
        if not ms:
            rows.append(f"| `{rec['path']}` | - | - | baseline {rec['baseline']} | - | - |")
            continue
        lk = [r for r in ms if r["listed"]]
        ak = [r for r in ms if not r["listed"]]
        k = sum(r["killed"] for r in ms)
        eq = sum(1 for r in ms if not r["killed"]
                 and NOTES.get(r["id"], "").startswith("equivalent"))
        score = f"{100 * k / (len(ms) - eq):.0f}%" if len(ms) > eq else "-"
        rows.append(f"| `{rec['path']}` | {sum(r['killed'] for r in lk)}/{len(lk)} | "
                    f"{sum(r['killed'] for r in ak)}/{len(ak)} | {k}/{len(ms)} | {eq} | "
                    f"{score} |")
    return "\n".join(rows)


def survivors(results: dict) -> str:
    lines = []
    for mod, rec in results["modules"].items():
        for r in rec["mutants"]:
            if not r["killed"]:
                why = NOTES.get(r["id"], "not yet judged")
                lines.append(f"- `{r['id']}`: {why}")
    return "\n".join(lines) or "- none"


BEGIN, END = "<!-- mutation:begin -->", "<!-- mutation:end -->"


def write_docs(results: dict) -> None:
    doc = REPO / "docs" / "testing.md"
    text = doc.read_text()
    block = (f"{BEGIN}\nRun of {results.get('started', '?')} to {results.get('finished', '?')} "
             f"(at most {results['cap']} generated mutants per module, "
             f"{results.get('cap_numba', '?')} per Numba module, seed {results['seed']}):\n\n"
             + "".join(f"Rerun of {', '.join(r['modules'])} from {r['started']} to "
                       f"{r.get('finished', '?')} (tests added after the first run).\n"
                       for r in results.get("reruns", []))
             + f"\n{table(results)}\n\n"
             f"Surviving mutants:\n\n{survivors(results)}\n{END}")
    if BEGIN in text:
        text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, text,
                      flags=re.S)
    else:
        text += "\n" + block + "\n"
    doc.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
