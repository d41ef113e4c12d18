"""``python -m eventpipe.training --config configs/train_synthetic.toml [--set key=value ...]``:
the same as ``eventpipe train ...`` (through the one command-line door)."""

import sys

from eventpipe.training.cli import train_main

if __name__ == "__main__":
    sys.exit(train_main(sys.argv[1:]))
