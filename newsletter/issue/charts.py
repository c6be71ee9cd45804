"""The digest's charts: matplotlib (Agg) to PNG bytes in memory; no files written.

Each chart's title is its takeaway, a sentence with the number it shows, written with the same
formatting as the email's text (issue/numbers.py) so one fact reads the same everywhere; its
alt text starts with that sentence. The look (phone-sized text, palette, card) is chartstyle's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import matplotlib.dates as mdates
import pandas as pd

from newsletter.issue import chartstyle as cs
from newsletter.issue.chartaxes import axis_numbers, fit_labels, thin_numbers
from newsletter.issue.headline import headline_spread
from newsletter.issue.numbers import MINUS, long_date, plain_pct, signed_pct, signed_pp, thousands
from newsletter.models import Chart, display_name, short_name

if TYPE_CHECKING:
    from collections.abc import Callable

    from newsletter.models import Prices
    from newsletter.weekstats import RelativeStrength, WeekStats

SHORT_AVERAGE = 50
LONG_AVERAGE = 200
SPREAD_SESSIONS = 5
BAR_ROW_IN = 0.21


def _chart(name: str, fig: Any, alt: str, labels: tuple[Any, list[Any]] | None = None) -> Chart:
    """The drawn chart: laid out once without rasterising (text is measured, no pixels are
    painted), its value `labels` (an axes and its labels) fitted into their axes and crowded
    tick numbers thinned, then rendered to PNG: one rasterisation a chart."""
    if labels is not None:  # the layout makes room for the axes; the view, for the labels
        for label in labels[1]:
            label.set_in_layout(False)
    fig.draw_without_rendering()
    if labels is not None:
        fit_labels(fig, *labels)
    thin_numbers(fig)
    width, height = cs.size_px(fig)
    return Chart(name, cs.to_png(fig), alt, width, height)


def _gained(value: float) -> str:
    return "gained" if value >= 0 else "lost"


def _ratio_lines(ax: Any, ratio: pd.Series, averages: dict[int, pd.Series], long: str) -> None:
    """The ratio in its long fund's colour, and its two moving averages in grey."""
    for window, dashes in ((LONG_AVERAGE, (0, (4, 2))), (SHORT_AVERAGE, "-")):
        ax.plot(
            averages[window].index, averages[window].to_numpy(), color=cs.MUTED, lw=0.9, ls=dashes
        )
    ax.plot(ratio.index, ratio.to_numpy(), color=cs.series_colour(long), lw=1.4)


def _ratio_takeaway(strength: RelativeStrength) -> str:
    """Named by the funds the ratio is of: "the S&P 500" is the index, not SPY."""
    return (
        f"{strength.long} {_gained(strength.week_change)} "
        f"{signed_pct(abs(strength.week_change))[1:]} on {strength.short} this week"
    )


def render_ratio_chart(prices: Prices, stats: WeekStats, sessions: int) -> Chart:
    """The long/short relative-strength line over the last year with its 50/200-session averages."""
    strength = stats.relative_strength
    full = prices.ratio(strength.long, strength.short).loc[: pd.Timestamp(stats.as_of)]
    ratio = full.iloc[-sessions:]
    # The averages of the sessions in each window that have a ratio: what the statistics
    # report (stats/strength.py), so the line and the alt text tell the same number.
    averages = {
        window: full.rolling(window, min_periods=1).mean().iloc[-sessions:]
        for window in (SHORT_AVERAGE, LONG_AVERAGE)
    }
    with cs.style():
        fig, ax = cs.new_figure(2.9)
        # matplotlib's date units accept Timestamps; its stubs admit only floats.
        ax.axvspan(
            cast("float", pd.Timestamp(stats.prev_close)),
            cast("float", ratio.index[-1]),
            color=cs.WEEK_SHADE,
            lw=0,
        )
        _ratio_lines(ax, ratio, averages, strength.long)
        ax.plot(ratio.index[-1], ratio.iloc[-1], "o", color=cs.series_colour(strength.long), ms=4)
        axis_numbers(ax.yaxis, signed=False, decimals=2)
        ax.xaxis.set_major_locator(mdates.MonthLocator(bymonth=(1, 7)))  # type: ignore[no-untyped-call]
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%b %Y"))  # type: ignore[no-untyped-call]
        ax.margins(x=0.01, y=0.1)
        cs.title(
            fig,
            _ratio_takeaway(strength),
            f"{strength.long}/{strength.short} total-return ratio, {len(ratio)} sessions; grey: "
            f"{SHORT_AVERAGE}-session (solid) and {LONG_AVERAGE}-session (dashed) averages",
        )
    above = "above" if strength.vs_sma200 >= 0 else "below"
    alt = (
        f"{_ratio_takeaway(strength)}. Line chart of the {strength.long}/{strength.short} ratio "
        f"over the last {len(ratio)} sessions: it stands {plain_pct(abs(strength.vs_sma200))} "
        f"{above} its 200-session average."
    )
    return _chart("relative_strength", fig, alt)


def _bars(ax: Any, rows: list[tuple[str, float, str, str]]) -> tuple[Any, list[Any]]:
    """Horizontal bars, bottom to top, each (name, value in percent, colour, value label).

    Every value label sits right of its bar, or of zero for a negative bar: to the left it
    would run over the names. Returns the axes and the labels, for `_chart` to fit.
    """
    names = [name for name, _, _, _ in rows]
    ax.barh(names, [v for _, v, _, _ in rows], color=[c for _, _, c, _ in rows], height=0.64)
    ax.axvline(0, color=cs.MUTED, lw=0.6)
    ax.grid(axis="y", visible=False)
    ax.tick_params(axis="y", labelcolor=cs.INK, length=0)
    texts = [
        ax.annotate(
            label,
            xy=(max(value, 0.0), i),
            xytext=(3, 0),
            textcoords="offset points",
            va="center",
            color=cs.INK,
        )
        for i, (_, value, _, label) in enumerate(rows)
    ]
    return ax, texts


def render_sector_chart(stats: WeekStats) -> Chart | None:
    """The sector funds' week, ranked, with the cap-weight benchmark's week as a bar of its
    own colour among them: the sectors above it beat it."""
    breadth = stats.breadth
    benchmark = stats.returns.get(breadth.cap_weight, {}).get("1W") if breadth else None
    if breadth is None or not breadth.sectors or benchmark is None:
        return None
    rows = sorted(
        [
            (sector.week, 0, short_name(sector.ticker), cs.direction_colour(sector.week))
            for sector in breadth.sectors
        ]
        + [(benchmark, 1, f"S&P 500 ({breadth.cap_weight})", cs.series_colour(breadth.cap_weight))]
    )  # a sector level with the benchmark sits below it: it did not beat it
    takeaway = (
        f"{breadth.beat_benchmark} of {len(breadth.sectors)} sector funds beat "
        f"{breadth.cap_weight}'s {signed_pct(benchmark)} this week"
    )
    with cs.style():
        fig, ax = cs.new_figure(BAR_ROW_IN * len(rows) + 1.1)
        labels = _bars(
            ax,
            [(name, week * 100, colour, signed_pct(week)) for week, _, name, colour in rows],
        )
        axis_numbers(ax.xaxis, "%")
        cs.title(
            fig,
            takeaway,
            f"Total return of the sector funds since the close of {long_date(stats.prev_close)}",
        )
    ranking = ", ".join(
        f"{display_name(s.ticker)} {signed_pct(s.week)}"
        for s in sorted(breadth.sectors, key=lambda sector: -sector.week)
    )
    alt = f"{takeaway}. Bar chart of the sector funds' week, best first: {ranking}."
    return _chart("sectors", fig, alt, labels)


def _spread_detail(stats: WeekStats) -> str:
    spread = headline_spread(stats)
    where = "The largest" if spread.rank == 1 else f"Rank {thousands(spread.rank)}"
    return (
        f"{where} of {thousands(spread.of)} five-session {spread.long} {MINUS} {spread.short} "
        f"spreads since {spread.history_start.year}"
        + ("" if spread.rank == 1 else f" (1 = the largest {display_name(spread.long)} lead)")
    )


def _spread_takeaway(stats: WeekStats) -> str:
    spread = headline_spread(stats)
    leader, laggard = (
        (spread.long, spread.short) if spread.value >= 0 else (spread.short, spread.long)
    )
    return (
        f"{display_name(leader)} beat the {display_name(laggard)} by "
        f"{signed_pp(abs(spread.value), 1)[1:]} in five sessions"
    )


def render_spread_distribution_chart(prices: Prices, stats: WeekStats) -> Chart:
    """How rare was this week: every 5-session spread in the history, this week marked (the
    pair the email tells the week by: the longest history)."""
    spread = headline_spread(stats)
    values = (
        prices.spread(spread.long, spread.short, SPREAD_SESSIONS).loc[: pd.Timestamp(stats.as_of)]
        * 100
    )
    with cs.style():
        fig, ax = cs.new_figure(2.5)
        ax.hist(values.to_numpy(), bins=70, color=cs.QUIET, lw=0)
        ax.axvline(spread.value * 100, color=cs.direction_colour(spread.value), lw=1.8)
        ax.annotate(
            f"this week {signed_pp(spread.value, 1)}",
            xy=(spread.value * 100, ax.get_ylim()[1] * 0.9),
            xytext=(-5 if spread.value > 0 else 5, 0),
            textcoords="offset points",
            ha="right" if spread.value > 0 else "left",
            color=cs.INK,
            fontweight="bold",
        )
        ax.set_yticks([])
        ax.spines["left"].set_visible(False)
        axis_numbers(ax.xaxis, " pp")
        ax.grid(axis="y", visible=False)
        cs.title(fig, _spread_takeaway(stats), _spread_detail(stats))
    where = "the largest" if spread.rank == 1 else f"rank {thousands(spread.rank)}"
    alt = (
        f"{_spread_takeaway(stats)}. Histogram of the {thousands(spread.of)} five-session "
        f"{spread.long} minus {spread.short} return spreads since {spread.history_start.year}: "
        f"this week's is {where}."
    )
    return _chart("spread_distribution", fig, alt)


def _megacap_takeaway(stats: WeekStats) -> str:
    conc = stats.concentration
    assert conc is not None
    index = display_name(conc.index)
    if conc.index_ytd > 0:
        return (
            f"{len(conc.members)} mega caps made {plain_pct(conc.group_share)} of the "
            f"{index}'s {signed_pct(conc.index_ytd)} this year"
        )
    return (
        f"{len(conc.members)} mega caps contributed {signed_pp(conc.group_contribution)} to the "
        f"{index}'s {signed_pct(conc.index_ytd)} this year"
    )


def render_megacap_chart(stats: WeekStats) -> Chart | None:
    """Each mega cap's contribution to the index's YTD return."""
    conc = stats.concentration
    if conc is None:
        return None
    members = sorted(conc.members, key=lambda m: m.contribution)
    values = [m.contribution * 100 for m in members]
    with cs.style():
        fig, ax = cs.new_figure(BAR_ROW_IN * len(members) + 1.2)
        labels = _bars(
            ax,
            [
                (display_name(m.name), v, cs.direction_colour(v), signed_pp(m.contribution))
                for v, m in zip(values, members, strict=True)
            ],
        )
        axis_numbers(ax.xaxis, " pp")
        cs.title(
            fig,
            _megacap_takeaway(stats),
            "Contribution to the year's price return (start-of-year weight \u00d7 YTD return)",
        )
    most = max(conc.members, key=lambda m: abs(m.contribution))
    alt = (
        f"{_megacap_takeaway(stats)}. Bar chart of each one's contribution: "
        f"{display_name(most.name)} the largest, {signed_pp(most.contribution)}."
    )
    return _chart("megacaps", fig, alt, labels)


def _spread_labels(ends: pd.Series, min_gap: float) -> dict[str, float]:
    """Label heights for line ends, moved apart where they would overlap, in the ends' order."""
    placed: dict[str, float] = {}
    previous = None
    for ticker, value in ends.sort_values().items():
        height = float(value) if previous is None else max(float(value), previous + min_gap)
        placed[str(ticker)] = height
        previous = height
    return placed


YTD_LINES = ("SPY", "RSP", "QQQ", "IWM")


def _month_ticks(first: pd.Timestamp, last: pd.Timestamp) -> list[Any]:
    """Month starts from `first` to `last`: every quarter's, or every month's early in a year."""
    frequency = "QS-JAN" if (last - first).days > 120 else "MS"
    days = pd.date_range(first.normalize(), last, freq=frequency)
    return [mdates.date2num(day) for day in days]  # type: ignore[no-untyped-call]


def _ytd_takeaway(final: pd.Series) -> str:
    """`final`: each fund's YTD return in percent, ascending."""
    return (
        f"{final.index[-1]} leads the year at {signed_pct(final.iloc[-1] / 100, 1)}; "
        f"{final.index[0]} trails at {signed_pct(final.iloc[0] / 100, 1)}"
    )


def render_ytd_chart(prices: Prices, stats: WeekStats) -> Chart | None:
    """Cumulative total return since the end of last year for the cap-weight, equal-weight,
    Nasdaq-100 and small-cap funds, each in its own colour."""
    tickers = [t for t in YTD_LINES if t in prices.tickers]
    frame = prices.adjusted.loc[
        pd.Timestamp(stats.bases["YTD"]) : pd.Timestamp(stats.as_of), tickers
    ].dropna(axis=1)
    if frame.empty or len(frame) < 2:
        return None
    growth = (frame / frame.iloc[0] - 1) * 100
    final = growth.iloc[-1].sort_values()
    gap = (growth.max().max() - growth.min().min()) * 0.11
    label_y = _spread_labels(final, min_gap=gap)
    with cs.style():
        fig, ax = cs.new_figure(2.9)
        texts = []
        for ticker in growth.columns:
            colour = cs.series_colour(ticker)
            ax.plot(growth.index, growth[ticker].to_numpy(), color=colour, lw=1.3)
            label = ax.annotate(
                f"{ticker} {signed_pct(final[ticker] / 100, 1)}",
                xy=(growth.index[-1], label_y[ticker]),
                xytext=(4, 0),
                textcoords="offset points",
                va="center",
                color=colour,
                fontweight="bold",
                annotation_clip=False,
            )
            texts.append(label)
        ax.axhline(0, color=cs.MUTED, lw=0.6)
        low, high = ax.get_ylim()  # room for labels moved apart above or below the lines
        ax.set_ylim(
            min(low, min(label_y.values()) - gap / 2), max(high, max(label_y.values()) + gap / 2)
        )
        axis_numbers(ax.yaxis, "%")
        ax.margins(x=0.02)
        # Month ticks only where there are data: the view runs on under the line labels.
        ax.set_xticks(_month_ticks(growth.index[0], growth.index[-1]))
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%b"))  # type: ignore[no-untyped-call]
        cs.title(
            fig,
            _ytd_takeaway(final),
            f"Total return since the close of {long_date(stats.bases['YTD'])}",
        )
    alt = f"{_ytd_takeaway(final)}. Line chart of the year's total returns."
    return _chart("ytd", fig, alt, (ax, texts))


def chart_drawings(
    prices: Prices, stats: WeekStats, ratio_sessions: int
) -> list[Callable[[], Chart | None]]:
    """Each chart's drawing, in the order the email shows them (None: the data lack it).
    issue/chartpool.py runs them, here or in its workers."""
    return [
        lambda: render_ytd_chart(prices, stats),
        lambda: render_spread_distribution_chart(prices, stats),
        lambda: render_ratio_chart(prices, stats, ratio_sessions),
        lambda: render_megacap_chart(stats),
        lambda: render_sector_chart(stats),
    ]
