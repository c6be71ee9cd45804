"""The local price store: a SQLite file of daily closes per ticker, refreshed incrementally.

Why SQLite rather than a Parquet file per ticker: each ticker's update is one transaction, so
an interrupted refresh leaves the previous series whole (no temp-file dance per file), SQLite
checks its own pages (`PRAGMA quick_check`), and no extra library (pyarrow) is needed. It is a
separate file from newsletter.db: a store found corrupt is moved aside and rebuilt from the
snapshot and the provider, which must never touch subscribers or the send ledger.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING

import pandas as pd

from newsletter.errors import CorruptStoreError, DataError
from newsletter.models import Prices

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from newsletter.market.source import MarketDataSource

logger = logging.getLogger(__name__)

OVERLAP_SESSIONS = 5
"""Sessions re-asked before the last stored one, to notice revised or re-based history."""
SAME = 1e-6
"""Relative difference under which two closes are the same number (rounding in exports)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS prices (
    ticker TEXT NOT NULL, session TEXT NOT NULL, close REAL NOT NULL, adj_close REAL NOT NULL,
    PRIMARY KEY (ticker, session));
CREATE TABLE IF NOT EXISTS series (
    ticker TEXT PRIMARY KEY, source TEXT NOT NULL, refreshed_at TEXT NOT NULL);
"""


REBUILD = "; `newsletter data refresh` moves it aside and rebuilds it"


@dataclass(frozen=True, slots=True)
class SeriesInfo:
    """What the store holds for one ticker."""

    ticker: str
    first: date
    last: date
    rows: int
    source: str
    refreshed_at: str


class PriceStore:
    """Daily closes per ticker in one SQLite file; each write is one transaction."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None)
        try:
            if self._db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise CorruptStoreError(
                    f"price store {path} failed SQLite's integrity check{REBUILD}"
                )
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as err:
            self._db.close()
            raise CorruptStoreError(
                f"price store {path} is not a readable SQLite file ({err}){REBUILD}"
            ) from err

    def close(self) -> None:
        self._db.close()

    def info(self) -> dict[str, SeriesInfo]:
        rows = self._db.execute(
            "SELECT p.ticker, MIN(session), MAX(session), COUNT(*), s.source, s.refreshed_at "
            "FROM prices p JOIN series s ON s.ticker = p.ticker GROUP BY p.ticker ORDER BY p.ticker"
        ).fetchall()
        return {
            row[0]: SeriesInfo(
                row[0],
                date.fromisoformat(row[1]),
                date.fromisoformat(row[2]),
                row[3],
                row[4],
                row[5],
            )
            for row in rows
        }

    def read(self, tickers: Sequence[str], source: str) -> Prices:
        """The stored closes of `tickers` (a ticker the store lacks is an error naming it)."""
        adjusted, raw = {}, {}
        for ticker in tickers:
            rows = self._db.execute(
                "SELECT session, close, adj_close FROM prices WHERE ticker = ? ORDER BY session",
                (ticker,),
            ).fetchall()
            if not rows:
                raise DataError(f"the price store has no {ticker}; run `newsletter data refresh`")
            index = pd.DatetimeIndex([row[0] for row in rows])
            raw[ticker] = pd.Series([row[1] for row in rows], index=index)
            adjusted[ticker] = pd.Series([row[2] for row in rows], index=index)
        return Prices(pd.DataFrame(adjusted).sort_index(), pd.DataFrame(raw).sort_index(), source)

    def write(
        self,
        ticker: str,
        adjusted: pd.Series,
        raw: pd.Series,
        source: str,
        now: datetime,
        *,
        replace: bool,
    ) -> int:
        """Store a ticker's closes (all of them if `replace`, else added over the old) atomically."""
        both = pd.DataFrame({"adj": adjusted, "raw": raw}).dropna()
        rows = (  # consumed inside the transaction: a bad value rolls the whole write back
            (ticker, pd.Timestamp(day).date().isoformat(), float(raw_close), float(adj_close))
            for day, adj_close, raw_close in zip(both.index, both["adj"], both["raw"], strict=True)
        )
        self._db.execute("BEGIN IMMEDIATE")
        try:
            if replace:
                self._db.execute("DELETE FROM prices WHERE ticker = ?", (ticker,))
            self._db.executemany("INSERT OR REPLACE INTO prices VALUES (?, ?, ?, ?)", rows)
            self._db.execute(
                "INSERT OR REPLACE INTO series VALUES (?, ?, ?)",
                (ticker, source, now.isoformat(timespec="seconds")),
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return len(both)


def open_price_store(path: Path, now: datetime) -> PriceStore:
    """Open the store; a corrupt file is reported, moved aside, and a new empty store begun."""
    try:
        return PriceStore(path)
    except CorruptStoreError as err:
        aside = path.with_name(f"{path.name}.corrupt-{now:%Y%m%dT%H%M%S}")
        path.replace(aside)
        logger.error("%s; moved it to %s and rebuilding the store", err, aside)
        return PriceStore(path)


@dataclass
class RefreshReport:
    """Per ticker: rows written, and the tickers whose history was rewritten."""

    written: dict[str, int] = field(default_factory=dict)
    rewritten: list[str] = field(default_factory=list)


def _changed(old: pd.Series, new: pd.Series) -> bool:
    both = pd.DataFrame({"old": old, "new": new}).dropna()
    return bool(((both["new"] / both["old"] - 1).abs() > SAME).any())


def refresh(
    store: PriceStore,
    source: MarketDataSource,
    tickers: Sequence[str],
    now: datetime,
    on_progress: Callable[[str], None] = lambda ticker: None,
) -> RefreshReport:
    """Bring every ticker up to date, asking only for what the store lacks plus an overlap.

    Tickers that need the same start are fetched in one batch (a warm store asks once for
    all). Where the overlap shows different closes (a dividend or split re-based the adjusted
    history, or the provider revised a day), the ticker's whole history is fetched again and
    rewritten. A failed fetch raises FetchError and leaves the store as it was.
    """
    report = RefreshReport()
    held = store.info()
    old: dict[str, Prices] = {}
    batches: dict[date | None, list[str]] = {}
    for ticker in tickers:
        known = held.get(ticker)
        start = None
        if known is not None:
            old[ticker] = store.read([ticker], known.source)
            sessions = old[ticker].adjusted.index
            start = sessions[max(0, len(sessions) - 1 - OVERLAP_SESSIONS)].date()
        batches.setdefault(start, []).append(ticker)
    rebased: list[str] = []
    for start, batch in batches.items():
        fresh = source.fetch(batch, start=start)
        for ticker in batch:
            before = old.get(ticker)
            if before is not None and (
                _changed(before.adjusted[ticker], fresh.adjusted[ticker])
                or _changed(before.raw[ticker], fresh.raw[ticker])
            ):
                rebased.append(ticker)
                continue
            report.written[ticker] = store.write(
                ticker,
                fresh.adjusted[ticker],
                fresh.raw[ticker],
                source.name,
                now,
                replace=before is None,
            )
            on_progress(ticker)
    if rebased:
        whole = source.fetch(rebased, start=None)
        for ticker in rebased:
            report.written[ticker] = store.write(
                ticker, whole.adjusted[ticker], whole.raw[ticker], source.name, now, replace=True
            )
            report.rewritten.append(ticker)
            on_progress(ticker)
    return report


def gaps(series: pd.Series, sessions: pd.DatetimeIndex) -> list[date]:
    """Exchange sessions between the series' first and last date that it has no close for."""
    present = series.dropna().index
    if present.empty:
        return []
    expected = sessions[(sessions >= present[0]) & (sessions <= present[-1])]
    return [day.date() for day in expected.difference(present)]
