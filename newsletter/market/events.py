"""Scheduled macro events (FOMC decisions, CPI releases, jobs reports) from a dated CSV file (see KEY_DATES.md)."""

from __future__ import annotations

import csv
from datetime import date
from typing import TYPE_CHECKING

from newsletter.errors import DataError
from newsletter.weekstats import KeyDate

if TYPE_CHECKING:
    from pathlib import Path


def load_key_dates(path: Path) -> tuple[KeyDate, ...]:
    """Every event in `path`, sorted by date; a bad row is named by file and line."""
    try:
        handle = path.open(encoding="utf-8", newline="")
    except OSError as err:
        raise DataError(
            f"cannot read key dates file {path}: {err.strerror} (check market.key_dates_file "
            "in the config, or remove it to use the bundled dates)"
        ) from err
    events = []
    with handle:
        reader = csv.DictReader(handle)
        for row in reader:
            try:
                day = date.fromisoformat(row["date"] or "")
            except (KeyError, ValueError) as err:
                raise DataError(
                    f"{path}: line {reader.line_num}: bad date {row.get('date')!r} "
                    "(write it as YYYY-MM-DD)"
                ) from err
            kind, label = (row.get("kind") or "").strip(), (row.get("label") or "").strip()
            if not kind or not label:
                raise DataError(f"{path}: line {reader.line_num}: needs a kind and a label")
            events.append(KeyDate(day=day, kind=kind, label=label))
    return tuple(sorted(events, key=lambda event: (event.day, event.kind)))
