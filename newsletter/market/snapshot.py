"""The bundled real daily-price snapshot (one gzip CSV per ticker) as a market data source.

File names drop an index's caret: ^GSPC lives in GSPC.csv.gz. Columns are
date,open,high,low,close,adj_close,volume; see PROVENANCE.md beside the files.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from newsletter.errors import DataError
from newsletter.models import Prices

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import date
    from pathlib import Path

_REQUIRED = ("date", "close", "adj_close")
_HEADER_LINES = 1


def ticker_file(directory: Path, ticker: str) -> Path:
    """The snapshot file holding `ticker` (gzip CSV preferred, plain CSV accepted)."""
    stem = ticker.removeprefix("^")
    gz = directory / f"{stem}.csv.gz"
    return gz if gz.exists() else directory / f"{stem}.csv"


def read_price_file(path: Path, ticker: str) -> pd.DataFrame:
    """Read one ticker's CSV and validate every row; a bad row is named by its line number."""
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError as err:
        raise DataError(
            f"no price file for {ticker} in {path.parent} (expected {path.name}); "
            "add the file or remove the ticker from config.yaml"
        ) from err
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"{path}: cannot be read as CSV ({err})") from err
    missing = [column for column in _REQUIRED if column not in frame.columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(missing)}; header is {list(frame.columns)}"
        )

    dates = pd.to_datetime(frame["date"], format="%Y-%m-%d", errors="coerce")
    close = pd.to_numeric(frame["close"], errors="coerce")
    adjusted = pd.to_numeric(frame["adj_close"], errors="coerce")
    bad = dates.isna() | ~(close > 0) | ~(adjusted > 0)
    if bad.any():
        row = int(bad.to_numpy().argmax())
        values = frame.iloc[row][list(_REQUIRED)].to_dict()
        raise DataError(
            f"{path}: line {row + 1 + _HEADER_LINES}: bad row {values} "
            "(need an ISO date and positive close and adj_close)"
        )
    duplicated = dates.duplicated()
    if duplicated.any():
        row = int(duplicated.to_numpy().argmax())
        raise DataError(
            f"{path}: line {row + 1 + _HEADER_LINES}: duplicate date {frame['date'][row]}"
        )
    if not dates.is_monotonic_increasing:
        row = int((dates.diff() < pd.Timedelta(0)).to_numpy().argmax())
        raise DataError(
            f"{path}: line {row + 1 + _HEADER_LINES}: date {frame['date'][row]} is out of order"
        )
    return pd.DataFrame(
        {"raw": close.to_numpy(), "adjusted": adjusted.to_numpy()},
        index=pd.DatetimeIndex(dates, name="date"),
    )


class SnapshotSource:
    """Daily prices read from a folder of per-ticker CSV files (the bundled snapshot by default)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @property
    def name(self) -> str:
        return "bundled market snapshot (Yahoo Finance exports; see PROVENANCE.md)"

    def fetch(self, tickers: Sequence[str], start: date | None = None) -> Prices:
        frames = {
            ticker: read_price_file(ticker_file(self.directory, ticker), ticker)
            for ticker in tickers
        }
        adjusted = pd.DataFrame({ticker: frame["adjusted"] for ticker, frame in frames.items()})
        raw = pd.DataFrame({ticker: frame["raw"] for ticker, frame in frames.items()})
        if start is not None:
            adjusted, raw = adjusted.loc[pd.Timestamp(start) :], raw.loc[pd.Timestamp(start) :]
        return Prices(adjusted=adjusted.sort_index(), raw=raw.sort_index(), source=self.name)
