"""DDP on CPU: two gloo processes train a few steps and end with identical parameters."""

import os
import socket

import torch
import torch.multiprocessing as mp

from .conftest import tiny_overrides


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, tmp, overrides):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    import torch.distributed as dist

    from eventpipe.training.config import load_train_config
    from eventpipe.training.trainer import train

    cfg = load_train_config(None, overrides)
    s = train(cfg, log=lambda m: None)
    torch.save({k: v.detach().clone() for k, v in s["model"].state_dict().items()},
               os.path.join(tmp, f"rank{rank}.pt"))
    torch.save({"step": s["step"]}, os.path.join(tmp, f"step{rank}.pt"))
    dist.destroy_process_group()


def test_ddp_two_cpu_processes_identical(tmp_path):
    ov = tiny_overrides(tmp_path, **{"optim.batch_size": 3, "optim.epochs": 1, "optim.lr": 5e-3})
    # build the synthetic cache once here, so the two workers only read it
    from eventpipe.training.config import load_train_config
    from eventpipe.training.datasets import build_dataset

    cfg = load_train_config(None, ov)
    build_dataset(cfg.data, "train")
    build_dataset(cfg.data, "test", train=False)
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path), ov), nprocs=2, join=True)
    a = torch.load(tmp_path / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # 12 clips, 2 ranks x batch 3 -> 2 steps each
    assert torch.load(tmp_path / "step0.pt")["step"] == 2 == torch.load(tmp_path / "step1.pt")["step"]
    assert (tmp_path / "run" / "final.pt").is_file()
