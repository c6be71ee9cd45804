"""The bundled real daily-price snapshot (one gzip CSV per ticker) as a market data source.

File names drop an index's caret: ^GSPC lives in GSPC.csv.gz. Columns are
date,open,high,low,close,adj_close,volume; see PROVENANCE.md beside the files.

The CSVs are the record; `snapshot.npz` beside them is the same closes in binary, typed form
(written by scripts/build_snapshot.py), which loads in milliseconds instead of parsing and
checking every row. It is used for a ticker only while it records that ticker's CSV by its
SHA-256: an edited or added CSV is read as CSV, so the two can never disagree unseen.
"""

from __future__ import annotations

import hashlib
import zipfile
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from newsletter.errors import DataError
from newsletter.models import Prices

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import date
    from pathlib import Path

_REQUIRED = ("date", "close", "adj_close")
_UNIT = pd.to_datetime(["2000-01-03"], format="%Y-%m-%d").unit
"""The resolution pandas gives parsed dates: the binary path's index matches the CSV path's."""
BINARY = "snapshot.npz"
"""The binary copy of a snapshot folder's closes (scripts/build_snapshot.py writes it)."""
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
        binary = _binary_columns(self.directory, tickers)
        frames = {
            ticker: read_price_file(ticker_file(self.directory, ticker), ticker)
            for ticker in tickers
            if ticker not in binary
        }
        if frames:
            adjusted = pd.DataFrame({t: frame["adjusted"] for t, frame in frames.items()})
            raw = pd.DataFrame({t: frame["raw"] for t, frame in frames.items()})
            if binary:
                quick_adjusted, quick_raw = _aligned(binary)
                adjusted, raw = (
                    adjusted.join(quick_adjusted, how="outer"),
                    raw.join(quick_raw, how="outer"),
                )
        else:
            adjusted, raw = _aligned(binary)
        adjusted, raw = adjusted[list(tickers)], raw[list(tickers)]
        if start is not None:
            adjusted, raw = adjusted.loc[pd.Timestamp(start) :], raw.loc[pd.Timestamp(start) :]
        return Prices(adjusted=adjusted.sort_index(), raw=raw.sort_index(), source=self.name)


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _binary_columns(
    directory: Path, tickers: Sequence[str]
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(days since 1970, raw, adjusted) of each ticker whose CSV the binary copy records
    unchanged; none when there is no binary copy, or it cannot be read."""
    path = directory / BINARY
    if not path.is_file():
        return {}
    try:
        return _read_binary(path, directory, tickers)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return {}  # a damaged copy is no reason to fail: the CSVs are the record


def _read_binary(
    path: Path, directory: Path, tickers: Sequence[str]
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    with path.open("rb") as handle, np.load(handle) as stored:
        digests = dict(item.split(":", 1) for item in stored["digests"].tolist())
        found = {}
        for ticker in tickers:
            stem, csv = ticker.removeprefix("^"), ticker_file(directory, ticker)
            if csv.is_file() and digests.get(stem) == file_digest(csv):
                found[ticker] = (
                    stored[f"{stem}.days"],
                    stored[f"{stem}.raw"],
                    stored[f"{stem}.adjusted"],
                )
    return found


def _aligned(
    columns: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The adjusted and raw frames on the union of the tickers' sessions, NaN where a ticker
    has no close (as the CSV path's join gives)."""
    union = np.unique(np.concatenate([days for days, _, _ in columns.values()]))
    index = pd.DatetimeIndex(union.astype("datetime64[D]"), name="date").as_unit(_UNIT)
    frames = []
    for part in (2, 1):  # adjusted, raw
        matrix = np.full((len(union), len(columns)), np.nan)
        for j, values in enumerate(columns.values()):
            matrix[np.searchsorted(union, values[0]), j] = values[part]
        frames.append(pd.DataFrame(matrix, index=index, columns=list(columns)))
    return frames[0], frames[1]
