"""``eventpipe label REC``: play a recording in a window and mark labelled segments with
keys; ``s`` writes ``REC.labels.csv`` (see docs/own_actions.md)."""

from __future__ import annotations

from eventpipe.cli.common import check_flag, check_output
from eventpipe.errors import ExitStatus, UsageError


def add_parser(subparsers):
    sp = subparsers.add_parser("label", help="mark the actions of a recording in a window "
                                             "(writes REC.labels.csv for train --data)")
    sp.add_argument("recording", help="the recording (.h5 from eventpipe record, or any "
                                      "format eventpipe reads)")
    sp.add_argument("--classes", default=None, metavar="A,B,C",
                    help="the class names, selected with keys 1-9, 0 (default: the labels "
                         "already in the labels file)")
    sp.add_argument("--labels", default=None, metavar="FILE",
                    help="labels file to read and write (default REC.labels.csv; .json "
                         "writes JSON)")
    sp.add_argument("--window-ms", type=float, default=50.0,
                    help="the picture shows this many ms of events before the cursor; also "
                         "the step of the , and . keys (default 50)")
    sp.add_argument("--speed", type=float, default=1.0, help="playback speed (default 1)")
    sp.add_argument("--scale", type=int, default=None, help="pixels per sensor pixel")
    sp.add_argument("--echo-keys", action="store_true",
                    help="write one line to stderr for each key the window has handled "
                         "(for scripts that drive the window)")
    return sp


def parse_classes(text):
    if text is None:
        return []
    names = [c.strip() for c in text.split(",")]
    if not all(names):
        raise UsageError(f"label: --classes {text!r}: an empty class name")
    if len(set(names)) != len(names):
        raise UsageError(f"label: --classes {text!r}: a class is named twice")
    if len(names) > 10:
        raise UsageError(f"label: --classes: {len(names)} classes; keys 1-9 and 0 select at "
                         "most 10")
    return names


def run(args, env) -> int:
    from pathlib import Path

    from eventpipe.labelling.files import (SUFFIXES, LabelFileError, find_labels_file,
                                           labels_path_for, read_labels)

    classes = parse_classes(args.classes)
    check_flag("--window-ms", args.window_ms, gt=0)
    check_flag("--speed", args.speed, gt=0)
    check_flag("--scale", args.scale, ge=1)
    if not Path(args.recording).is_file():
        raise FileNotFoundError(2, "no such recording", args.recording)
    labels = Path(args.labels) if args.labels else labels_path_for(args.recording)
    check_output("--labels", str(labels), suffixes=(".csv", ".json"))
    other = find_labels_file(args.recording)  # the file train --data and eval will read
    if other is not None and labels.resolve() != other.resolve() and \
            labels.name.endswith(SUFFIXES) and labels.parent.resolve() == other.parent.resolve():
        raise LabelFileError(other, "", f"already labels {args.recording}: a second labels file "
                             f"({labels.name}) would be refused by train --data; pass --labels "
                             f"{other} (or remove it)")
    if labels.is_file():  # labels already there join the classes (a bad file fails here)
        classes += [s.label for s in read_labels(labels) if s.label not in classes]
        classes = list(dict.fromkeys(classes))
    if not classes:
        raise UsageError("label: no classes: give --classes a,b,c (or a labels file that has "
                         "labels)")
    if len(classes) > 10:
        raise UsageError(f"label: {len(classes)} classes with the labels file's; keys 1-9 "
                         "and 0 select at most 10")
    from eventpipe.labelling.window import run_label_window

    res = run_label_window(args.recording, classes, labels=str(labels),
                           window_us=int(args.window_ms * 1000), speed=args.speed,
                           scale=args.scale, err=env.stderr, echo_keys=args.echo_keys)
    n = len(res["segments"])
    env.stdout.write(f"{n} segment{'s' * (n != 1)}"
                     + (f", saved to {res['labels']}" if res["saved"] else ", not saved")
                     + "\n")
    return ExitStatus.OK
