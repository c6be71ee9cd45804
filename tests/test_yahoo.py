"""The yfinance provider on answers in the shapes yfinance returns, injected at its seam."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from newsletter.errors import FetchError
from newsletter.market.yahoo import YahooSource

from .conftest import read_raw_closes

DAYS = pd.DatetimeIndex(
    ["2024-07-09", "2024-07-10", "2024-07-11", "2024-07-12", "2024-07-15", "2024-07-16"],
    name="Date",
)
FIELDS = ["Adj Close", "Close", "High", "Low", "Open", "Volume"]


def recorded(tickers, days=DAYS):
    """A multi-ticker answer as yf.download(auto_adjust=False) gives it: (Price, Ticker) columns."""
    columns = pd.MultiIndex.from_product([FIELDS, sorted(tickers)], names=["Price", "Ticker"])
    frame = pd.DataFrame(index=days, columns=columns, dtype=float)
    for ticker in tickers:
        adj, close = read_raw_closes(ticker), read_raw_closes(ticker, "close")
        for day in days:
            key = day.date().isoformat()
            frame.loc[day, ("Adj Close", ticker)] = adj[key]
            frame.loc[day, ("Close", ticker)] = close[key]
            for field in ("High", "Low", "Open"):
                frame.loc[day, (field, ticker)] = close[key]
            frame.loc[day, ("Volume", ticker)] = 1_000_000
    return frame


class Recorder:
    """A downloader that plays back answers (or raises) and records what it was asked."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = []

    def __call__(self, tickers, timeout_s, start=None):
        self.calls.append((list(tickers), timeout_s))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def source(*answers):
    recorder = Recorder(*answers)
    return YahooSource(
        recorder, timeout_s=7, attempts=3, backoff_s=1, sleep=lambda s: None
    ), recorder


def test_a_multi_ticker_answer_becomes_prices():
    yahoo, recorder = source(recorded(["SPY", "IWM"]))
    prices = yahoo.fetch(["SPY", "IWM"])
    assert recorder.calls == [(["SPY", "IWM"], 7)]
    assert prices.tickers == ["SPY", "IWM"]
    spread = prices.spread("IWM", "SPY", 5)
    assert spread.iloc[-1] == pytest.approx(0.0989, abs=5e-5)  # the same figure as the snapshot
    assert prices.source == "Yahoo Finance via yfinance (live)"


def test_a_single_ticker_answer_without_the_ticker_level():
    frame = recorded(["SPY"])
    frame.columns = frame.columns.get_level_values(0)
    prices = source(frame)[0].fetch(["SPY"])
    assert prices.raw["SPY"].iloc[-1] == pytest.approx(564.86, abs=1e-3)


def test_an_empty_answer_is_retried_then_a_clear_error():
    empty = pd.DataFrame(
        columns=pd.MultiIndex.from_product([FIELDS, ["IWM", "SPY"]], names=["Price", "Ticker"])
    )
    yahoo, recorder = source(empty, empty, empty)
    with pytest.raises(FetchError) as err:
        yahoo.fetch(["SPY", "IWM"])
    assert len(recorder.calls) == 3
    assert str(err.value) == (
        "Yahoo returned no prices for SPY, IWM (an empty answer: offline, or throttled) "
        "(after 3 attempts; check the network, or use market.provider: snapshot)"
    )


def test_a_partial_answer_names_the_ticker_and_dates():
    frame = recorded(["SPY", "IWM"])
    frame.loc[DAYS[-2:], ("Adj Close", "IWM")] = np.nan
    yahoo, _ = source(frame, frame, frame)
    with pytest.raises(FetchError, match=r"IWM: no price on 2024-07-15, 2024-07-16"):
        yahoo.fetch(["SPY", "IWM"])


def test_a_missing_or_all_nan_ticker_is_named():
    frame = recorded(["SPY", "IWM"])
    frame.loc[:, ("Close", "IWM")] = np.nan
    yahoo, _ = source(frame, frame, frame)
    with pytest.raises(FetchError) as err:
        yahoo.fetch(["SPY", "IWM", "QQQ"])
    assert "IWM: no prices (all NaN)" in str(err.value)
    assert "QQQ: not in the answer" in str(err.value)


def test_a_ticker_listed_later_is_not_a_gap():
    frame = recorded(["SPY", "IWM"])
    frame.loc[DAYS[:2], [("Adj Close", "IWM"), ("Close", "IWM")]] = np.nan
    prices = source(frame)[0].fetch(["SPY", "IWM"])
    assert prices.adjusted["IWM"].first_valid_index() == DAYS[2]


def test_a_timeout_then_success_is_retried():
    yahoo, recorder = source(TimeoutError("read timed out"), recorded(["SPY"]))
    assert yahoo.fetch(["SPY"]).tickers == ["SPY"]
    assert len(recorder.calls) == 2


def test_persistent_timeouts_end_in_a_fetch_error():
    yahoo, _ = source(TimeoutError("a"), TimeoutError("b"), TimeoutError("c"))
    with pytest.raises(
        FetchError, match=r"Yahoo download failed: TimeoutError: c \(after 3 attempts"
    ):
        yahoo.fetch(["SPY"])


def test_duplicate_dates_and_non_positive_prices_are_refused():
    frame = recorded(["SPY"])
    doubled = pd.concat([frame, frame.iloc[[-1]]])
    with pytest.raises(FetchError, match="repeats dates: 2024-07-16"):
        source(doubled, doubled, doubled)[0].fetch(["SPY"])
    frame.loc[DAYS[3], ("Close", "SPY")] = 0.0
    with pytest.raises(FetchError, match="SPY: non-positive prices on 2024-07-12"):
        source(frame, frame, frame)[0].fetch(["SPY"])


@pytest.mark.network
def test_yahoo_for_real():
    prices = YahooSource().fetch(["SPY", "IWM"])
    assert prices.adjusted["SPY"].notna().sum() > 5000
