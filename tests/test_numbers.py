"""Every figure in the email against values computed here from the raw snapshot CSVs.

The expected values use plain Python over the gzip CSV rows (conftest.read_raw_closes), never
the package's functions; the article's rounded figures are checked with the tolerance the data
allows, and where the snapshot differs from the article the assertion says by how much.
"""

from __future__ import annotations

import csv
import gzip
import json
import re
import shutil
import statistics
from datetime import date
from pathlib import Path

import pytest

from newsletter.app.build import BuildOptions, build_issue
from newsletter.app.built import BuiltIssue
from newsletter.config import load_config
from newsletter.errors import DataQualityError, InsufficientDataError

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
def built(build_day) -> dict[str, BuiltIssue]:
    """The issues of 2024-07-16 and 2024-07-17."""
    return {day: build_day(day) for day in ("2024-07-16", "2024-07-17")}


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
    # before 16 Jun (a Sunday) = Fri 14 Jun; 3M: 16 Apr; YTD: last session of 2023 = Fri 29 Dec;
    # 1Y: 14 Jul 2023 (16 Jul 2023 was a Sunday).
    bases = {
        "1W": "2024-07-12",
        "1M": "2024-06-14",
        "3M": "2024-04-16",
        "YTD": "2023-12-29",
        "1Y": "2023-07-14",
    }
    assert {k: v.isoformat() for k, v in stats.bases.items() if k != "7D"} == bases
    for ticker in [*SCOREBOARD, "^GSPC", "^RUT", "^NDX"]:
        for period, base in bases.items():
            expected = ret(ticker, base, "2024-07-16")
            assert stats.returns[ticker][period] == pytest.approx(expected, abs=1e-12), (
                ticker,
                period,
            )
    # PROVENANCE.md's sanity figures: SPY +19.59 % total return and ^GSPC +18.81 % YTD at 2024-07-16.
    assert stats.returns["SPY"]["YTD"] == pytest.approx(0.1959, abs=5e-5)
    assert stats.returns["^GSPC"]["YTD"] == pytest.approx(0.1881, abs=5e-5)


def test_receipts_name_the_inputs(built):
    receipts = built["2024-07-16"].stats.receipts
    spy_week = receipts["returns"]["SPY"]["1W"]
    closes = read_raw_closes("SPY")
    assert spy_week == {
        "ticker": "SPY",
        "field": "adj_close",
        "from": ["2024-07-12", closes["2024-07-12"]],
        "to": ["2024-07-16", closes["2024-07-16"]],
    }
    assert receipts["spread_5d"]["long"]["from"] == [
        "2024-07-09",
        read_raw_closes("IWM")["2024-07-09"],
    ]
    assert (
        receipts["spread_5d"]["distribution"]["windows"] == built["2024-07-16"].stats.spread_5d.of
    )


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
    # The article: "fallen 13% over the past seven days"; the snapshot gives -12.54 % from the
    # 2024-07-10 close, 0.46 points less than the article's rounded figure.
    seven = ret("NVDA", "2024-07-10", "2024-07-17", "close")
    assert nvda.seven_day == pytest.approx(seven, abs=1e-12)
    assert nvda.seven_day == pytest.approx(-0.1254, abs=5e-5)
    # "while the other stocks have fallen about 7% on average (with an average return of 23%
    # year to date)": the snapshot gives -6.3 % and +24.1 % for the five others, equal-weighted.
    others = [m for m in conc.members if m.name != "NVDA"]
    assert conc.lead == "NVDA"
    assert conc.others_seven_day_mean == pytest.approx(
        sum(m.seven_day for m in others) / 5, abs=1e-12
    )
    weights = _weights()
    googl = [weights[t] * ret(t, "2024-07-10", "2024-07-17", "close") for t in ("GOOGL", "GOOG")]
    independent = [
        ret(t, "2024-07-10", "2024-07-17", "close") for t in ("MSFT", "AAPL", "AMZN", "META")
    ]
    independent.append(sum(googl) / (weights["GOOGL"] + weights["GOOG"]))
    assert conc.others_seven_day_mean == pytest.approx(sum(independent) / 5, abs=1e-12)
    assert conc.others_seven_day_mean == pytest.approx(-0.063, abs=5e-4)
    assert conc.others_ytd_mean == pytest.approx(0.241, abs=5e-4)


def test_stats_json_matches_the_contract(built):
    data = json.loads((built["2024-07-16"].folder / "stats.json").read_text())
    assert data["as_of"] == "2024-07-16"
    assert data["prev_close"] == "2024-07-12"
    assert set(data["returns"]) == {*SCOREBOARD, "^GSPC", "^RUT", "^NDX"}
    assert set(data["returns"]["SPY"]) == {"1W", "1M", "3M", "YTD", "1Y"}
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
    # The email tells the week by the longest history: ^RUT - ^GSPC, price, one decimal.
    start = sessions_until("^GSPC", "2024-07-16")[-6]
    index = ret("^RUT", start, "2024-07-16", "close") - ret("^GSPC", start, "2024-07-16", "close")
    spread_pp = f"+{index * 100:.1f} pp"
    assert spread_pp == "+9.9 pp"
    assert spread_pp in text
    assert f"by {index * 100:.1f} points" in issue.rendered.subject
    assert f"+{ret('IWM', '2024-07-12', '2024-07-16') * 100:.2f}%" in text
    assert "56.2%" in text  # the six mega caps' share, 10.57 pp of +18.81 %
    assert "Record rotation" in issue.rendered.subject
    assert "+9.89 pp" not in text, "the funds' spread is stats.json's, not a second number"


def _snapshot_without(tmp_path: Path, ticker: str, day: str) -> Path:
    snapshot = tmp_path / "snapshot"
    shutil.copytree(SNAPSHOT, snapshot)
    with gzip.open(SNAPSHOT / f"{ticker}.csv.gz", "rt") as handle:
        rows = [line for line in handle if not line.startswith(f"{day},")]
    (snapshot / f"{ticker}.csv.gz").unlink()
    (snapshot / f"{ticker}.csv").write_text("".join(rows))
    return snapshot


def test_a_gap_in_a_scoreboard_ticker_leaves_that_figure_out_and_says_so(tmp_path, write_config):
    snapshot = _snapshot_without(tmp_path, "QQQ", "2024-07-12")
    stats = build_issue(
        load_config(write_config(market={"snapshot_dir": str(snapshot)})), date(2024, 7, 16)
    ).stats
    assert stats.returns["QQQ"]["1W"] is None
    assert stats.returns["QQQ"]["YTD"] == pytest.approx(
        ret("QQQ", "2023-12-29", "2024-07-16"), abs=1e-12
    )
    assert "QQQ has no close on 2024-07-12: its 1W return is left out" in stats.notes


def test_a_gap_in_the_headline_pair_is_an_error_naming_the_window(tmp_path, write_config):
    snapshot = _snapshot_without(tmp_path, "IWM", "2024-07-12")
    config = load_config(write_config(market={"snapshot_dir": str(snapshot)}))
    with pytest.raises(DataQualityError) as err:
        build_issue(config, date(2024, 7, 16))
    assert str(err.value) == (
        "the prices for the week to 2024-07-16 failed the data-quality gate: IWM: no close on "
        "2024-07-12 (this week); repair the data (newsletter data refresh), pick another --as-of, "
        "or build anyway with --allow-stale"
    )
    # The gate cannot be talked past a number that cannot be computed at all:
    with pytest.raises(InsufficientDataError, match="IWM or SPY has no close on 2024-07-12"):
        build_issue(config, date(2024, 7, 16), options=BuildOptions(allow_stale=True))
    snapshot = _snapshot_without(tmp_path / "second", "IWM", "2024-07-09")
    config = load_config(write_config(market={"snapshot_dir": str(snapshot)}))
    with pytest.raises(InsufficientDataError) as err:
        build_issue(config, date(2024, 7, 16))
    assert str(err.value) == (
        "IWM and SPY lack a full 5-session window ending 2024-07-16; pick another --as-of or repair the data"
    )


def _index_spreads(until: str) -> dict[str, float]:
    rut, spx = read_raw_closes("^RUT", "close"), read_raw_closes("^GSPC", "close")
    days = sorted(d for d in rut if d in spx and d <= until)
    return {
        days[i]: (rut[days[i]] / rut[days[i - 5]] - 1) - (spx[days[i]] / spx[days[i - 5]] - 1)
        for i in range(5, len(days))
    }


def test_the_long_history_spread_is_the_record_since_1987(built):
    spread = built["2024-07-16"].stats.spread_5d_index
    spreads = _index_spreads("2024-07-16")
    value = spreads["2024-07-16"]
    # PROVENANCE.md: RUT +11.54 %, GSPC +1.62 %, spread +9.92 pp for the window ending 2024-07-16.
    assert value == pytest.approx(0.0992, abs=5e-5)
    assert spread.value == pytest.approx(value, abs=1e-12)
    assert (spread.long, spread.short, spread.basis) == ("^RUT", "^GSPC", "price")
    assert spread.of == len(spreads)
    assert spread.rank == 1
    assert spread.history_start == date(1987, 9, 10)
    values = list(spreads.values())
    assert spread.zscore == pytest.approx(
        (value - statistics.mean(values)) / statistics.stdev(values), rel=1e-9
    )
    # Distinct episodes, as PROVENANCE.md lists them (peaks computed there with a wider gap):
    # 1987-10-19 +8.86 pp, 2020-03-25 +8.80 pp, 2020-04-29 +8.24 pp, 2000-05-01 +8.07 pp.
    assert spread.episode_rank == 1
    assert spread.episode_largest_since is None
    top = [(d.isoformat(), round(v, 4)) for d, v in spread.top_episodes]
    assert top == [
        ("2024-07-16", round(value, 4)),
        ("1987-10-19", 0.0886),
        ("2020-03-25", 0.088),
        ("2020-04-29", 0.0824),
        ("2000-05-01", 0.0807),
    ]
    for day, _ in top[1:]:
        assert spreads[day] == pytest.approx(dict(top)[day], abs=5e-5)


def test_episodes_count_a_run_of_overlapping_windows_once(built):
    # As of 2024-07-17 the window ending 07-16 (+9.89 pp) overlaps this week's (+10.06 pp): among
    # windows it is a second entry, among episodes it belongs to this one.
    spread = built["2024-07-17"].stats.spread_5d
    assert spread.rank == 1
    assert [d.isoformat() for d, _ in spread.top_episodes[:4]] == [
        "2024-07-17",
        "2020-04-29",
        "2016-11-14",
        "2020-03-25",
    ]


def test_a_window_inside_the_run_of_a_larger_one_is_not_a_new_episode(write_config):
    """2024-11-08: the window overlaps the larger one ending two days earlier (the election
    rally), so it gets no episode rank and no "most since" of its own; its window-level
    "largest since" is the latest earlier window at least as large."""
    config = load_config(write_config())
    spread = build_issue(config, date(2024, 11, 8)).stats.spread_5d
    spreads = _all_spreads("2024-11-08")
    days = sorted(spreads)
    now = days.index("2024-11-08")
    value = spreads["2024-11-08"]
    overlapping = [d for i, d in enumerate(days) if now - 5 < i < now and spreads[d] >= value]
    assert overlapping, "the premise: an earlier overlapping window at least as large"
    assert spread.new_episode is False
    assert spread.episode_rank is None and spread.episode_largest_since is None
    assert spread.largest_since.isoformat() == max(d for d in days[:now] if spreads[d] >= value)


def test_relative_strength(built):
    rs = built["2024-07-16"].stats.relative_strength
    iwm, spy = read_raw_closes("IWM"), read_raw_closes("SPY")
    days = sorted(d for d in iwm if d in spy and d <= "2024-07-16")
    ratio = [iwm[d] / spy[d] for d in days]
    assert rs.ratio == pytest.approx(ratio[-1], rel=1e-12)
    assert rs.sma50 == pytest.approx(statistics.mean(ratio[-50:]), rel=1e-12)
    assert rs.sma200 == pytest.approx(statistics.mean(ratio[-200:]), rel=1e-12)
    assert rs.vs_sma200 == pytest.approx(ratio[-1] / statistics.mean(ratio[-200:]) - 1, rel=1e-9)
    year = ratio[-252:]
    assert rs.high_52w == pytest.approx(max(year), rel=1e-12)
    assert rs.high_52w_date.isoformat() == days[-252:][year.index(max(year))]
    assert rs.low_52w_date.isoformat() == days[-252:][year.index(min(year))]
    assert rs.week_change == pytest.approx(
        ratio[-1] / (iwm["2024-07-12"] / spy["2024-07-12"]) - 1, rel=1e-9
    )


SECTORS = ["XLB", "XLC", "XLE", "XLF", "XLI", "XLK", "XLP", "XLRE", "XLU", "XLV", "XLY"]


def test_breadth_and_sectors(built):
    breadth = built["2024-07-17"].stats.breadth
    week = {t: ret(t, "2024-07-12", "2024-07-17") for t in [*SECTORS, "SPY", "RSP"]}
    assert breadth.equal_minus_cap_week == pytest.approx(week["RSP"] - week["SPY"], abs=1e-12)
    expected = sorted(SECTORS, key=lambda t: week[t], reverse=True)
    assert [s.ticker for s in breadth.sectors] == expected
    assert expected[0] == "XLF" and expected[-1] == "XLK"  # financials led, technology lagged
    assert breadth.beat_benchmark == sum(week[t] > week["SPY"] for t in SECTORS)


def test_rates_backdrop(built):
    rates = built["2024-07-16"].stats.rates
    tnx = read_raw_closes("^TNX", "close")
    assert rates.level == tnx["2024-07-16"]
    assert rates.change_bp == pytest.approx((tnx["2024-07-16"] - tnx["2024-07-12"]) * 100, abs=1e-9)


def test_key_dates_ahead(built):
    events = [(e.day.isoformat(), e.kind) for e in built["2024-07-17"].stats.key_dates]
    # FOMC on the Fed's calendar; the July jobs report and CPI on BLS's 2024 schedules.
    assert events == [("2024-07-31", "FOMC"), ("2024-08-02", "JOBS"), ("2024-08-14", "CPI")]


def _numbers_in(document) -> set[str]:
    """Every number stats.json holds, as the prose could round it, and every date part."""
    found: set[str] = set()

    def walk(value):
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, float):
            found.update(
                {f"{abs(value) * 100:.1f}", f"{abs(value) * 100:.2f}", f"{abs(value):.2f}"}
            )
        elif isinstance(value, int):
            found.update({str(value), f"{value:,}"})
        elif isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            found.update({value[:4], str(int(value[8:]))})

    walk(document)
    return found


@pytest.mark.parametrize("day", ["2024-07-16", "2024-07-17"])
def test_every_number_in_the_headline_is_in_stats_json(built, day):
    document = json.loads((built[day].folder / "stats.json").read_text())
    headline = document["headline"]
    assert headline["rule"] == "record"
    assert headline["subject"] == built[day].rendered.subject
    allowed = _numbers_in({k: v for k, v in document.items() if k != "headline"})
    words = re.sub(
        r"S&P 500|Russell 2000|Nasdaq-100", "", headline["subject"] + " " + headline["preheader"]
    )
    for number in re.findall(r"\d[\d,]*(?:\.\d+)?", words):
        assert number in allowed, f"{number} in {words!r} is not a figure in stats.json"
    assert "September 1987" in headline["preheader"]


def test_an_implausible_move_stops_the_build_unless_allowed_and_then_the_email_says_so(
    tmp_path, write_config
):
    snapshot = tmp_path / "snapshot"
    shutil.copytree(SNAPSHOT, snapshot)
    with gzip.open(SNAPSHOT / "SPY.csv.gz", "rt") as handle:
        lines = handle.read().splitlines(keepends=True)
    fields = {line.split(",")[0]: line for line in lines}
    row = fields["2024-07-15"].split(",")
    row[4], row[5] = str(float(row[4]) * 1.5), str(float(row[5]) * 1.5)  # a 50 % jump: a bad print
    (snapshot / "SPY.csv.gz").unlink()
    (snapshot / "SPY.csv").write_text(
        "".join(",".join(row) if line is fields["2024-07-15"] else line for line in lines)
    )
    config = load_config(write_config(market={"snapshot_dir": str(snapshot)}))
    with pytest.raises(
        DataQualityError,
        match=r"SPY: moved \+50\.\d% on 2024-07-15, beyond the ±20% sanity band \(and 1 more\)",
    ):
        build_issue(config, date(2024, 7, 16))
    built = build_issue(config, date(2024, 7, 16), options=BuildOptions(allow_stale=True))
    quality = json.loads((built.folder / "stats.json").read_text())["data_quality"]
    assert quality["ok"] is False and quality["allowed_by_editor"] is True
    assert quality["problems"][0].startswith("SPY: moved +50.")
    assert quality["problems"][1].startswith(
        "SPY: moved -32.9% on 2024-07-16"
    )  # and back the next day
    assert "Data warning: SPY: moved +50." in built.rendered.html
    assert "!! Data warning: SPY: moved +50." in built.rendered.text
