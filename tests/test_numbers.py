"""Every figure in the email against values computed here from the raw snapshot CSVs.

The expected values use plain Python over the gzip CSV rows (conftest.read_raw_closes), never
the package's functions; the article's rounded figures are checked with the tolerance the data
allows, and where the snapshot differs from the article the assertion says by how much.
"""

from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path

import pytest

from newsletter.config import load_config
from newsletter.pipeline import BuiltIssue, build_issue

from .conftest import SNAPSHOT, read_raw_closes

SCOREBOARD = ["SPY", "IWM", "QQQ", "RSP", "DIA"]
MEGACAPS = {
    "NVDA": ["NVDA"],
    "MSFT": ["MSFT"],
    "AAPL": ["AAPL"],
    "GOOGL+GOOG": ["GOOGL", "GOOG"],
    "AMZN": ["AMZN"],
    "META": ["META"],
}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, BuiltIssue]:
    """The issues of 2024-07-16 and 2024-07-17, built once for this module."""
    root = tmp_path_factory.mktemp("numbers")
    config_path = root / "config.yaml"
    repo = Path(__file__).resolve().parent.parent
    config_path.write_text(
        f"templates:\n  dir: {repo / 'templates'}\npaths:\n  var_dir: {root / 'var'}\n"
    )
    config = load_config(config_path)
    return {
        day: build_issue(config, date.fromisoformat(day)) for day in ("2024-07-16", "2024-07-17")
    }


def sessions_until(ticker: str, day: str) -> list[str]:
    return sorted(d for d in read_raw_closes(ticker) if d <= day)


def ret(ticker: str, start: str, end: str, column: str = "adj_close") -> float:
    closes = read_raw_closes(ticker, column)
    return closes[end] / closes[start] - 1


def test_five_session_spread_as_of_2024_07_16(built):
    spread = built["2024-07-16"].stats.spread_5d
    days = sessions_until("IWM", "2024-07-16")
    start = days[-6]
    assert start == "2024-07-09"
    iwm, spy = ret("IWM", start, "2024-07-16"), ret("SPY", start, "2024-07-16")
    assert iwm == pytest.approx(0.1152, abs=5e-5)
    assert spy == pytest.approx(0.0163, abs=5e-5)
    assert spread.long_return == pytest.approx(iwm, abs=1e-12)
    assert spread.short_return == pytest.approx(spy, abs=1e-12)
    assert spread.value == pytest.approx(iwm - spy, abs=1e-12)
    assert spread.value == pytest.approx(0.0989, abs=5e-5)
    assert spread.window_start == date(2024, 7, 9)


def _all_spreads(until: str) -> dict[str, float]:
    iwm, spy = read_raw_closes("IWM"), read_raw_closes("SPY")
    days = sorted(d for d in iwm if d in spy and d <= until)
    return {
        days[i]: (iwm[days[i]] / iwm[days[i - 5]] - 1) - (spy[days[i]] / spy[days[i - 5]] - 1)
        for i in range(5, len(days))
    }


@pytest.mark.parametrize("day", ["2024-07-16", "2024-07-17"])
def test_spread_rank_uses_no_data_after_the_as_of_session(built, day):
    spread = built[day].stats.spread_5d
    spreads = _all_spreads(day)
    value = spreads[day]
    assert spread.of == len(spreads)
    assert spread.rank == 1 + sum(v > value for v in spreads.values())
    assert spread.rank == 1  # the record in IWM's history up to each of these sessions
    assert spread.percentile == pytest.approx(100.0)
    assert spread.largest_since is None
    assert spread.history_start == date(2000, 5, 26)


def test_largest_since_is_the_latest_earlier_session_at_least_as_large(write_config):
    config = load_config(write_config())
    spread = build_issue(config, date(2024, 11, 8)).stats.spread_5d
    spreads = _all_spreads("2024-11-08")
    value = spreads["2024-11-08"]
    expected = max(d for d, v in spreads.items() if d < "2024-11-08" and v >= value)
    assert spread.largest_since == date.fromisoformat(expected)
    assert spread.rank == 1 + sum(v > value for v in spreads.values())
    assert spread.percentile == pytest.approx(
        100 * sum(v <= value for v in spreads.values()) / len(spreads)
    )


def test_scoreboard_returns_use_the_documented_bases(built):
    stats = built["2024-07-16"].stats
    # Week: last session of the previous calendar week (Fri 12 Jul); 1M: last session on or
    # before 16 Jun (a Sunday) = Fri 14 Jun; YTD: last session of 2023 = Fri 29 Dec.
    assert (stats.prev_close, stats.month_base, stats.ytd_base) == (
        date(2024, 7, 12),
        date(2024, 6, 14),
        date(2023, 12, 29),
    )
    for ticker in SCOREBOARD:
        r = stats.returns[ticker]
        assert r.week == pytest.approx(ret(ticker, "2024-07-12", "2024-07-16"), abs=1e-12)
        assert r.month == pytest.approx(ret(ticker, "2024-06-14", "2024-07-16"), abs=1e-12)
        assert r.ytd == pytest.approx(ret(ticker, "2023-12-29", "2024-07-16"), abs=1e-12)
    # PROVENANCE.md's sanity figures: SPY +19.59 % total return YTD at 2024-07-16.
    assert stats.returns["SPY"].ytd == pytest.approx(0.1959, abs=5e-5)


def _weights() -> dict[str, float]:
    path = SNAPSHOT / "sp500_weights" / "megacap_weights_2023-12-29.csv"
    with path.open(newline="") as handle:
        return {row["ticker"]: float(row["weight_pct_mid"]) / 100 for row in csv.DictReader(handle)}


@pytest.mark.parametrize(
    ("day", "nvda_share", "group_share"),
    # PROVENANCE.md's ranges from the two weight estimates: 25.2-25.4 % / 55.9-56.4 % at 07-16,
    # 24.6-24.8 % / 54.4-54.9 % at 07-17. The article says "more than a quarter" and 55 %.
    [
        ("2024-07-16", (0.252, 0.254), (0.559, 0.564)),
        ("2024-07-17", (0.246, 0.248), (0.544, 0.549)),
    ],
)
def test_mega_cap_contributions(built, day, nvda_share, group_share):
    conc = built[day].stats.concentration
    assert conc is not None
    weights = _weights()
    index_ytd = ret("^GSPC", "2023-12-29", day, "close")
    assert conc.index_ytd == pytest.approx(index_ytd, abs=1e-12)
    total = 0.0
    by_name = {m.name: m for m in conc.members}
    for name, tickers in MEGACAPS.items():
        contribution = sum(weights[t] * ret(t, "2023-12-29", day, "close") for t in tickers)
        total += contribution
        assert by_name[name].contribution == pytest.approx(contribution, abs=1e-12)
        assert by_name[name].share == pytest.approx(contribution / index_ytd, abs=1e-12)
    assert conc.group_share == pytest.approx(total / index_ytd, abs=1e-12)
    assert nvda_share[0] <= by_name["NVDA"].share <= nvda_share[1]
    assert group_share[0] <= conc.group_share <= group_share[1]
    assert conc.weights_as_of == date(2023, 12, 29)


def test_nvda_ytd_as_of_2024_07_17(built):
    conc = built["2024-07-17"].stats.concentration
    nvda = next(m for m in conc.members if m.name == "NVDA")
    expected = ret("NVDA", "2023-12-29", "2024-07-17", "close")
    assert nvda.ytd == pytest.approx(expected, abs=1e-12)
    # The article: "a 138% gain year to date"; the snapshot gives +138.26 % (price).
    assert nvda.ytd == pytest.approx(1.3826, abs=5e-5)


def test_stats_json_matches_the_contract(built):
    data = json.loads((built["2024-07-16"].folder / "stats.json").read_text())
    assert data["as_of"] == "2024-07-16"
    assert data["prev_close"] == "2024-07-12"
    assert set(data["returns"]) == set(SCOREBOARD)
    assert set(data["returns"]["SPY"]) >= {"1W", "1M", "YTD"}
    assert set(data["spread_5d"]) >= {
        "long",
        "short",
        "value",
        "rank",
        "of",
        "percentile",
        "largest_since",
        "history_start",
    }
    conc = data["concentration"]
    assert set(conc) >= {"index", "index_ytd", "weights_as_of", "members", "group_share"}
    assert set(conc["members"]["NVDA"]) >= {"weight", "ytd", "contribution", "share"}
    assert data["spread_5d"]["value"] == pytest.approx(
        ret("IWM", "2024-07-09", "2024-07-16") - ret("SPY", "2024-07-09", "2024-07-16")
    )


def test_every_figure_in_the_text_part_comes_from_the_stats(built):
    issue = built["2024-07-16"]
    text = issue.rendered.text
    spread_pp = f"+{issue.stats.spread_5d.value * 100:.2f} pp"
    assert spread_pp == "+9.89 pp"
    assert spread_pp in text
    assert f"+{ret('IWM', '2024-07-12', '2024-07-16') * 100:.2f}%" in text
    assert "56.2%" in text  # the six mega caps' share, 10.57 pp of +18.81 %
    assert "Record rotation" in issue.rendered.subject


def test_a_gap_in_the_data_is_an_error_naming_ticker_and_session(tmp_path, write_config):
    import gzip  # noqa: PLC0415
    import shutil  # noqa: PLC0415

    snapshot = tmp_path / "snapshot"
    shutil.copytree(SNAPSHOT, snapshot)
    with gzip.open(SNAPSHOT / "QQQ.csv.gz", "rt") as handle:
        rows = [line for line in handle if not line.startswith("2024-07-12,")]
    (snapshot / "QQQ.csv.gz").unlink()
    (snapshot / "QQQ.csv").write_text("".join(rows))
    config = load_config(write_config(market={"snapshot_dir": str(snapshot)}))
    from newsletter.errors import InsufficientDataError  # noqa: PLC0415

    with pytest.raises(InsufficientDataError) as err:
        build_issue(config, date(2024, 7, 16))
    assert str(err.value) == (
        "QQQ has no price for session 2024-07-12, which this issue needs; pick another --as-of or repair the data"
    )
