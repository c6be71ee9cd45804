"""What every use case shares: the project database, and the run's stage log.

The database engine is made once per URL and process, so its connection pool is shared and the
schema is checked once, whichever use case (or the scheduler's job store) asks.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from newsletter.db.migrate import SchemaVersion, schema_state, upgrade
from newsletter.db.schema import make_engine, open_database

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from newsletter.config import Config


stage_log = logging.getLogger("newsletter.schedule")
"""The scheduled run's log, where each stage writes its line (log_stage)."""

_OPENED: dict[str, Engine] = {}
_LOCK = threading.Lock()


def database(config: Config) -> Engine:
    """The project database (subscribers, issues, the send ledger, reviews, scheduler jobs)."""
    url = config.database_url
    with _LOCK:
        if url not in _OPENED:
            _OPENED[url] = open_database(url)
        return _OPENED[url]


def close_databases() -> None:
    """Close every database this process opened (their pools' connections included); the next
    use opens them again."""
    with _LOCK:
        for engine in _OPENED.values():
            engine.dispose()
        _OPENED.clear()


def upgrade_database(config: Config) -> tuple[str, str | None, str]:
    """Bring the project database's schema to this version's: (where, revision before, now)."""
    engine, where = make_engine(config.database_url)
    try:
        before, after = upgrade(engine, where)
    finally:
        engine.dispose()
    close_databases()  # an engine opened before the upgrade would refuse the database
    return where, before, after


def database_schema(config: Config) -> tuple[str, SchemaVersion]:
    """Where the project database's schema stands against this version's, without changing it."""
    engine, where = make_engine(config.database_url)
    try:
        return where, schema_state(engine, where)
    finally:
        engine.dispose()


def log_stage(stage: str, started: float, detail: str) -> None:
    """One line of the run's log: the stage, what it did, and how long it took."""
    stage_log.info("%-8s %s (%.2f s)", stage, detail, time.perf_counter() - started)
