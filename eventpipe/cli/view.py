"""``eventpipe view FILE --out OUT``: render a recording as PNG frames, a video or a GIF."""

from __future__ import annotations

from eventpipe.cli.common import add_reading_options, check_flag, check_output
from eventpipe.errors import ExitStatus


#: the ``--fps`` range (the run's ``--video`` rates, 1e6 / stride_us, lie inside it too)
MIN_FPS, MAX_FPS = 0.01, 10_000.0


def add_parser(subparsers):
    sp = subparsers.add_parser("view", help="render a recording as PNG frames, a video or a GIF")
    sp.add_argument("file")
    sp.add_argument("--out", required=True,
                    help="a folder (PNG sequence), a .mp4/.avi/.mkv video or a .gif")
    sp.add_argument("--window-us", type=int, default=33_333, help="frame window (us)")
    sp.add_argument("--fps", type=float, default=30.0)
    sp.add_argument("--max-frames", type=int, default=None, metavar="N",
                    help="write at most N frames (default 10,000); rendering stops there and "
                         "says so on stderr")
    sp.add_argument("--overwrite", action="store_true",
                    help="a PNG folder that holds frames already: delete them first (else refused)")
    add_reading_options(sp)
    return sp


def run(args, env) -> int:
    from eventpipe.kernels.streaming import MAX_SPAN_US
    from eventpipe.view import DEFAULT_MAX_FRAMES, check_out, view_recording

    check_flag("--window-us", args.window_us, ge=1, le=MAX_SPAN_US)
    # what every writer takes: OpenCV's video writers fail to open far outside it, and a GIF
    # frame lasts at most 655 s
    check_flag("--fps", args.fps, ge=MIN_FPS, le=MAX_FPS)
    check_flag("--max-frames", args.max_frames, ge=1)
    if check_out(args.out) != "png":  # a file (a PNG folder is made, with its parents)
        check_output("--out", args.out)  # its folder exists, as for every output file
    result = view_recording(args.file, args.out, window_us=args.window_us, fps=args.fps,
                            max_frames=args.max_frames or DEFAULT_MAX_FRAMES,
                            format=args.format, sensor_size=args.sensor_size,
                            overwrite=args.overwrite)
    env.stdout.write(f"wrote {result['frames']} frames to {result['out']}\n")
    if result["outside"]:
        w, h = result["sensor_size"]
        env.stderr.write(f"eventpipe: warning: {result['outside']:,} events of {args.file} lay "
                         f"outside the sensor size {w}x{h} and are not drawn: give the real "
                         "size with --sensor-size WxH\n")
    if result["stopped"]:
        cap = args.max_frames or DEFAULT_MAX_FRAMES
        what = "" if args.max_frames else ", the default"
        env.stderr.write(f"eventpipe: warning: stopped after {cap:,} frames (--max-frames "
                         f"{cap}{what}): the rest of {args.file} is not rendered; raise "
                         f"--max-frames or widen --window-us ({args.window_us} us) to see it\n")
    return ExitStatus.OK
