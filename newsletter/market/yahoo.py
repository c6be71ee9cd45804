"""Live daily prices from Yahoo Finance through yfinance: the only module that imports yfinance.

yfinance often fails quietly: it logs an error and returns an empty or partial frame instead of
raising. Every answer is therefore checked per ticker (present, not all NaN, no missing session
after its first one, positive) and turned into a FetchError that names the tickers and dates
missing. The download call is explicit about what it asks for (raw and adjusted closes, no
actions, no repair) so that yfinance's changing defaults do not change our numbers, has a
timeout, and is retried a bounded number of times with back-off.

The downloader is injectable: tests pass recorded or constructed answers in the shapes yfinance
returns, without patching yfinance itself.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

import pandas as pd

from newsletter.errors import FetchError
from newsletter.models import Prices

logger = logging.getLogger(__name__)

Downloader = Callable[..., Any]
ADJUSTED, RAW = "Adj Close", "Close"
MAX_LISTED_DATES = 5


def yfinance_download(tickers: Sequence[str], timeout_s: float, start: date | None) -> Any:
    """One call to yfinance.download with every choice spelled out."""
    import yfinance  # noqa: PLC0415 (heavy, and only needed for live data)

    span: dict[str, Any] = {"period": "max"} if start is None else {"start": start.isoformat()}
    with warnings.catch_warnings():
        # yfinance turns on pandas' deprecation warnings for itself and then trips them; they
        # are notes for its developers, not for the editor reading our one-line errors.
        warnings.simplefilter("ignore", DeprecationWarning)
        return yfinance.download(
            list(tickers),
            **span,
            interval="1d",
            auto_adjust=False,
            back_adjust=False,
            actions=False,
            repair=False,
            keepna=False,
            group_by="column",
            multi_level_index=True,
            threads=True,
            progress=False,
            timeout=timeout_s,
        )


def _column(frame: pd.DataFrame, field: str, ticker: str, single: bool) -> pd.Series | None:
    """One ticker's price column from a multi-ticker (Price, Ticker) or single-ticker frame."""
    columns = frame.columns
    if isinstance(columns, pd.MultiIndex):
        if (field, ticker) in columns:
            return pd.Series(frame[(field, ticker)])
        if single and field in columns.get_level_values(0):
            block = frame[field]
            return pd.Series(block.iloc[:, 0] if isinstance(block, pd.DataFrame) else block)
        return None
    return pd.Series(frame[field]) if single and field in columns else None


def _dates(index: pd.Index) -> str:
    days = [pd.Timestamp(day).date().isoformat() for day in index[:MAX_LISTED_DATES]]
    more = f" and {len(index) - MAX_LISTED_DATES} more" if len(index) > MAX_LISTED_DATES else ""
    return ", ".join(days) + more


def parse_download(frame: Any, tickers: Sequence[str], source: str) -> Prices:
    """Check yfinance's answer ticker by ticker and turn it into Prices, or raise FetchError."""
    wanted = ", ".join(tickers)
    if not isinstance(frame, pd.DataFrame) or frame.empty:
        raise FetchError(
            f"Yahoo returned no prices for {wanted} (an empty answer: offline, or throttled)"
        )
    if not isinstance(frame.index, pd.DatetimeIndex):
        raise FetchError(
            f"Yahoo's answer for {wanted} has no date index ({type(frame.index).__name__})"
        )
    frame = frame.sort_index()
    if frame.index.has_duplicates:
        raise FetchError(
            f"Yahoo's answer for {wanted} repeats dates: {_dates(frame.index[frame.index.duplicated()])}"
        )
    sessions = pd.DatetimeIndex(
        frame.index.tz_localize(None) if frame.index.tz else frame.index
    ).normalize()
    problems: list[str] = []
    adjusted, raw = {}, {}
    for ticker in tickers:
        adj_column = _column(frame, ADJUSTED, ticker, len(tickers) == 1)
        close_column = _column(frame, RAW, ticker, len(tickers) == 1)
        if adj_column is None or close_column is None:
            problems.append(f"{ticker}: not in the answer")
            continue
        adj = pd.Series(pd.to_numeric(adj_column, errors="coerce")).set_axis(sessions)
        close = pd.Series(pd.to_numeric(close_column, errors="coerce")).set_axis(sessions)
        valid = adj.notna() & close.notna()
        if not valid.any():
            problems.append(f"{ticker}: no prices (all NaN)")
            continue
        listed = valid[valid.idxmax() :]
        if not listed.all():
            problems.append(f"{ticker}: no price on {_dates(listed.index[~listed])}")
            continue
        if (adj[valid] <= 0).any() or (close[valid] <= 0).any():
            problems.append(
                f"{ticker}: non-positive prices on {_dates(adj.index[valid & ((adj <= 0) | (close <= 0))])}"
            )
            continue
        adjusted[ticker], raw[ticker] = adj.where(valid), close.where(valid)
    if problems:
        raise FetchError(f"Yahoo's answer is incomplete: {'; '.join(problems)}")
    return Prices(adjusted=pd.DataFrame(adjusted), raw=pd.DataFrame(raw), source=source)


class YahooSource:
    """Daily closes from Yahoo Finance, checked, with bounded retries and back-off."""

    def __init__(
        self,
        download: Downloader | None = None,
        *,
        timeout_s: float = 10.0,
        attempts: int = 3,
        backoff_s: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._download = download or yfinance_download
        self.timeout_s = timeout_s
        self.attempts = attempts
        self.backoff_s = backoff_s
        self._sleep = sleep

    @property
    def name(self) -> str:
        return "Yahoo Finance via yfinance (live)"

    def fetch(self, tickers: Sequence[str], start: date | None = None) -> Prices:
        last: FetchError | None = None
        for attempt in range(1, self.attempts + 1):
            try:
                frame = self._download(tickers, self.timeout_s, start)
                return parse_download(frame, tickers, self.name)
            except FetchError as err:
                last = err
            except Exception as err:  # yfinance raises whatever its HTTP stack raises
                last = FetchError(f"Yahoo download failed: {type(err).__name__}: {err}")
                last.__cause__ = err
            if attempt < self.attempts:
                delay = self.backoff_s * 2 ** (attempt - 1)
                logger.info(
                    "attempt %d of %d failed (%s); retrying in %.0f s",
                    attempt,
                    self.attempts,
                    last,
                    delay,
                )
                self._sleep(delay)
        assert last is not None
        raise FetchError(
            f"{last} (after {self.attempts} attempts; check the network, or use market.provider: snapshot)"
        )
