"""The local price store: cold and warm refreshes, revisions, re-basing, corruption, interruption."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pandas as pd
import pytest

from newsletter.errors import FetchError
from newsletter.market.calendar import TradingCalendar
from newsletter.market.pricedb import (
    OVERLAP_SESSIONS,
    PriceStore,
    gaps,
    open_price_store,
    refresh,
)
from newsletter.market.snapshot import SnapshotSource
from newsletter.models import Prices

from .conftest import SNAPSHOT

NOW = datetime(2024, 7, 20, 12, tzinfo=UTC)
UNTIL = pd.Timestamp("2024-07-16")


class Provider:
    """A provider that serves the real snapshot up to a date, optionally scaled, and records calls."""

    name = "test provider"

    def __init__(self, until=UNTIL, scale=1.0, fail=False):
        self.snapshot = SnapshotSource(SNAPSHOT)
        self.until, self.scale, self.fail = until, scale, fail
        self.calls: list[tuple[list[str], date | None]] = []

    def fetch(self, tickers, start=None):
        self.calls.append((list(tickers), start))
        if self.fail:
            raise FetchError("Yahoo returned no prices for " + ", ".join(tickers))
        prices = self.snapshot.fetch(tickers, start=start)
        cut = slice(None, self.until)
        return Prices(prices.adjusted.loc[cut] * self.scale, prices.raw.loc[cut], self.name)


def test_a_cold_store_asks_for_whole_histories(tmp_path):
    store = PriceStore(tmp_path / "prices.db")
    provider = Provider()
    report = refresh(store, provider, ["SPY", "IWM"], NOW)
    assert provider.calls == [(["SPY", "IWM"], None)]  # one batch for tickers with the same start
    info = store.info()
    assert info["SPY"].first == date(1993, 1, 29) and info["SPY"].last == date(2024, 7, 16)
    assert report.written["IWM"] == info["IWM"].rows
    stored = store.read(["SPY"], "test").adjusted["SPY"]
    assert stored.loc["2024-07-16"] == pytest.approx(
        SnapshotSource(SNAPSHOT).fetch(["SPY"]).adjusted.loc["2024-07-16", "SPY"]
    )


def test_a_warm_store_asks_only_for_the_missing_sessions_plus_an_overlap(tmp_path):
    store = PriceStore(tmp_path / "prices.db")
    refresh(store, Provider(until=pd.Timestamp("2024-07-09")), ["SPY"], NOW)
    later = Provider(until=pd.Timestamp("2024-07-17"))
    report = refresh(store, later, ["SPY"], NOW)
    sessions = SnapshotSource(SNAPSHOT).fetch(["SPY"]).adjusted.loc[:"2024-07-09"].index
    expected_start = sessions[-1 - OVERLAP_SESSIONS].date()
    assert later.calls == [(["SPY"], expected_start)]
    assert report.rewritten == []
    assert store.info()["SPY"].last == date(2024, 7, 17)


def test_re_based_adjusted_history_is_rewritten_whole(tmp_path):
    store = PriceStore(tmp_path / "prices.db")
    refresh(store, Provider(until=pd.Timestamp("2024-07-09")), ["SPY"], NOW)
    rebased = Provider(scale=0.98)  # a dividend moved every adjusted close: the epoch changed
    report = refresh(store, rebased, ["SPY"], NOW)
    assert report.rewritten == ["SPY"]
    assert [start for _, start in rebased.calls][-1] is None
    first = store.read(["SPY"], "x").adjusted["SPY"].iloc[0]
    assert first == pytest.approx(
        SnapshotSource(SNAPSHOT).fetch(["SPY"]).adjusted["SPY"].iloc[0] * 0.98
    )


def test_a_failed_fetch_leaves_the_store_as_it_was(tmp_path):
    store = PriceStore(tmp_path / "prices.db")
    refresh(store, Provider(until=pd.Timestamp("2024-07-09")), ["SPY"], NOW)
    before = store.info()
    with pytest.raises(FetchError):
        refresh(store, Provider(fail=True), ["SPY"], NOW)
    assert store.info() == before


def test_an_interrupted_write_keeps_the_old_series(tmp_path):
    store = PriceStore(tmp_path / "prices.db")
    refresh(store, Provider(until=pd.Timestamp("2024-07-09")), ["SPY"], NOW)
    before = store.info()["SPY"]
    good = SnapshotSource(SNAPSHOT).fetch(["SPY"])
    broken_adjusted = good.adjusted["SPY"].astype(object)
    broken_adjusted.iloc[-1] = "not a number"  # the write fails after the old rows were deleted
    with pytest.raises(ValueError, match="could not convert"):
        store.write("SPY", broken_adjusted, good.raw["SPY"], "x", NOW, replace=True)
    assert store.info()["SPY"] == before


def test_a_corrupt_store_is_reported_moved_aside_and_rebuilt(tmp_path, caplog):
    path = tmp_path / "prices.db"
    path.write_bytes(b"this is not a database" * 100)
    store = open_price_store(path, NOW)
    assert store.info() == {}
    assert list(tmp_path.glob("prices.db.corrupt-*"))
    assert "is not a readable SQLite file" in caplog.text
    refresh(store, Provider(), ["IWM"], NOW)
    assert store.info()["IWM"].last == date(2024, 7, 16)


def test_gaps_are_sessions_the_calendar_has_and_the_series_lacks():
    calendar = TradingCalendar(date(2024, 7, 1), date(2024, 7, 31))
    series = SnapshotSource(SNAPSHOT).fetch(["SPY"]).adjusted["SPY"].loc["2024-07-01":"2024-07-19"]
    assert gaps(series, calendar.sessions) == []
    assert gaps(series.drop(pd.Timestamp("2024-07-12")), calendar.sessions) == [date(2024, 7, 12)]


def test_data_status_shows_the_prices_the_build_would_read(write_config, capsys):
    from newsletter.cli import main  # noqa: PLC0415

    # The snapshot provider: the bundled files, and nothing to refresh.
    config = write_config()
    assert main(["data", "refresh", "--config", str(config), "--quiet"]) == 0
    assert capsys.readouterr().out.startswith("Nothing to refresh: market.provider is snapshot")
    assert not (config.parent / "var" / "prices.db").exists()
    assert main(["data", "status", "--config", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    spy = next(line for line in lines if line.startswith("SPY "))
    assert spy.split()[1:4] == ["1993-01-29", "2025-09-26", "8222"]
    assert spy.endswith("bundled snapshot")
    assert len(lines) == 28
    # The live provider reads the local store, which starts empty.
    live = write_config(market={"provider": "yfinance"})
    assert main(["data", "status", "--config", str(live)]) == 0
    assert "is empty; run `newsletter data refresh`" in capsys.readouterr().out


@pytest.mark.slow
def test_a_live_build_whose_refresh_fails_needs_allow_stale(write_config, capsys, monkeypatch):
    from newsletter.app import data  # noqa: PLC0415
    from newsletter.cli import main  # noqa: PLC0415

    # The provider seam, not yfinance: this test must not reach for the internet.
    monkeypatch.setattr(data, "market_source", lambda config: Provider(fail=True))
    config = write_config(market={"provider": "yfinance"})
    argv = ["build", "--config", str(config), "--as-of", "2024-07-16", "--quiet"]
    assert main(argv) == 1
    assert (
        capsys.readouterr()
        .err.strip()
        .splitlines()[-1]
        .startswith("Error: Yahoo returned no prices for SPY, IWM, QQQ")
    )
    assert main([*argv, "--allow-stale"]) == 0
    captured = capsys.readouterr()
    assert "building from the stored prices (--allow-stale)" in captured.err
    assert "Issue 2024-07-16" in captured.out
    html = (config.parent / "var" / "issues" / "2024-07-16" / "email.html").read_text()
    assert "Data warning: prices could not be refreshed (Yahoo returned no prices for SPY" in html
