"""``eventpipe broker``: fan event packets out to N ``eventpipe run`` workers."""

from __future__ import annotations

from eventpipe.cli.common import check_endpoint, check_flag
from eventpipe.errors import ExitStatus


def add_parser(subparsers):
    sp = subparsers.add_parser("broker", help="fan event packets out to N `eventpipe run` "
                                              "workers (per-stream affinity) and proxy their labels")
    sp.add_argument("--in", dest="in_endpoint", default="tcp://127.0.0.1:5555",
                    help="where senders connect (PULL, bound)")
    sp.add_argument("--workers", type=int, default=2)
    sp.add_argument("--fanout", default="tcp://127.0.0.1:0",
                    help="worker slots bind here (port P: slot i uses P+i; 0: ephemeral)")
    sp.add_argument("--labels-in", default="tcp://127.0.0.1:5557",
                    help="workers publish here (XSUB, bound)")
    sp.add_argument("--labels-out", default="tcp://127.0.0.1:5556",
                    help="listeners subscribe here (XPUB, bound)")
    sp.add_argument("--hwm", type=int, default=1000)
    sp.add_argument("--stats-every", type=float, default=None, metavar="S")
    sp.add_argument("--duration", type=float, default=None, metavar="S")
    return sp


def _check_fanout_ports(fanout: str, workers: int) -> None:
    """``--fanout HOST:P`` binds slot i at P + i: the last slot's port must exist."""
    from eventpipe.errors import ConfigError

    port = fanout.partition("?")[0].rpartition(":")[2]
    if port.isdigit() and int(port) and int(port) + workers - 1 > 65535:
        raise ConfigError(f"--fanout {fanout}: {workers} slots bind ports {port}.."
                          f"{int(port) + workers - 1}, past 65535 (use a lower port, or 0 for "
                          "ephemeral ones)")


def run(args, env) -> int:
    from eventpipe.transport.scaleout import run_broker

    check_flag("--workers", args.workers, ge=1, le=1024)
    check_flag("--hwm", args.hwm, ge=1, le=2**31 - 1)  # a C int in libzmq
    check_flag("--stats-every", args.stats_every, gt=0)
    check_flag("--duration", args.duration, gt=0)
    for flag, endpoint in (("--in", args.in_endpoint), ("--fanout", args.fanout),
                           ("--labels-in", args.labels_in), ("--labels-out", args.labels_out)):
        check_endpoint(flag, endpoint)
    _check_fanout_ports(args.fanout, args.workers)
    run_broker(args.in_endpoint, args.workers, args.labels_in, args.labels_out,
               fanout=args.fanout, hwm=args.hwm, stats_every_s=args.stats_every,
               duration_s=args.duration, err=env.stderr)
    return ExitStatus.OK
