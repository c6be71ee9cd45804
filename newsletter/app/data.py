"""Market data use cases: refresh the local stores, report what they hold, load a market.

`load_market` resolves a requested date to the as-of session the prices serve and aligns the
prices to NYSE sessions (a gap is NaN, never a longer window); a driver that rebuilds the same
issue (the preview) loads it once and hands it to `build_issue`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

import pandas as pd

from newsletter.app.wiring import database
from newsletter.db.estimates import save_estimates
from newsletter.errors import AsOfError, FetchError
from newsletter.market.calendar import TradingCalendar
from newsletter.market.fundamentals import YahooFundamentals
from newsletter.market.pricedb import (
    PriceStore,
    RefreshReport,
    SeriesInfo,
    gaps,
    open_price_store,
    refresh,
)
from newsletter.market.snapshot import SnapshotSource
from newsletter.market.yahoo import YahooSource
from newsletter.models import EstimateSnapshot, Prices
from newsletter.stats import member_tickers, required_tickers, spec_tickers
from newsletter.stats.strength import YEAR_SESSIONS

if TYPE_CHECKING:
    from collections.abc import Callable

    from newsletter.config import Config
    from newsletter.market.source import MarketDataSource

logger = logging.getLogger(__name__)

REQUEST_SLACK_DAYS = 14
"""How far past the data's last session --as-of may ask (it then steps back to that session)."""


def market_source(config: Config) -> MarketDataSource:
    """The configured price provider: the bundled snapshot, or Yahoo Finance (live)."""
    if config.market.is_live:
        return YahooSource(timeout_s=config.market.timeout_s, attempts=config.market.attempts)
    return SnapshotSource(config.market.snapshot_dir)


def price_tickers(config: Config) -> list[str]:
    """Every ticker the digest reads, as the price store keeps them."""
    return spec_tickers(config.stats)


def megacap_tickers(config: Config) -> list[str]:
    """The tickers of the configured mega caps (each share class)."""
    return [ticker for member in config.stats.megacaps for ticker in member_tickers(member)]


@dataclass(frozen=True, slots=True)
class DataRefresh:
    """What one refresh stored: price rows per ticker, estimate rows, and tickers that failed."""

    prices: RefreshReport
    estimate_rows: int = 0
    estimate_failures: list[str] = field(default_factory=list)


def refresh_prices(
    config: Config,
    clock: Callable[[], datetime],
    on_progress: Callable[[str], None] = lambda ticker: None,
) -> RefreshReport:
    """Bring the local price store up to date from the configured provider.

    Tickers the store has never held are seeded from the bundled snapshot first, so a machine
    without network still has history; the provider then adds what is new, and rewrites a
    ticker whose adjusted history it finds re-based.
    """
    tickers = price_tickers(config)
    store = open_price_store(config.price_store_path, clock())
    try:
        held = store.info()
        snapshot = SnapshotSource(config.market.snapshot_dir)
        for ticker in tickers:
            if ticker not in held:
                seed = snapshot.fetch([ticker])
                store.write(
                    ticker,
                    seed.adjusted[ticker],
                    seed.raw[ticker],
                    snapshot.name,
                    clock(),
                    replace=True,
                )
        return refresh(store, market_source(config), tickers, clock(), on_progress)
    finally:
        store.close()


def refresh_fundamentals(
    config: Config, clock: Callable[[], datetime], source: YahooFundamentals | None = None
) -> tuple[int, list[str]]:
    """Store today's forward revenue estimates and next earnings dates of the mega caps.

    Returns (rows stored, one message per ticker that failed); a failure leaves that ticker's
    history as it was and the email says the figure is missing rather than guessing.
    """
    source = source or YahooFundamentals()
    today = clock().date()
    snapshots, failures = [], []
    for ticker in megacap_tickers(config):
        try:
            found = source.fetch(ticker)
        except FetchError as err:
            failures.append(str(err))
            continue
        snapshots += [
            EstimateSnapshot(
                ticker,
                today,
                period,
                value,
                found.analysts.get(period, 0),
                found.next_earnings,
                found.shares,
            )
            for period, value in found.revenue.items()
        ]
    return save_estimates(database(config), snapshots), failures


def refresh_market(
    config: Config,
    clock: Callable[[], datetime],
    on_progress: Callable[[str], None] = lambda ticker: None,
) -> DataRefresh:
    """Refresh the live provider's prices and store today's estimate snapshot."""
    prices = refresh_prices(config, clock, on_progress)
    rows, failures = refresh_fundamentals(config, clock)
    return DataRefresh(prices, rows, failures)


def price_status(config: Config, today: date) -> list[tuple[SeriesInfo, int, list[date]]]:
    """For each ticker the build reads: what its source holds (the bundled snapshot, or with
    the live provider the local store), its age in days, and its gaps against the calendar."""
    if not config.market.is_live:
        source = SnapshotSource(config.market.snapshot_dir)
        prices = source.fetch(price_tickers(config))
        info = {
            ticker: _series_info(ticker, prices.adjusted[ticker], "bundled snapshot")
            for ticker in prices.tickers
        }
    else:
        store = PriceStore(config.price_store_path)  # a look: a corrupt file is reported, not moved
        try:
            info = store.info()
            if not info:
                return []
            prices = store.read(list(info), "store")
        finally:
            store.close()
    first = min(item.first for item in info.values())
    calendar = TradingCalendar(first, today + timedelta(days=7))
    return [
        (item, (today - item.last).days, gaps(prices.adjusted[ticker], calendar.sessions))
        for ticker, item in info.items()
    ]


def _series_info(ticker: str, series: pd.Series, source: str) -> SeriesInfo:
    present = series.dropna()
    return SeriesInfo(
        ticker,
        pd.Timestamp(present.index[0]).date(),
        pd.Timestamp(present.index[-1]).date(),
        len(present),
        source,
        "",
    )


@dataclass(frozen=True, slots=True)
class Market:
    """Prices aligned to NYSE sessions, the calendar, and the as-of session they serve.

    `at(day)` serves another issue from the same loaded prices: a driver or a test that builds
    several weeks loads the prices once.
    """

    prices: Prices
    calendar: TradingCalendar
    as_of: date
    first: date
    """The first session an issue can be built for (a year of history behind it)."""
    last: date
    """The last session at which the headline pair has closes."""
    default: date
    """The as-of of an issue built without --as-of."""
    pair: str
    stored_through: dict[str, date] | None = None
    default_reason: str = ""
    """Why `default` is the default, in words (for the one line the CLI prints)."""

    def at(self, requested: date | None) -> Market:
        """The same prices serving the issue for the session on or before `requested`."""
        available = (
            f"the data covers {self.first.isoformat()} to {self.last.isoformat()} ({self.pair} "
            "with a year of history)"
        )
        if requested is None:
            return dataclasses.replace(self, as_of=self.default)
        if not self.first <= requested <= self.last + timedelta(days=REQUEST_SLACK_DAYS):
            raise AsOfError(f"no data for --as-of {requested.isoformat()}: {available}")
        as_of = self.calendar.session_on_or_before(requested)
        if not self.first <= as_of <= self.last:
            raise AsOfError(
                f"no data for --as-of {requested} (NYSE session {as_of.isoformat()}): {available}"
            )
        return dataclasses.replace(self, as_of=as_of)


def _present(prices: Prices, tickers: list[str]) -> pd.DatetimeIndex:
    """Sessions at which every one of `tickers` has a close."""
    return pd.DatetimeIndex(prices.adjusted[tickers].dropna().index)


def _read_prices(config: Config) -> tuple[Prices, dict[str, date] | None, str]:
    """The prices (from the store with the live provider), how far the store reaches, the source."""
    source = market_source(config)
    if not config.market.is_live:
        return source.fetch(spec_tickers(config.stats)), None, source.name
    store = PriceStore(config.price_store_path)
    try:
        prices = store.read(spec_tickers(config.stats), source.name)
        stored_through = {ticker: info.last for ticker, info in store.info().items()}
    finally:
        store.close()
    return prices, stored_through, source.name


def load_market(config: Config, requested: date | None = None) -> Market:
    """Load the prices and resolve `requested` to the as-of session they serve.

    An issue can be built for any session at which the headline pair (IWM and SPY) has a close
    and a year of history behind it; rows and sections whose tickers lack data are left out and
    the editor is told. The default is the last session at which the story has closes: the
    pair and the index whose concentration the issue measures (^GSPC).
    """
    started = time.perf_counter()
    spec = config.stats
    prices, stored_through, source_name = _read_prices(config)
    pair = " and ".join(required_tickers(spec))
    required = _present(prices, required_tickers(spec))
    if len(required) <= YEAR_SESSIONS:
        where = (
            "the price store (run `newsletter data refresh`)"
            if config.market.is_live
            else f"market.snapshot_dir ({config.market.snapshot_dir})"
        )
        raise AsOfError(
            f"{pair} have under a year of common history, which every issue needs; check the "
            f"prices in {where}"
        )
    first, last = required[YEAR_SESSIONS].date(), required[-1].date()
    # The calendar reaches past every date --as-of may name, so any request resolves on it.
    calendar = TradingCalendar(
        prices.adjusted.index[0].date(), last + timedelta(days=REQUEST_SLACK_DAYS + 7)
    )
    sessions = calendar.sessions[
        (calendar.sessions >= prices.adjusted.index[0])
        & (calendar.sessions <= prices.adjusted.index[-1])
    ]
    aligned = Prices(
        adjusted=prices.adjusted.reindex(sessions),
        raw=prices.raw.reindex(sessions),
        source=prices.source,
    )
    story = [*required_tickers(spec), spec.concentration_index]
    present = _present(prices, story)
    default = present[-1].date() if len(present) and present[-1].date() >= first else last
    logger.info(
        "Loaded %d tickers, %d sessions from %s in %.2f s",
        len(prices.tickers),
        len(sessions),
        source_name,
        time.perf_counter() - started,
    )
    market = Market(
        aligned,
        calendar,
        default,
        first,
        last,
        default,
        pair,
        stored_through,
        default_reason=f"the last session at which {', '.join(story[:-1])} and {story[-1]} "
        "have closes",
    )
    return market.at(requested)
