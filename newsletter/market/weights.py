"""Start-of-year S&P 500 index weights, one dated file per year in the snapshot folder.

A file named megacap_weights_<YYYY-MM-DD>.csv holds weights at the close of that date (the last
session of a year); its `weight_pct_mid` column is the estimate used. How the bundled file was
estimated is written in PROVENANCE.md beside it.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

import pandas as pd

from newsletter.errors import DataError
from newsletter.models import IndexWeights

if TYPE_CHECKING:
    from pathlib import Path

WEIGHTS_FOLDER = "sp500_weights"
WEIGHT_COLUMN = "weight_pct_mid"


def load_start_of_year_weights(snapshot_dir: Path, year: int) -> IndexWeights | None:
    """The weights at the last close of `year - 1`, or None when no file covers that year."""
    folder = snapshot_dir / WEIGHTS_FOLDER
    candidates = sorted(folder.glob(f"megacap_weights_{year - 1}-12-*.csv"))
    if not candidates:
        return None
    path = candidates[-1]
    as_of = date.fromisoformat(path.stem.removeprefix("megacap_weights_"))
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: cannot be read as CSV ({err})") from err
    if "ticker" not in frame.columns or WEIGHT_COLUMN not in frame.columns:
        raise DataError(f"{path}: needs columns 'ticker' and '{WEIGHT_COLUMN}'")
    weights = pd.to_numeric(frame[WEIGHT_COLUMN], errors="coerce")
    bad = weights.isna() | (weights <= 0) | (weights >= 100)
    if bad.any():
        row = int(bad.to_numpy().argmax())
        raise DataError(f"{path}: line {row + 2}: weight must be a percentage in (0, 100)")
    return IndexWeights(
        as_of=as_of,
        weights={str(t): float(w) / 100 for t, w in zip(frame["ticker"], weights, strict=True)},
        source=f"{path.name}, estimated from SPDR SPY holdings (see PROVENANCE.md)",
    )
