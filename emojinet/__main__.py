"""``python -m emojinet``: the same command line as ``emojinet``."""

import sys

from emojinet.cli import main

sys.exit(main())
