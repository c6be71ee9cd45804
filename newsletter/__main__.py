"""`python -m newsletter` runs the command-line interface."""

import sys

from newsletter.cli import main

sys.exit(main())
