"""The snapshot source names bad rows; the calendar resolves sessions like the NYSE does."""

from __future__ import annotations

import gzip
from datetime import date

import pytest

from newsletter.errors import DataError
from newsletter.market.calendar import TradingCalendar
from newsletter.market.snapshot import SnapshotSource

from .conftest import SNAPSHOT

HEADER = "date,open,high,low,close,adj_close,volume\n"


def write(tmp_path, name, body):
    (tmp_path / name).write_text(HEADER + body)
    return SnapshotSource(tmp_path)


@pytest.mark.parametrize(
    ("body", "line", "what"),
    [
        ("2024-01-02,1,1,1,10,10,5\n2024-01-03,1,1,1,abc,10,5\n", 3, "bad row"),
        ("2024-01-02,1,1,1,10,10,5\n2024-13-03,1,1,1,10,10,5\n", 3, "bad row"),
        ("2024-01-02,1,1,1,10,10,5\n2024-01-03,1,1,1,-4,10,5\n", 3, "bad row"),
        ("2024-01-02,1,1,1,10,,5\n", 2, "bad row"),
        ("2024-01-02,1,1,1,10,10,5\n2024-01-02,1,1,1,10,10,5\n", 3, "duplicate date 2024-01-02"),
        (
            "2024-01-03,1,1,1,10,10,5\n2024-01-02,1,1,1,10,10,5\n",
            3,
            "date 2024-01-02 is out of order",
        ),
    ],
)
def test_a_bad_csv_row_is_named_by_file_and_line(tmp_path, body, line, what):
    source = write(tmp_path, "SPY.csv", body)
    with pytest.raises(DataError) as err:
        source.fetch(["SPY"])
    assert str(err.value).startswith(f"{tmp_path / 'SPY.csv'}: line {line}: {what}")


def test_missing_ticker_file_says_what_to_do(tmp_path):
    with pytest.raises(
        DataError, match=r"no price file for \^RUT in .* \(expected RUT.csv\); add the file"
    ):
        SnapshotSource(tmp_path).fetch(["^RUT"])


def test_missing_column_is_named(tmp_path):
    (tmp_path / "SPY.csv").write_text("date,close\n2024-01-02,10\n")
    with pytest.raises(DataError, match="missing column"):
        SnapshotSource(tmp_path).fetch(["SPY"])


def test_bundled_snapshot_reads_every_row():
    prices = SnapshotSource(SNAPSHOT).fetch(["SPY", "^GSPC"])
    with gzip.open(SNAPSHOT / "SPY.csv.gz", "rt") as handle:
        rows = sum(1 for _ in handle) - 1
    assert prices.adjusted["SPY"].count() == rows
    assert prices.raw.loc["2024-07-16", "SPY"] == pytest.approx(564.86, abs=1e-4)
    assert prices.raw.loc["2024-07-16", "^GSPC"] == pytest.approx(5667.20, abs=0.01)


@pytest.fixture(scope="module")
def calendar():
    return TradingCalendar(date(2020, 1, 1), date(2026, 12, 31))


@pytest.mark.parametrize(
    ("requested", "session"),
    [
        (date(2024, 7, 4), date(2024, 7, 3)),  # Independence Day
        (date(2024, 7, 14), date(2024, 7, 12)),  # Sunday
        (date(2024, 3, 29), date(2024, 3, 28)),  # Good Friday
        (date(2024, 11, 29), date(2024, 11, 29)),  # half day after Thanksgiving is a session
        (date(2025, 1, 9), date(2025, 1, 8)),  # national day of mourning (President Carter)
    ],
)
def test_as_of_resolves_to_the_last_session_on_or_before(calendar, requested, session):
    assert calendar.session_on_or_before(requested) == session


def test_period_bases_step_over_holidays(calendar):
    # The week after Good Friday: the previous week's last session is Thursday 28 March.
    dates = calendar.report_dates(date(2024, 4, 5))
    assert dates.prev_close == date(2024, 3, 28)
    assert dates.month_base == date(2024, 3, 5)
    assert dates.ytd_base == date(2023, 12, 29)
    # 28 March minus a calendar month is Wednesday 28 February, a session.
    assert calendar.report_dates(date(2024, 3, 28)).month_base == date(2024, 2, 28)
    assert calendar.report_dates(date(2024, 3, 28)).prev_close == date(2024, 3, 22)
