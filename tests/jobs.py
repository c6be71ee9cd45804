"""A stored-job entry point for scheduler tests: the real job, building from the session's
loaded prices and drawn charts (set by the `fast_job` fixture) instead of from scratch."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, date, datetime

from newsletter.app.build import Prepared
from newsletter.config import Config
from newsletter.schedule import run_job

PREPARE: Callable[[Config, date], Prepared] | None = None


def scheduled_job(config_path: str, fire: str | None = None) -> str:
    return run_job(
        config_path, fire, environ=os.environ, clock=lambda: datetime.now(UTC), prepare=PREPARE
    )
