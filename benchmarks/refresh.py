"""What a warm refresh asks of the provider: one missing week across 30 tickers.

Run by hand:  python benchmarks/refresh.py

The store is filled from the bundled snapshot up to 2024-07-05; the provider (the same
snapshot served through a counting wrapper, because this machine has no internet) then has
data through 2024-07-12. Prints the provider calls, the tickers and rows asked for, and time.
"""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from newsletter.market.pricedb import PriceStore, refresh
from newsletter.market.snapshot import SnapshotSource
from newsletter.models import Prices

REPO = Path(__file__).resolve().parent.parent
SNAPSHOT = REPO / "newsletter" / "data" / "market"
TICKERS = [
    "SPY",
    "IWM",
    "QQQ",
    "RSP",
    "DIA",
    "^GSPC",
    "^RUT",
    "^NDX",
    "^TNX",
    "NVDA",
    "MSFT",
    "AAPL",
    "GOOGL",
    "GOOG",
    "AMZN",
    "META",
    "TSLA",
    "AVGO",
    "XLB",
    "XLC",
    "XLE",
    "XLF",
    "XLI",
    "XLK",
    "XLP",
    "XLRE",
    "XLU",
    "XLV",
    "XLY",
    "TLT",
]


class CountingSource:
    name = "counting snapshot"

    def __init__(self, until: str) -> None:
        self.snapshot = SnapshotSource(SNAPSHOT)
        self.until = pd.Timestamp(until)
        self.calls: list[tuple[int, int]] = []

    def fetch(self, tickers, start=None):
        prices = self.snapshot.fetch(tickers, start=start)
        adjusted, raw = prices.adjusted.loc[: self.until], prices.raw.loc[: self.until]
        self.calls.append((len(tickers), int(adjusted.notna().sum().sum())))
        return Prices(adjusted, raw, self.name)


def main() -> None:
    now = datetime(2024, 7, 13, tzinfo=UTC)
    with tempfile.TemporaryDirectory() as tmp:
        store = PriceStore(Path(tmp) / "prices.db")
        refresh(store, CountingSource("2024-07-05"), TICKERS, now)
        source = CountingSource("2024-07-12")
        started = time.perf_counter()
        report = refresh(store, source, TICKERS, now)
        elapsed = time.perf_counter() - started
        store.close()
    print(f"warm refresh of {len(TICKERS)} tickers missing one week (2024-07-08..12):")
    print(
        f"  provider calls: {len(source.calls)} (tickers per call: {[n for n, _ in source.calls]})"
    )
    print(
        f"  rows asked for: {sum(rows for _, rows in source.calls)} "
        f"(5 new sessions + {6} overlap sessions per ticker)"
    )
    print(
        f"  rows written:   {sum(report.written.values())}; rewritten whole: {report.rewritten or 'none'}"
    )
    print(f"  time (store and comparison, provider local): {elapsed:.2f} s")


if __name__ == "__main__":
    main()
