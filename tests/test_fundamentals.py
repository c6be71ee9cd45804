"""Forward revenue estimates and earnings dates: yfinance's shapes, weekly snapshots, revisions."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pandas as pd
import pytest

from newsletter.app.data import refresh_fundamentals
from newsletter.config import load_config
from newsletter.errors import FetchError
from newsletter.market.fundamentals import YahooFundamentals, parse_fundamentals


def revenue_frame(next_year: float, analysts: int = 40) -> pd.DataFrame:
    """Ticker.revenue_estimate as yfinance returns it: periods as the index."""
    return pd.DataFrame(
        {
            "avg": [1.0e11, 1.1e11, 4.0e11, next_year],
            "low": [0.9e11, 1.0e11, 3.8e11, next_year * 0.9],
            "high": [1.1e11, 1.2e11, 4.2e11, next_year * 1.1],
            "numberOfAnalysts": [38, 37, analysts, analysts],
            "yearAgoRevenue": [0.9e11, 1.0e11, 3.5e11, 4.0e11],
            "growth": [0.1, 0.1, 0.14, 0.12],
        },
        index=pd.Index(["0q", "+1q", "0y", "+1y"], name="period"),
    )


class FakeTicker:
    def __init__(self, next_year, earnings):
        self.revenue_estimate = revenue_frame(next_year)
        self.calendar = {"Earnings Date": earnings, "Earnings Average": 1.2}
        self.fast_info = {"shares": 24_490_000_000}


def test_parse_keeps_the_periods_and_the_next_earnings_date():
    found = parse_fundamentals(
        "NVDA", revenue_frame(5.0e11), {"Earnings Date": [date(2024, 8, 28), date(2024, 8, 29)]}
    )
    assert found.revenue["+1y"] == 5.0e11
    assert found.analysts["+1y"] == 40
    assert found.next_earnings == date(2024, 8, 28)


@pytest.mark.parametrize("answer", [pd.DataFrame(), None, pd.DataFrame({"x": [1]})])
def test_missing_estimates_are_a_fetch_error_naming_the_ticker(answer):
    with pytest.raises(FetchError, match="Yahoo has no revenue estimates for MSFT"):
        parse_fundamentals("MSFT", answer, {})


def test_weekly_snapshots_become_four_and_twelve_week_revisions(write_config, prepare):
    config = load_config(write_config())
    values = {date(2024, 4, 19): 4.0e11, date(2024, 6, 14): 4.2e11, date(2024, 7, 12): 4.41e11}
    for day, value in values.items():
        source = YahooFundamentals(
            lambda ticker, value=value: FakeTicker(value, [date(2024, 7, 30)])
        )
        stored, failures = refresh_fundamentals(
            config, lambda day=day: datetime(day.year, day.month, day.day, 22, tzinfo=UTC), source
        )
        assert failures == []
        assert stored == 7 * 4  # seven share classes, four periods each
    stats = prepare(config, date(2024, 7, 17)).built.stats
    nvda = next(e for e in stats.estimates if e.name == "NVDA")
    assert (nvda.period, nvda.revenue, nvda.taken_on) == ("+1y", 4.41e11, date(2024, 7, 12))
    assert nvda.change_4w == pytest.approx(4.41e11 / 4.2e11 - 1)  # vs the 14 Jun snapshot
    assert nvda.change_12w == pytest.approx(4.41e11 / 4.0e11 - 1)  # vs the 19 Apr snapshot
    assert [e.name for e in stats.estimates] == [
        "NVDA",
        "MSFT",
        "AAPL",
        "GOOGL+GOOG",
        "AMZN",
        "META",
    ]
    earnings = [e for e in stats.key_dates if e.kind == "Earnings"]
    assert earnings[0].day == date(2024, 7, 30) and len(earnings) == 6  # within the 35-day horizon
    earlier = prepare(config, date(2024, 6, 14)).built.stats  # no look-ahead: July is unseen
    assert next(e for e in earlier.estimates if e.name == "NVDA").revenue == 4.2e11


def test_a_failing_ticker_is_reported_and_the_rest_stored(write_config):
    config = load_config(write_config())

    def ticker(symbol):
        if symbol == "META":
            raise TimeoutError("read timed out")
        return FakeTicker(5e11, [])

    stored, failures = refresh_fundamentals(
        config, lambda: datetime(2024, 7, 12, tzinfo=UTC), YahooFundamentals(ticker)
    )
    assert stored == 6 * 4
    assert failures == ["Yahoo fundamentals for META failed: TimeoutError: read timed out"]


def test_shares_outstanding_are_kept_with_each_snapshot(write_config):
    from newsletter.app.wiring import database  # noqa: PLC0415
    from newsletter.db.estimates import load_estimates  # noqa: PLC0415

    config = load_config(write_config())
    refresh_fundamentals(
        config,
        lambda: datetime(2024, 7, 12, tzinfo=UTC),
        YahooFundamentals(lambda t: FakeTicker(5e11, [])),
    )
    snapshots = load_estimates(database(config), ["NVDA"], date(2024, 7, 12))
    assert {snap.shares for snap in snapshots} == {24_490_000_000.0}
