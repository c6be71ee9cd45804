"""How long all statistics take for the full universe over the full history, warm.

Loads the bundled snapshot once (every ticker in config.yaml's stats section, 1927 onward),
then times compute_week_stats repeatedly for one as-of session and prints each run and the
median. Run by hand from the project folder:  python benchmarks/stats.py [--as-of DATE]
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import date
from pathlib import Path

from newsletter.app.build import KEY_DATES_SOURCE
from newsletter.app.data import load_market
from newsletter.config import load_config
from newsletter.market.events import load_key_dates
from newsletter.market.weights import load_start_of_year_weights
from newsletter.stats import compute_week_stats

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--as-of", type=date.fromisoformat, default=date(2024, 7, 16))
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    config = load_config(REPO / "config.yaml")
    market = load_market(config, args.as_of)
    dates = market.calendar.report_dates(market.as_of)
    spec = config.stats
    weights = load_start_of_year_weights(config.market.snapshot_dir, market.as_of.year)
    events = load_key_dates(config.market.key_dates_file)
    timings = []
    for _ in range(args.runs + 1):  # the first run warms caches and is not counted
        started = time.perf_counter()
        compute_week_stats(
            market.prices,
            dates,
            spec,
            weights=weights,
            events=events,
            events_source=KEY_DATES_SOURCE,
        )
        timings.append(time.perf_counter() - started)
    timings = timings[1:]
    frame = market.prices.adjusted
    print(
        f"compute_week_stats as of {market.as_of}: {len(frame.columns)} tickers x {len(frame)} sessions "
        f"({frame.index[0].date()}..{frame.index[-1].date()})"
    )
    print(
        f"warm: median {statistics.median(timings) * 1000:.1f} ms, min {min(timings) * 1000:.1f} ms, "
        f"max {max(timings) * 1000:.1f} ms over {args.runs} runs"
    )


if __name__ == "__main__":
    main()
