import sys

from emojinet.cli import main

sys.exit(main())
