"""What every use case shares: the project database, the price provider and the tickers read.

The database engine is made once per URL and process, so its connection pool is shared and the
tables are created and checked once, whichever use case (or the scheduler's job store) asks.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from newsletter.db.schema import open_database
from newsletter.market.snapshot import SnapshotSource
from newsletter.market.yahoo import YahooSource
from newsletter.stats import member_tickers, spec_tickers

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from newsletter.config import Config
    from newsletter.market.source import MarketDataSource


def database(config: Config) -> Engine:
    """The project database (subscribers, issues, the send ledger, reviews, scheduler jobs)."""
    return _engine(config.database_url)


@functools.cache
def _engine(url: str) -> Engine:
    return open_database(url)


def market_source(config: Config) -> MarketDataSource:
    """The configured price provider: the bundled snapshot, or Yahoo Finance (live)."""
    if config.market.provider == "yfinance":
        return YahooSource(timeout_s=config.market.timeout_s, attempts=config.market.attempts)
    return SnapshotSource(config.market.snapshot_dir)


def price_tickers(config: Config) -> list[str]:
    """Every ticker the digest reads, as the price store keeps them."""
    return spec_tickers(config.stats)


def megacap_tickers(config: Config) -> list[str]:
    """The tickers of the configured mega caps (each share class)."""
    return [ticker for member in config.stats.megacaps for ticker in member_tickers(member)]
