"""``python -m eventpipe.training --config configs/train_synthetic.toml [key=value ...]``."""

import sys

from eventpipe.training.cli import train_main

if __name__ == "__main__":
    sys.exit(train_main(sys.argv[1:]))
