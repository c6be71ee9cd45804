"""`python -m tests.schedrun CONFIG MOMENT`: `newsletter schedule` with the clock set to MOMENT
(ISO, with its zone) and running on from there, so a test can kill and restart a real
scheduler process in a week the bundled prices cover."""

from __future__ import annotations

import sys
from datetime import datetime

import time_machine

from newsletter.cli import main

if __name__ == "__main__":
    config, moment = sys.argv[1:3]
    with time_machine.travel(datetime.fromisoformat(moment), tick=True):
        sys.exit(main(["schedule", "--config", config]))
