"""``python -m latentd``."""

import sys

from latentd.cli import main

sys.exit(main())
