"""What every use case shares: the project database.

The database engine is made once per URL and process, so its connection pool is shared and the
tables are created and checked once, whichever use case (or the scheduler's job store) asks.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from newsletter.db.schema import open_database

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from newsletter.config import Config


def database(config: Config) -> Engine:
    """The project database (subscribers, issues, the send ledger, reviews, scheduler jobs)."""
    return _engine(config.database_url)


@functools.cache
def _engine(url: str) -> Engine:
    return open_database(url)
