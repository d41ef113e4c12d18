"""``eventpipe chip compile|report``: compile a checkpoint for the chip backend, report a program.

    eventpipe chip compile [CKPT] -o prog.npz [--profile NAME] [--calibration N] [--seed S]
    eventpipe chip report prog.npz [--json] [--plot PNG] [--clips N]

``compile`` calibrates on ``N`` synthetic training clips (integer counts at the model's input, made
as training makes them; ``--calibration 0``: scales from the weights alone).  ``report`` prints the
per-layer mapping (neurons, synapses, bytes, core, violations) and, over ``N`` synthetic test clips,
the ops and energy per step (``--clips 0``: the static part only).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

EXIT_OK = 0


def add_parser(subparsers):
    p = subparsers.add_parser("chip", help="the integer chip backend: compile a checkpoint, report a program")
    sub = p.add_subparsers(dest="chip_command", required=True)
    c = sub.add_parser("compile", help="compile a checkpoint into an integer chip program (.npz)")
    c.add_argument("checkpoint", nargs="?", default="default", help="checkpoint (default: the shipped model)")
    c.add_argument("-o", "--output", required=True, help="program file to write (.npz)")
    c.add_argument("--profile", default="generic", help="hardware profile: a name in configs/chip or a .toml")
    c.add_argument("--calibration", type=int, default=4, metavar="N",
                   help="synthetic clips to calibrate on (0: weights alone; default 4)")
    c.add_argument("--seed", type=int, default=0, help="seed of the calibration clips")
    r = sub.add_parser("report", help="per-layer mapping and per-step ops/energy of a program")
    r.add_argument("program", help="program file (.npz) from `eventpipe chip compile`")
    r.add_argument("--json", action="store_true", help="print JSON")
    r.add_argument("--plot", default=None, metavar="PNG", help="write a per-layer plot of ops and energy")
    r.add_argument("--clips", type=int, default=2, metavar="N",
                   help="synthetic test clips to count ops over (0: static report only; default 2)")
    return p


def _sensor_for(program) -> tuple[int, int]:
    """The sensor size the synthetic clips need for the program's count scale (1/f^2)."""
    W, H = program.meta["input_size"]
    f = max(1, round(math.sqrt(1.0 / float(program.meta["encoding"]["scale"]))))
    return W * f, H * f


def _clips(program, n: int, seed: int, split: str):
    from eventpipe.runtime.chip_counts import count_clips

    T = int(program.meta.get("T") or 8)
    clips = count_clips(n, seed=seed, split=split, sensor_size=_sensor_for(program),
                        input_size=tuple(program.meta["input_size"]), T=T,
                        clip=int(program.meta["encoding"]["clip"]))
    return clips.transpose(1, 0, 2, 3, 4)  # [T, N, C, H, W]


def _compile(args, out) -> int:
    import snn.chip
    from eventpipe.errors import reading_checkpoint
    from eventpipe.runtime.model_loader import resolve_checkpoint

    if args.calibration < 0:
        raise ValueError(f"--calibration must be >= 0, got {args.calibration}")
    ckpt = resolve_checkpoint(args.checkpoint)
    if not Path(ckpt).is_file():
        raise FileNotFoundError(f"no such checkpoint: {ckpt}")
    with reading_checkpoint(ckpt):
        prog = snn.chip.compile(ckpt, profile=args.profile)
        if args.calibration:
            prog = snn.chip.compile(ckpt, profile=args.profile,
                                    calibration=[_clips(prog, args.calibration, args.seed, "train")])
    prog.save(args.output)
    rep = prog.report()
    out.write(f"wrote {args.output}: {len(prog.ops)} ops, {sum(r['params'] for r in rep.layers)} parameters "
              f"({prog.profile.numerics.weight_bits}-bit), profile {prog.profile.name}, "
              f"{'calibrated on %d clips' % args.calibration if args.calibration else 'not calibrated'}; "
              f"{len(rep.violations)} violation(s)\n")
    return EXIT_OK


def _report(args, out) -> int:
    import snn.chip

    if args.clips < 0:
        raise ValueError(f"--clips must be >= 0, got {args.clips}")
    prog = snn.chip.Program.load(args.program)
    frames = _clips(prog, args.clips, 0, "test") if args.clips else None
    rep = prog.report(frames)
    if args.json:
        out.write(json.dumps(rep.to_dict(), indent=1) + "\n")
    else:
        out.write(rep.to_text() + "\n")
    if args.plot:
        if frames is None:
            raise ValueError("--plot needs per-step counts: give --clips N > 0")
        rep.plot(args.plot)
    return EXIT_OK


def run(args, env) -> int:
    """Run ``eventpipe chip ...``; chip errors (bad program file, profile, model) become the door's
    typed errors (one line, the bad-input status)."""
    from eventpipe.errors import ConfigError, DataError
    from snn.chip import ChipError, ProfileError

    out = env.stdout
    try:
        return _compile(args, out) if args.chip_command == "compile" else _report(args, out)
    except ProfileError as e:
        raise ConfigError(str(e)) from None
    except ChipError as e:
        raise DataError(str(e)) from None
