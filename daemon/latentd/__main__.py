"""``python -m latentd``."""

import sys

from latentd.cli import main

# Guarded: the engine process is started with "spawn", which imports the parent's main module again.
if __name__ == "__main__":
    sys.exit(main())
