"""``eventpipe chip compile|report|finetune|snap``: compile a checkpoint for the chip backend, report a
program, fine-tune a checkpoint with the chip's quantisation in the loop, snap a checkpoint's
weights to the chip's integers.

    eventpipe chip compile [CKPT] -o prog.npz [--profile NAME] [--calibration N] [--seed S]
    eventpipe chip report prog.npz [--json] [--plot PNG] [--clips N]
    eventpipe chip finetune [CKPT] -o tuned.pt [--steps N] [--clips N] [--streams N] [--runs N] [--run-windows N]
        [--lr LR] [--distill W] [--hard W] [--margin W] [--margin-width F] [--profile NAME] [--seed S]
    eventpipe chip snap [CKPT] -o snapped.pt [--profile NAME] [--calibration N] [--seed S]

``compile`` calibrates on ``N`` synthetic training clips (integer counts at the model's input, made
as training makes them; ``--calibration 0``: scales from the weights alone).  ``report`` prints the
per-layer mapping (neurons, synapses, bytes, core, violations) and, over ``N`` synthetic test clips,
the ops and energy per step (``--clips 0``: the static part only).  ``finetune``: a short
quantisation-aware run (``snn.backends.chip.finetune``) on synthetic training clips and stream runs;
measure the result with ``python benchmarks/chip_agreement.py --checkpoint tuned.pt``.  ``snap``
(``snn.backends.chip.snap``): the checkpoint with every weight and bias the chip can hold exactly
set to the value its integers stand for, compiled as ``eventpipe run --backend chip`` compiles it
(``N`` = 2 synthetic training clips, the checkpoint's training sensor size).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from eventpipe.errors import UsageError

EXIT_OK = 0
# the best measured run on the halves model (docs/chip.md, "Fine-tunes of the halves model")
STEPS, CLIPS, STREAMS, LR, CONSISTENCY, RUNS, RUN_WINDOWS = 120, 192, 4, 1e-4, 3.0, 4, 16
STREAM_SECONDS = 20.0   # each synthetic training stream (100 ms windows every 50 ms: 398 windows)
HARD, MARGIN, MARGIN_WIDTH = 0.5, 0.0, 0.02


def add_parser(subparsers):
    p = subparsers.add_parser("chip", help="the integer chip backend: compile, report, fine-tune or snap "
                                           "a checkpoint for it")
    names = ("compile", "report", "finetune", "snap")  # the usage and a missing one's error name them
    sub = p.add_subparsers(dest="chip_command", required=True, metavar="{" + ",".join(names) + "}")
    c = sub.add_parser("compile", help="compile a checkpoint into an integer chip program (.npz)")
    c.add_argument("checkpoint", nargs="?", default="default", help="checkpoint (default: the shipped model)")
    c.add_argument("-o", "--output", required=True, help="program file to write (.npz)")
    c.add_argument("--profile", default="auto", help="hardware profile: a name in configs/chip or a .toml "
                                                       "(default auto: the one the checkpoint was snapped for, else generic)")
    c.add_argument("--calibration", type=int, default=4, metavar="N",
                   help="synthetic clips to calibrate on (0: weights alone; default 4)")
    c.add_argument("--seed", type=int, default=0, help="seed of the calibration clips")
    r = sub.add_parser("report", help="per-layer mapping and per-step ops/energy of a program")
    r.add_argument("program", help="program file (.npz) from `eventpipe chip compile`")
    r.add_argument("--json", action="store_true", help="print JSON")
    r.add_argument("--plot", default=None, metavar="PNG", help="write a per-layer plot of ops and energy")
    r.add_argument("--clips", type=int, default=2, metavar="N",
                   help="synthetic test clips to count ops over (0: static report only; default 2)")
    f = sub.add_parser("finetune", help="fine-tune a checkpoint so its chip program agrees with it (QAT)")
    f.add_argument("checkpoint", nargs="?", default="default", help="checkpoint (default: the shipped model)")
    f.add_argument("-o", "--output", required=True, help="checkpoint to write (.pt)")
    f.add_argument("--profile", default="generic", help="hardware profile: a name in configs/chip or a .toml")
    f.add_argument("--steps", type=int, default=STEPS, help=f"optimiser steps (default {STEPS})")
    f.add_argument("--clips", type=int, default=CLIPS, help=f"synthetic training clips (default {CLIPS})")
    f.add_argument("--streams", type=int, default=STREAMS,
                   help=f"synthetic training streams of 20 s (default {STREAMS})")
    f.add_argument("--runs", type=int, default=RUNS,
                   help=f"stream runs per step (default {RUNS})")
    f.add_argument("--run-windows", type=int, default=RUN_WINDOWS,
                   help=f"windows per stream run, from rest (default {RUN_WINDOWS}: 0.8 s; at most a stream's 398)")
    f.add_argument("--lr", type=float, default=LR, help=f"learning rate (default {LR:g}, cosine to 0)")
    f.add_argument("--consistency", type=float, default=CONSISTENCY,
                   help=f"weight of the float/chip consistency term (default {CONSISTENCY:g})")
    f.add_argument("--distill", type=float, default=1.0,
                   help="weight of the distillation from the frozen input model (both forms; default 1)")
    f.add_argument("--hard", type=float, default=HARD,
                   help=f"weight of the cross-entropy with the true labels of the clips and stream windows "
                        f"(default {HARD:g}; 0: the teacher alone anchors accuracy)")
    f.add_argument("--margin", type=float, default=MARGIN,
                   help=f"weight of the margin loss: chip membranes within --margin-width of V_th (default {MARGIN:g})")
    f.add_argument("--margin-width", type=float, default=MARGIN_WIDTH,
                   help=f"the margin band, in units of V_th (default {MARGIN_WIDTH:g})")
    f.add_argument("--seed", type=int, default=0, help="seed of the data and the sampling (>= 0)")
    n = sub.add_parser("snap", help="write the checkpoint with its weights snapped to the chip's integers")
    n.add_argument("checkpoint", nargs="?", default="default", help="checkpoint (default: the shipped model)")
    n.add_argument("-o", "--output", required=True, help="checkpoint to write (.pt)")
    n.add_argument("--profile", default="auto", help="hardware profile: a name in configs/chip or a .toml "
                                                       "(default auto: the one the checkpoint was snapped for, else generic)")
    n.add_argument("--calibration", type=int, default=2, metavar="N",
                   help="synthetic training clips to calibrate on, as `eventpipe run --backend chip` does "
                        "(0: weights alone; default 2)")
    n.add_argument("--seed", type=int, default=0, help="seed of the calibration clips")
    n.add_argument("--input-frac-bits", type=int, default=6, metavar="N",
                   help="profile on the pow2 grid (exact): a log1p input becomes qlog1p:N, log1p rounded to N "
                        "fractional bits, the table the chip reads (0-16; default 6)")
    return p


def _source_and_output(args) -> str:
    """The checkpoint to read (it must exist), after checking the output as every command's
    output file is checked (its folder exists, it is not a folder) before the work starts."""
    from eventpipe.cli.common import check_output
    from eventpipe.runtime.model_loader import check_checkpoint_file, resolve_checkpoint

    ckpt = resolve_checkpoint(args.checkpoint)
    if not Path(ckpt).exists():
        raise FileNotFoundError(f"no such checkpoint: {ckpt}")
    check_checkpoint_file(ckpt)
    check_output("-o", args.output)
    return ckpt


def _training_sizes(meta):
    """``((W, H), sensor)``: the model's input size and the synthetic training sensor it was made for."""
    W, H = (meta.get("recipe") or {}).get("size") or meta["input_size"]
    return (W, H), tuple((meta.get("extra") or {}).get("sensor_size") or (2 * W, 2 * H))


def _snap(args, out) -> int:
    import snn
    from eventpipe.errors import reading_checkpoint
    from eventpipe.runtime.chip import resolve_profile
    from eventpipe.runtime.chip_counts import ClipBatches, checkpoint_channels
    from snn.backends.chip.snap import save_snapped, snap

    if args.calibration < 0:
        raise UsageError(f"--calibration must be >= 0, got {args.calibration}")
    if not 0 <= args.input_frac_bits <= 16:
        raise UsageError(f"--input-frac-bits must be in [0, 16], got {args.input_frac_bits}")
    ckpt = _source_and_output(args)
    t0 = time.perf_counter()
    with reading_checkpoint(ckpt):
        _, meta = snn.load_checkpoint(ckpt)
        args.profile = resolve_profile(args.profile, meta.get("extra"))
        (W, H), sensor = _training_sizes(meta)
        cal = None
        if args.calibration:
            clip = int((meta.get("recipe") or {}).get("clip_count") or 255)
            cal = ClipBatches(args.calibration, seed=args.seed, split="train", sensor_size=sensor, input_size=(W, H),
                              T=int(meta.get("T") or 8), clip=min(clip, 65535), channels=checkpoint_channels(meta))
        res = snap(ckpt, profile=args.profile, calibration=cal, sensor_size=sensor, input_frac_bits=args.input_frac_bits)
    res.record["calibration"] = {"clips": args.calibration, "seed": args.seed, "sensor_size": list(sensor)}
    save_snapped(args.output, res)
    same = "the same program" if not res.recompile_differences else \
        f"NOT the same program ({'; '.join(res.recompile_differences[:3])})"
    out.write(f"wrote {args.output}: {len(res.record['snapped_ops'])} convs snapped to profile {res.record['profile']} "
              f"(largest weight change {100 * res.record['max_relative_weight_change']:.2f}% of a layer's largest "
              f"weight), {len(res.record['unsnapped'])} left as they were (RepConvs); recompiled: {same}; "
              f"{time.perf_counter() - t0:.1f} s; measure: python benchmarks/chip_agreement.py --checkpoint "
              f"{args.output}\n")
    return EXIT_OK


def _finetune(args, out) -> int:
    import snn
    from eventpipe.errors import reading_checkpoint
    from snn.backends.chip.finetune import finetune, save_finetuned, synthetic_data
    from eventpipe.runtime.chip_counts import checkpoint_channels

    for k in ("steps", "clips", "runs"):
        if getattr(args, k) < 1:
            raise UsageError(f"--{k} must be >= 1, got {getattr(args, k)}")
    if args.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {args.seed}")
    if args.run_windows < 2:
        raise UsageError(f"--run-windows must be >= 2, got {args.run_windows}")
    if (args.streams < 0 or not args.lr > 0 or not args.consistency >= 0 or not args.distill >= 0
            or not args.hard >= 0 or not math.isfinite(args.lr + args.consistency + args.distill + args.hard)):
        raise UsageError("--streams must be >= 0, --lr > 0 and --consistency, --distill, --hard >= 0 "
                         "(finite numbers)")
    if not (args.margin >= 0 and 0 < args.margin_width < math.inf and math.isfinite(args.margin)):
        raise UsageError(f"--margin must be >= 0 and --margin-width > 0, got {args.margin:g} and {args.margin_width:g}")
    ckpt = _source_and_output(args)
    with reading_checkpoint(ckpt):
        _, meta = snn.load_checkpoint(ckpt)
    (W, H), sensor = _training_sizes(meta)
    data = synthetic_data(args.clips, args.streams, STREAM_SECONDS, args.run_windows, seed=args.seed, input_size=(W, H),
                          sensor_size=sensor, T=int(meta.get("T") or 8), progress=True,
                          channels=checkpoint_channels(meta))
    if args.streams and data.runs is None:
        raise UsageError(f"--run-windows {args.run_windows} is longer than a {STREAM_SECONDS:g} s training stream "
                         f"(100 ms windows every 50 ms: 398)")
    settings = dict(steps=args.steps, lr=args.lr, batch=6, run_batch=args.runs if args.streams else 0,
                    consistency=args.consistency, recompile_every=10, seed=args.seed, hard=args.hard,
                    distill=args.distill, margin=args.margin, margin_width=args.margin_width)
    t0 = time.perf_counter()
    model, hist = finetune(ckpt, data, profile=args.profile, compile_kw=dict(sensor_size=sensor),
                           log=lambda s: out.write(s + "\n"), progress=True, **settings)
    settings.update(profile=args.profile, clips=args.clips, streams=args.streams, run_windows=args.run_windows)
    save_finetuned(args.output, model, dict(meta, source=str(ckpt)), hist, settings,
                   seconds=time.perf_counter() - t0)
    out.write(f"wrote {args.output}: twin clip agreement {hist['agree'][0][1]:.4f} -> {hist['agree'][-1][1]:.4f} "
              f"on the training probe; measure: python benchmarks/chip_agreement.py --checkpoint {args.output}\n")
    return EXIT_OK


def _sensor_for(program) -> tuple[int, int]:
    """The sensor size the synthetic clips need for the program's count scale (1/f^2)."""
    W, H = program.meta["input_size"]
    f = max(1, round(math.sqrt(1.0 / float(program.meta["encoding"]["scale"]))))
    return W * f, H * f


def _clips(program, n: int, seed: int, split: str):
    """``n`` synthetic clips for ``program``, made a batch at a time as they are read ([T, b, C, H, W]
    each): memory does not grow with ``n``."""
    from eventpipe.runtime.chip_counts import ClipBatches

    return ClipBatches(n, seed=seed, split=split, sensor_size=_sensor_for(program),
                       input_size=tuple(program.meta["input_size"]), T=int(program.meta.get("T") or 8),
                       clip=int(program.meta["encoding"]["clip"]), channels=program.meta.get("channels", "polarity"))


def _compile(args, out) -> int:
    import snn
    import snn.chip
    from eventpipe.errors import reading_checkpoint
    from eventpipe.runtime.chip import resolve_profile

    if args.calibration < 0:
        raise UsageError(f"--calibration must be >= 0, got {args.calibration}")
    ckpt = _source_and_output(args)
    with reading_checkpoint(ckpt):
        # the profile the checkpoint was snapped for, as the runtime takes it
        args.profile = resolve_profile(args.profile, snn.load_checkpoint(ckpt)[1].get("extra"))
        prog = snn.chip.compile(ckpt, profile=args.profile)
        channels = (snn.load_checkpoint(ckpt)[1].get("recipe") or {}).get("channels", "polarity")
        prog.meta["channels"] = channels   # the calibration clips are made as the model was trained
        if args.calibration:
            prog = snn.chip.compile(ckpt, profile=args.profile,
                                    calibration=_clips(prog, args.calibration, args.seed, "train"))
            prog.meta["channels"] = channels
    prog.save(args.output)
    rep = prog.report()
    out.write(f"wrote {args.output}: {len(prog.ops)} ops, {sum(r['params'] for r in rep.layers)} parameters "
              f"({prog.profile.numerics.weight_bits}-bit), profile {prog.profile.name}, "
              f"{'calibrated on %d clips' % args.calibration if args.calibration else 'not calibrated'}; "
              f"{len(rep.violations)} violation(s)\n")
    return EXIT_OK


def _report(args, out) -> int:
    import snn.chip

    from eventpipe.cli.common import check_output

    if args.clips < 0:
        raise UsageError(f"--clips must be >= 0, got {args.clips}")
    if args.plot:  # before the report is printed (matplotlib would write DIR.png for a folder)
        if not args.clips:
            raise UsageError("--plot needs per-step counts: give --clips N > 0")
        check_output("--plot", args.plot, suffixes=(".png", ".pdf", ".svg", ".jpg"))
    prog = snn.chip.Program.load(args.program)
    frames = _clips(prog, args.clips, 0, "test") if args.clips else None
    rep = prog.report(frames)
    if args.json:
        out.write(json.dumps(rep.to_dict(), indent=1) + "\n")
    else:
        out.write(rep.to_text() + "\n")
    if args.plot:
        rep.plot(args.plot)
    return EXIT_OK


def run(args, env) -> int:
    """Run ``eventpipe chip ...``; chip errors (bad program file, profile, model) become the door's
    typed errors (one line, the bad-input status)."""
    from eventpipe.errors import ConfigError, DataError
    from snn.chip import ChipError, ProfileError

    out = env.stdout
    try:
        cmd = {"compile": _compile, "report": _report, "finetune": _finetune, "snap": _snap}[args.chip_command]
        return cmd(args, out)
    except ProfileError as e:
        raise ConfigError(str(e)) from None
    except ChipError as e:
        raise DataError(str(e)) from None
