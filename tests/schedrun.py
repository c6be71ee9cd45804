"""`python -m tests.schedrun CONFIG MOMENT BUILT`: a real scheduler process (the stored job,
APScheduler, SIGTERM to stop) with the clock set to MOMENT (ISO, with its zone) and running on
from there, whose runs send the pickled built issue BUILT instead of building it again, so a
test can kill and restart it in a week the bundled prices cover."""

from __future__ import annotations

import logging
import pickle
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import time_machine

from newsletter.app.build import Prepared
from newsletter.config import load_config
from newsletter.schedule import run_scheduler
from tests import jobs


def main(config_path: str, moment: str, built_path: str) -> int:
    built = pickle.loads(Path(built_path).read_bytes())
    jobs.PREPARE = lambda config, as_of: Prepared(built, None)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    logging.getLogger("newsletter").setLevel(logging.INFO)
    with time_machine.travel(datetime.fromisoformat(moment), tick=True):
        run_scheduler(
            load_config(Path(config_path)), jobs.scheduled_job, stop, lambda: datetime.now(UTC)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
