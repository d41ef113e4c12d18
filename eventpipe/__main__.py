import sys

from eventpipe.cli import main

sys.exit(main())
