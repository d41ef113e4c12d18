"""Training: datasets with augmentation and a frame cache, the training loop (DDP-ready),
checkpoints with their recipe, evaluation.  See ``docs/training.md``."""

from eventpipe.training.cli import add_eval_arguments, add_train_arguments, eval_main, run_eval, run_train, train_main
from eventpipe.training.config import TrainConfig, load_train_config

__all__ = [
    "TrainConfig",
    "add_eval_arguments",
    "add_train_arguments",
    "eval_main",
    "load_train_config",
    "run_eval",
    "run_train",
    "train_main",
]
