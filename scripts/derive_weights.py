"""Derive start-of-year S&P 500 weights for the mega caps from the two SPY holdings files.

Run by hand; writes newsletter/data/market/sp500_weights/megacap_weights_<DATE>.csv.

Method (the one PROVENANCE.md describes for megacap_weights_2023-12-29.csv): renormalise each
holdings file's weights over its equity lines (dropping the cash line, ticker '-'), then carry
each weight to the target close by the stock's price relative to the index's:
    w(T) = w(t0) * [P(T) / P(t0)] / [SPX(T) / SPX(t0)]
using split-adjusted raw closes. One estimate comes from each holdings file; `weight_pct_mid`
is their average. Run with --check to recompute the bundled 2023-12-29 file and compare.

    python scripts/derive_weights.py 2022-12-30 2024-12-31
    python scripts/derive_weights.py --check
"""

from __future__ import annotations

import argparse
import csv
import gzip
from pathlib import Path

MARKET = Path(__file__).resolve().parent.parent / "newsletter" / "data" / "market"
WEIGHTS = MARKET / "sp500_weights"
HOLDINGS = ("2023-09-06", "2024-05-10")
MEGACAPS = ("AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "GOOG", "META", "TSLA", "AVGO")


def closes(ticker: str) -> dict[str, float]:
    with gzip.open(MARKET / f"{ticker.removeprefix('^')}.csv.gz", "rt", newline="") as handle:
        return {row["date"]: float(row["close"]) for row in csv.DictReader(handle)}


def holdings(day: str) -> dict[str, float]:
    with (WEIGHTS / f"SPY_holdings_{day}.csv").open(newline="") as handle:
        rows = {row["ticker"]: float(row["weight_pct"]) for row in csv.DictReader(handle)}
    rows.pop("-", None)
    total = sum(rows.values())
    return {ticker: 100 * weight / total for ticker, weight in rows.items()}


def estimate(target: str) -> list[dict[str, str]]:
    index = closes("^GSPC")
    prices = {ticker: closes(ticker) for ticker in MEGACAPS}
    rows = []
    for ticker in MEGACAPS:
        row = {"ticker": ticker}
        values = []
        for day in HOLDINGS:
            weight = holdings(day)[ticker]
            carried = (
                weight
                * (prices[ticker][target] / prices[ticker][day])
                / (index[target] / index[day])
            )
            row[f"weight_pct_from_{day}"] = f"{carried:.4f}"
            values.append(carried)
        row["weight_pct_mid"] = f"{sum(values) / len(values):.4f}"
        row[f"close_{target}"] = f"{prices[ticker][target]:g}"
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "dates", nargs="*", help="target closes, YYYY-MM-DD (each a session in the data)"
    )
    parser.add_argument(
        "--check", action="store_true", help="compare with the bundled 2023-12-29 file"
    )
    args = parser.parse_args()
    if args.check:
        with (WEIGHTS / "megacap_weights_2023-12-29.csv").open(newline="") as handle:
            bundled = {
                row["ticker"]: float(row["weight_pct_mid"]) for row in csv.DictReader(handle)
            }
        for row in estimate("2023-12-29"):
            print(
                f"{row['ticker']:6} bundled {bundled[row['ticker']]:.4f}  recomputed {row['weight_pct_mid']}"
            )
    for target in args.dates:
        rows = estimate(target)
        path = WEIGHTS / f"megacap_weights_{target}.csv"
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
