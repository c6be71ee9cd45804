"""Each statistic of newsletter.stats on small synthetic frames, one table per statistic: the
expected values come from the closes through plain Python, never the package's own helpers."""

from __future__ import annotations

import math
import statistics
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from newsletter.config import StatsSection
from newsletter.errors import InsufficientDataError
from newsletter.models import EstimateSnapshot, IndexWeights, Prices, ReportDates
from newsletter.stats.breadth import compute_breadth, compute_rates
from newsletter.stats.concentration import compute_concentration
from newsletter.stats.estimates import compute_estimates
from newsletter.stats.returns import StatsNotes, compute_returns, period_return, price_at
from newsletter.stats.spread import compute_spread, episode_peaks
from newsletter.stats.strength import compute_relative_strength

NAN = float("nan")
START = pd.Timestamp("2024-01-02")  # a Tuesday: session i is the i-th business day from here


def day(i: int) -> date:
    return (START + pd.offsets.BDay(i)).date()


def make_prices(adj: dict[str, list[float]], raw: dict[str, list[float]] | None = None) -> Prices:
    index = pd.bdate_range(START, periods=len(next(iter(adj.values()))))
    return Prices(pd.DataFrame(adj, index=index), pd.DataFrame(raw or adj, index=index), "t")


def close(want):
    """pytest.approx for floats (and lists of them); exact equality for dates, ints, None."""
    floats = isinstance(want, float) or (isinstance(want, list) and isinstance(want[0], float))
    return pytest.approx(want, abs=1e-12) if floats else want


def plain_return(closes: list[float], start: int, end: int) -> float | None:
    missing = math.isnan(closes[start]) or math.isnan(closes[end])
    return None if missing else closes[end] / closes[start] - 1


# --- period_return and compute_returns -----------------------------------------------------
RET = {
    "AAA": [100.0, 101.0, 99.5, 102.0, 103.5, 104.0, 102.5, 105.0, 106.0, 104.5, 107.0, 108.5],
    "BBB": [50.0, 50.5, NAN, 51.0, 52.0, 51.5, 52.5, 53.0, 52.0, 54.0, 55.0, 54.5],
    "CCC": [20.0, 20.2, 20.4, 20.1, 20.6, 20.8, 21.0, 20.9, 21.3, 21.5, 21.4, NAN],
}
# sessions of as_of, prev_close, seven_days_base, month, quarter, ytd and year bases
RET_DATES = ReportDates(*map(day, (11, 6, 5, 4, 2, 1, 0)))
BASE_AT = {"1W": 6, "1M": 4, "3M": 2, "YTD": 1, "1Y": 0}
PERIOD_CASES = {  # id: (ticker, start session, end session)
    "AAA-week": ("AAA", 6, 11),
    "AAA-whole-frame": ("AAA", 0, 11),
    "AAA-one-session": ("AAA", 3, 4),
    "AAA-backwards": ("AAA", 8, 6),
    "BBB-around-gap": ("BBB", 1, 9),
    "BBB-missing-start": ("BBB", 2, 11),
    "CCC-missing-end": ("CCC", 0, 11),
}


@pytest.mark.parametrize(("ticker", "start", "end"), PERIOD_CASES.values(), ids=PERIOD_CASES)
def test_period_return(ticker, start, end):
    series = make_prices(RET).adjusted[ticker]
    expected = plain_return(RET[ticker], start, end)
    if expected is None:
        assert None in (price_at(series, day(start)), price_at(series, day(end)))
        with pytest.raises(InsufficientDataError, match=ticker):
            period_return(series, day(start), day(end))
    else:
        assert period_return(series, day(start), day(end)) == close(expected)


RETURN_CASES = {  # id: (ticker, period, the note its missing close leaves)
    **{f"AAA-{p}": ("AAA", p, None) for p in BASE_AT},
    **{f"BBB-{p}": ("BBB", p, None) for p in ("1W", "YTD")},
    "BBB-3M-gap": ("BBB", "3M", f"BBB has no close on {day(2)}: its 3M return is left out"),
    "CCC-as-of-gap": ("CCC", "1W", f"CCC has no close on {day(11)}: its returns are left out"),
}


@pytest.mark.parametrize(("ticker", "period", "note"), RETURN_CASES.values(), ids=RETURN_CASES)
def test_compute_returns(ticker, period, note):
    notes, receipts = StatsNotes(), {}
    table = compute_returns(make_prices(RET), list(RET), RET_DATES, notes, receipts)
    assert table[ticker][period] == close(plain_return(RET[ticker], BASE_AT[period], 11))
    assert note is None or note in notes.lines
    assert receipts["returns"][ticker][period]["from"][0] == day(BASE_AT[period]).isoformat()


# --- compute_spread and episode_peaks -----------------------------------------------------
def plain_peaks(windows: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """Largest first, each window ending >= 5 sessions away from every peak chosen before."""
    peaks: list[tuple[int, float]] = []
    for end, value in sorted(windows, key=lambda w: -w[1]):
        if all(abs(end - p) >= 5 for p, _ in peaks):
            peaks.append((end, value))
    return peaks


def plain_spread(long: list[float], short: list[float]) -> dict[str, object]:
    windows = [  # (end session, spread) of every 5-session window whose four closes exist
        (i, (long[i] / long[i - 5] - 1) - (short[i] / short[i - 5] - 1))
        for i in range(5, len(long))
        if not math.isnan(long[i] + long[i - 5] + short[i] + short[i - 5])
    ]
    now, value = windows[-1]
    values = [v for _, v in windows]
    earlier = [end for end, v in windows[:-1] if v >= value]
    peaks = plain_peaks([w for w in windows if w[0] <= now - 5])
    bigger = [end for end, v in peaks if v >= value]
    # A new episode: none of the earlier windows it overlaps (ends 1-4 sessions before) as large.
    new = not any(v >= value for end, v in windows if now - 5 < end < now)

    def after(end: int, n: int) -> float | None:
        if end + n > now or math.isnan(long[end + n] + short[end + n]):
            return None
        return (long[end + n] / long[end] - 1) - (short[end + n] / short[end] - 1)

    return {
        "value": value,
        "long_return": long[now] / long[now - 5] - 1,
        "short_return": short[now] / short[now - 5] - 1,
        "window_start": day(now - 5),
        "rank": 1 + sum(v > value for v in values),
        "of": len(values),
        "percentile": 100 * sum(v <= value for v in values) / len(values),
        "zscore": (value - statistics.fmean(values)) / statistics.stdev(values),
        "largest_since": day(max(earlier)) if earlier else None,
        "history_start": day(0),
        "episode_rank": 1 + sum(v > value for _, v in peaks) if new else None,
        "episodes": len(peaks) + 1 if new else len(plain_peaks(windows[:-1])),
        "episode_largest_since": day(max(bigger)) if bigger and new else None,
        "top_episodes": tuple((day(end), close(v)) for end, v in plain_peaks(windows)[:5]),
        "new_episode": new,
        "aftermath": [(day(end), v, after(end, 21), after(end, 63)) for end, v in peaks[:5]],
    }


SPREAD_CASES = {  # id: (long's jumps by session, session the long lacks, counted by hand)
    "record-10pt-jump-this-week": (
        {59: 1.10, 15: 1.04, 35: 1.06},
        None,
        dict(rank=1, of=55, percentile=100.0, largest_since=None, episode_rank=1),
    ),
    "below-two-earlier": ({59: 1.03, 15: 1.10, 35: 1.05}, None, dict(rank=11, episode_rank=3)),
    "two-sessions-after-a-record": ({57: 1.10, 15: 1.04}, None, dict(episode_rank=1)),
    "negative-week": (
        {59: 0.95, 30: 1.02},
        None,
        dict(rank=55, largest_since=day(58), new_episode=False, episode_rank=None),
    ),
    "inside-the-run-of-a-larger-window": (
        {56: 1.08, 58: 0.99},
        None,
        dict(new_episode=False, episode_rank=None, episode_largest_since=None, rank=3),
    ),
    "gap-drops-two-windows": ({59: 1.10, 20: 1.05}, 30, dict(of=53, rank=1)),
}


@pytest.mark.parametrize(("jumps", "gap", "by_hand"), SPREAD_CASES.values(), ids=SPREAD_CASES)
def test_compute_spread(jumps, gap, by_hand):
    long, short = [100.0], [100.0]  # gently noisy; jumps[i] multiplies the long from session i on
    for i in range(1, 60):
        long.append(long[-1] * (1 + 0.001 * math.sin(1.3 * i)) * jumps.get(i, 1.0))
        short.append(short[-1] * (1 + 0.0005 * math.cos(0.7 * i)))
    long = [NAN if i == gap else c for i, c in enumerate(long)]
    stats = compute_spread(make_prices({"L": long, "S": short}), "L", "S", day(59), "tr").stats
    expected = plain_spread(long, short)
    assert {field: expected[field] for field in by_hand} == by_hand
    aftermath = expected.pop("aftermath")
    for field, want in expected.items():
        assert getattr(stats, field) == close(want), field
    got = [(a.end, a.value, a.next_21, a.next_63) for a in stats.aftermath]
    assert [g[0] for g in got] == [w[0] for w in aftermath]
    for g, w in zip(got, aftermath, strict=True):
        assert g[1:] == pytest.approx(w[1:], abs=1e-12)


PEAK_CASES = {  # id: (spreads, their end sessions (None: 0, 1, 2, ...), peak indices by hand)
    "two-humps": ([1, 2, 3, 2, 1, 0, 0, 0, 0, 0, 5], None, [10, 2]),
    "four-apart-overlap": ([2, 0, 0, 0, 1], None, [0]),
    "five-apart-separate": ([2, 0, 0, 0, 0, 1], None, [0, 5]),
    "later-larger-wins": ([1, 0, 0, 2], None, [3]),
    "ties-earliest-first": ([1, 1, 1, 1, 1, 1], None, [0, 5]),
    "rising-run": (list(range(1, 11)), None, [9, 4]),
    "gap-in-positions": ([3, 1, 2], [0, 4, 5], [0, 2]),
    "single-window": ([0.5], [7], [0]),
}


@pytest.mark.parametrize(("values", "positions", "peaks"), PEAK_CASES.values(), ids=PEAK_CASES)
def test_episode_peaks(values, positions, peaks):
    positions = positions or list(range(len(values)))
    got = episode_peaks(np.array(values, dtype=float), np.array(positions))
    assert got.tolist() == peaks
    reference = plain_peaks(list(zip(positions, values, strict=True)))  # used for compute_spread
    assert [p for p, _ in reference] == [positions[i] for i in peaks]


# --- compute_relative_strength ------------------------------------------------------------
def plain_strength(long: list[float], short: list[float], prev: int) -> dict[str, object]:
    """Averages and range over the last 50/200/252 sessions, skipping sessions without a ratio."""
    n = len(long)
    ratio = {i: long[i] / short[i] for i in range(n) if not math.isnan(long[i] + short[i])}
    last = {k: [i for i in range(n - k, n) if i in ratio] for k in (50, 200, 252)}
    now = ratio[n - 1]
    sma50, sma200 = (statistics.fmean(ratio[i] for i in last[k]) for k in (50, 200))
    high, low = max(last[252], key=ratio.get), min(last[252], key=ratio.get)
    return {
        "ratio": now,
        "week_change": now / ratio[prev] - 1,
        "sma50": sma50,
        "sma200": sma200,
        "vs_sma50": now / sma50 - 1,
        "vs_sma200": now / sma200 - 1,
        "high_52w": ratio[high],
        "high_52w_date": day(high),
        "low_52w": ratio[low],
        "low_52w_date": day(low),
    }


STRENGTH_CASES = [  # sessions, long's bumps by session, session short lacks, high, low by hand
    pytest.param(300, {120: 1.2, 200: 0.7}, None, 120, 200, id="bump-and-dip"),
    pytest.param(300, {}, None, 299, 48, id="trend-only"),
    pytest.param(252, {10: 1.3}, None, 10, 0, id="exactly-252-sessions"),
    pytest.param(300, {47: 1.5}, None, 299, 48, id="high-one-session-outside-year"),
    # A gap is a missing session inside the window, never a reason to reach one session back.
    pytest.param(300, {47: 1.5}, 200, 299, 48, id="gap-in-short-inside-year"),
]


@pytest.mark.parametrize(("n", "bumps", "gap", "high_at", "low_at"), STRENGTH_CASES)
def test_compute_relative_strength(n, bumps, gap, high_at, low_at):
    long = [100 * 1.001**i * bumps.get(i, 1.0) for i in range(n)]
    short = [50 * 1.0003**i if i != gap else NAN for i in range(n)]
    dates = ReportDates(*map(day, (n - 1, n - 6, n - 6, n - 22, n - 64, n - 100, n - 252)))
    got = compute_relative_strength(make_prices({"L": long, "S": short}), "L", "S", dates, {})
    expected = plain_strength(long, short, n - 6)
    assert (expected["high_52w_date"], expected["low_52w_date"]) == (day(high_at), day(low_at))
    for field, want in expected.items():
        assert getattr(got, field) == close(want), field


# --- compute_concentration ----------------------------------------------------------------
CONC_RAW = {
    "IDX": [4000.0, 4040, 4100, 4080, 4150, 4200, 4180, 4300, 4350, 4400],
    "AAA": [100.0, 104, 108, 103, 110, 118, 112, 121, 125, 130],
    "AAB": [98.0, 101, 106, 100, 108, 115, 110, 119, 122, 128],
    "BBB": [300.0, 297, 305, 310, 308, 315, 320, 318, 322, 325],
    "CCC": [50.0, 49, 48, 47.5, 47, 46, 46.5, 45, 44, 43],
}
# total-return closes drift away from the price closes: the contributions must use the raw ones
CONC_ADJ = {t: [c * (1 + 0.003 * i) for i, c in enumerate(cs)] for t, cs in CONC_RAW.items()}
CONC_PRICES = make_prices(CONC_ADJ, CONC_RAW)
CONC_DATES = ReportDates(*map(day, (9, 5, 3, 1, 0, 0, 0)))
WEIGHTS = {"AAA": 0.04, "AAB": 0.035, "BBB": 0.06, "CCC": 0.02}
GROUPS = {"AAA+AAB": ["AAA", "AAB"], "BBB": ["BBB"], "CCC": ["CCC"]}
WEIGHT = {name: sum(WEIGHTS[t] for t in tickers) for name, tickers in GROUPS.items()}


def weighted(name: str, start: int) -> float:
    """Sum of weight * price return from session `start` to the as-of over a member's classes."""
    return sum(WEIGHTS[t] * (CONC_RAW[t][9] / CONC_RAW[t][start] - 1) for t in GROUPS[name])


INDEX_YTD = CONC_RAW["IDX"][9] / CONC_RAW["IDX"][0] - 1
GROUP = sum(weighted(name, 0) for name in GROUPS)
CONC_CASES = {  # attribute path: expected
    "index_ytd": INDEX_YTD,
    **{f"{m}.weight": WEIGHT[m] for m in GROUPS},
    **{f"{m}.contribution": weighted(m, 0) for m in GROUPS},
    **{f"{m}.share": weighted(m, 0) / INDEX_YTD for m in GROUPS},
    **{f"{m}.ytd": weighted(m, 0) / WEIGHT[m] for m in GROUPS},
    **{f"{m}.week": weighted(m, 5) / WEIGHT[m] for m in GROUPS},
    **{f"{m}.seven_day": weighted(m, 3) / WEIGHT[m] for m in GROUPS},
    "AAA+AAB.contribution-by-hand": 0.04 * (130 / 100 - 1) + 0.035 * (128 / 98 - 1),
    "group_contribution": GROUP,
    "group_share": GROUP / INDEX_YTD,
    "lead": max(GROUPS, key=lambda m: weighted(m, 0) / INDEX_YTD),
    "lead-by-hand": "AAA+AAB",  # 2.27 of the index's 10 points; BBB 0.50, CCC -0.28
    "others_seven_day_mean": (weighted("BBB", 3) / 0.06 + weighted("CCC", 3) / 0.02) / 2,
    "others_ytd_mean": (weighted("BBB", 0) / 0.06 + weighted("CCC", 0) / 0.02) / 2,
}


@pytest.mark.parametrize(("path", "want"), CONC_CASES.items(), ids=CONC_CASES)
def test_compute_concentration(path, want):
    notes, weights = StatsNotes(), IndexWeights(day(0), WEIGHTS, "hand")
    spec = StatsSection(concentration_index="IDX", megacaps=list(GROUPS))
    conc = compute_concentration(CONC_PRICES, spec, weights, CONC_DATES, notes=notes, receipts={})
    name, _, field = path.removesuffix("-by-hand").rpartition(".")
    owner = next(m for m in conc.members if m.name == name) if name else conc
    assert getattr(owner, field) == close(want)
    assert (conc.members[0].tickers, notes.lines) == (("AAA", "AAB"), [])


LEFT_OUT = {  # id: (weights' day, configured mega caps, members computed, note)
    "weights-of-another-day": (day(1), list(GROUPS), None, "No start-of-year index weights"),
    "member-without-weight": (day(0), [*GROUPS, "DDD"], list(GROUPS), "DDD is left out"),
}


@pytest.mark.parametrize(("on", "caps", "members", "note"), LEFT_OUT.values(), ids=LEFT_OUT)
def test_concentration_leaves_out(on, caps, members, note):
    notes, spec = StatsNotes(), StatsSection(concentration_index="IDX", megacaps=caps)
    weights = IndexWeights(on, WEIGHTS, "hand")
    conc = compute_concentration(CONC_PRICES, spec, weights, CONC_DATES, notes=notes, receipts={})
    assert (None if conc is None else [m.name for m in conc.members]) == members
    assert any(line.startswith(note) for line in notes.lines)


# --- compute_breadth and compute_rates ----------------------------------------------------
BREADTH = {  # session 1 is the previous week's close, session 2 the as-of session
    "EQW": [99.0, 100.0, 101.5],
    "CAP": [198.0, 200.0, 202.0],
    "XA": [49.0, 50.0, 51.0],
    "XB": [41.0, 40.0, 39.6],
    "XC": [79.0, 80.0, 80.9],
    "XD": [30.0, 30.0, NAN],
}
BREADTH_RAW = {t: [*cs[:2], cs[2] * 0.99] for t, cs in BREADTH.items()}  # a dividend drop
TWO_SESSIONS = ReportDates(*map(day, (2, 1, 0, 0, 0, 0, 0)))
WEEK = {t: cs[2] / cs[1] - 1 for t, cs in BREADTH.items() if t != "XD"}  # plain week returns

BREADTH_CASES = {  # id: (what to read off the result, its expected value)
    "equal-minus-cap": (lambda b: b.equal_minus_cap_week, WEEK["EQW"] - WEEK["CAP"]),
    "equal-minus-cap-by-hand": (lambda b: b.equal_minus_cap_week, 0.015 - 0.01),
    "ranked-by-hand": (lambda b: [s.ticker for s in b.sectors], ["XA", "XC", "XB"]),
    "sector-weeks": (lambda b: [s.week for s in b.sectors], [WEEK[t] for t in ("XA", "XC", "XB")]),
    "beat-benchmark": (lambda b: b.beat_benchmark, sum(WEEK[f"X{c}"] > WEEK["CAP"] for c in "ABC")),
    "beat-benchmark-by-hand": (lambda b: b.beat_benchmark, 2),
}


@pytest.mark.parametrize(("getter", "expected"), BREADTH_CASES.values(), ids=BREADTH_CASES)
def test_compute_breadth(getter, expected):
    notes = StatsNotes()
    spec = StatsSection(equal_weight="EQW", spread_short="CAP", sectors=["XA", "XB", "XC", "XD"])
    breadth = compute_breadth(make_prices(BREADTH, BREADTH_RAW), spec, TWO_SESSIONS, notes, {})
    assert getter(breadth) == close(expected)
    assert notes.lines == ["XD lack this week's closes: left out of the sector ranking"]


def test_breadth_without_any_sector_leaves_the_ranking_out_in_one_note():
    notes = StatsNotes()
    spec = StatsSection(equal_weight="EQW", spread_short="CAP", sectors=["XD"])
    breadth = compute_breadth(make_prices(BREADTH, BREADTH_RAW), spec, TWO_SESSIONS, notes, {})
    assert breadth is not None and breadth.sectors == () and breadth.beat_benchmark == 0
    assert notes.lines == ["XD lack this week's closes: the sector ranking is left out"]


RATE_CASES = {  # id: (previous week's close, as-of close, change in bp by hand)
    "up-15bp": (4.20, 4.35, 15.0),
    "down-12bp": (4.50, 4.38, -12.0),
    "unchanged": (3.99, 3.99, 0.0),
    "near-zero": (0.05, 0.13, 8.0),
    "no-previous-close": (NAN, 4.10, None),
}


@pytest.mark.parametrize(("prev", "level", "by_hand"), RATE_CASES.values(), ids=RATE_CASES)
def test_compute_rates(prev, level, by_hand):
    notes = StatsNotes()
    prices = make_prices({"^TNX": [NAN, NAN, NAN]}, {"^TNX": [4.0, prev, level]})  # raw closes
    rates = compute_rates(prices, "^TNX", TWO_SESSIONS, notes, {})
    if by_hand is None:
        assert rates is None
        assert notes.lines == ["^TNX lacks this week's closes: the rates backdrop is left out"]
        return
    assert (rates.level, rates.prev_level) == (level, prev)
    assert rates.change_bp == close((level - prev) * 100)
    assert rates.change_bp == close(by_hand)


# --- compute_estimates --------------------------------------------------------------------
MONDAYS = [(date(2024, 1, 1) + timedelta(weeks=k)).isoformat() for k in range(18)]  # to 04-29
REVENUE = {
    **{("AAA", "+1y", d): 1000.0 + 7 * k + (k % 3) for k, d in enumerate(MONDAYS)},
    **{("AAA", "0y", d): 900.0 - 3 * k for k, d in enumerate(MONDAYS)},
    **{("AAB", "+1y", d): 1.0 + k for k, d in enumerate(MONDAYS)},
    **{("BBB", "0y", d): 500.0 - 2 * k * k for k, d in enumerate(MONDAYS) if k >= 5},
}
EARNINGS = {"AAA": date(2024, 4, 25), "AAB": date(2024, 4, 25), "BBB": date(2024, 3, 1)}
HISTORY = [  # oldest first, as db.estimates.load_estimates returns them
    EstimateSnapshot(t, date.fromisoformat(d), p, REVENUE[t, p, d], 30, EARNINGS[t])
    for d in MONDAYS
    for (t, p, taken) in REVENUE
    if taken == d
]
ESTIMATE_CASES = {  # id: (as_of, member, period used, latest snapshot, 4w base, 12w base)
    # as_of - 28 days = 2024-02-28, - 84 days = 2024-01-03: the Mondays on or before
    "wednesday": ("2024-03-27", "AAA+AAB", "+1y", "2024-03-25", "2024-02-26", "2024-01-01"),
    "monday": ("2024-03-25", "AAA+AAB", "+1y", "2024-03-25", "2024-02-26", "2024-01-01"),
    "sunday-no-12w-base": ("2024-03-24", "AAA+AAB", "+1y", "2024-03-18", "2024-02-19", None),
    "young-history": ("2024-01-20", "AAA+AAB", "+1y", "2024-01-15", None, None),
    "current-year-fallback": ("2024-03-27", "BBB", "0y", "2024-03-25", "2024-02-26", None),
    "after-earnings": ("2024-04-30", "BBB", "0y", "2024-04-29", "2024-04-01", "2024-02-05"),
}


@pytest.mark.parametrize(
    ("as_of", "member", "period", "latest", "base_4w", "base_12w"),
    ESTIMATE_CASES.values(),
    ids=ESTIMATE_CASES,
)
def test_compute_estimates(as_of, member, period, latest, base_4w, base_12w):
    as_of = date.fromisoformat(as_of)
    revisions, earnings = compute_estimates(HISTORY, ["AAA+AAB", "BBB", "ZZZ"], as_of)
    assert [r.name for r in revisions] == ["AAA+AAB", "BBB"][: len(revisions)]
    got, ticker = next(r for r in revisions if r.name == member), member.split("+")[0]
    assert (got.period, got.taken_on.isoformat()) == (period, latest)
    assert got.revenue == REVENUE[ticker, period, latest]
    for change, base in ((got.change_4w, base_4w), (got.change_12w, base_12w)):
        base_revenue = REVENUE.get((ticker, period, base))  # base None: no snapshot that old
        want = None if base_revenue is None else REVENUE[ticker, period, latest] / base_revenue - 1
        assert change == close(want)
    label = f"{member} reports earnings" if EARNINGS[ticker] > as_of else None
    assert {k.day: k.label for k in earnings}.get(EARNINGS[ticker]) == label
