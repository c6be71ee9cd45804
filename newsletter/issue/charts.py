"""Charts for the digest: matplotlib (Agg) to PNG bytes in memory; no files written.

Each chart is drawn for a 600 px email column at 2x (1200 px wide), on an opaque background
(Gmail's dark mode inverts transparent PNGs), and saved without timestamps so the same input
gives the same bytes. Colours are a blue/orange pair that colour-blind readers tell apart.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any, cast

import matplotlib as mpl

mpl.use("Agg")

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import pandas as pd
from PIL import Image

from newsletter.issue.chartaxes import MINUS, axis_numbers, fit_labels
from newsletter.models import Chart, display_name

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from newsletter.models import Prices
    from newsletter.weekstats import RelativeStrength, WeekStats

WIDTH_IN = 6.0
DPI = 200
UP = "#1f6fb4"
DOWN = "#d9731a"
INK = "#1b2733"
MUTED = "#6b7785"
GRID = "#e3e7ec"
BACKGROUND = "#ffffff"
WEEK_SHADE = "#fbe3cc"
SHORT_AVERAGE = 50
LONG_AVERAGE = 200
SPREAD_SESSIONS = 5
PALETTE_COLOURS = 64

_STYLE: dict[Any, Any] = {
    "font.family": "DejaVu Sans",
    "font.size": 11,
    "axes.edgecolor": GRID,
    "axes.labelcolor": INK,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "xtick.color": MUTED,
    "ytick.color": MUTED,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.color": GRID,
    "grid.linewidth": 0.8,
    "figure.facecolor": BACKGROUND,
    "axes.facecolor": BACKGROUND,
    "savefig.facecolor": BACKGROUND,
}


def _to_png(fig: Figure) -> bytes:
    """The figure as an optimised palette PNG with no metadata (same input, same bytes).

    Flat charts like these need few colours: a 64-colour palette looks the same and is a
    fraction of the size of a full-colour PNG.
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    plt.close(fig)
    buffer.seek(0)
    with Image.open(buffer) as image:
        palette = image.convert("RGB").quantize(
            colors=PALETTE_COLOURS, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE
        )
    out = io.BytesIO()
    palette.save(out, format="PNG", optimize=True)
    return out.getvalue()


def _title(fig: Figure, text: str) -> None:
    """A bold title flush with the figure's left edge (axes titles clip beside long labels)."""
    fig.suptitle(text, x=0.01, ha="left", fontsize=13, fontweight="bold", color=INK)


def _signed_pct(value: float, digits: int = 1) -> str:
    return f"{value * 100:+.{digits}f}%".replace("-", MINUS)


def _ratio_lines(ax: Any, ratio: pd.Series, averages: dict[int, pd.Series], label: str) -> None:
    """The ratio and its two moving averages."""
    ax.plot(
        averages[LONG_AVERAGE].index,
        averages[LONG_AVERAGE].to_numpy(),
        color=MUTED,
        lw=1.2,
        ls=(0, (4, 2)),
        label=f"{LONG_AVERAGE}-session average",
    )
    ax.plot(
        averages[SHORT_AVERAGE].index,
        averages[SHORT_AVERAGE].to_numpy(),
        color=DOWN,
        lw=1.2,
        label=f"{SHORT_AVERAGE}-session average",
    )
    ax.plot(ratio.index, ratio.to_numpy(), color=UP, lw=1.8, label=label)


def _ratio_alt(strength: RelativeStrength, sessions: int) -> str:
    above = "above" if strength.vs_sma200 >= 0 else "below"
    return (
        f"Line chart of the {strength.long}/{strength.short} ratio over the last {sessions} "
        f"sessions: {display_name(strength.long)} "
        f"{'gained' if strength.week_change >= 0 else 'lost'} "
        f"{abs(strength.week_change) * 100:.1f}% against the {display_name(strength.short)} this "
        f"week and stands {abs(strength.vs_sma200) * 100:.1f}% {above} its 200-session average."
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
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(WIDTH_IN, 3.2), layout="constrained")
        # matplotlib's date units accept Timestamps; its stubs admit only floats.
        ax.axvspan(
            cast("float", pd.Timestamp(stats.prev_close)),
            cast("float", ratio.index[-1]),
            color=WEEK_SHADE,
            lw=0,
        )
        _ratio_lines(ax, ratio, averages, f"{strength.long}/{strength.short}")
        ax.plot(ratio.index[-1], ratio.iloc[-1], "o", color=UP, ms=5)
        fig.legend(loc="outside lower center", frameon=False, fontsize=9, ncols=3)
        _title(
            fig,
            f"{display_name(strength.long)} vs {display_name(strength.short)} "
            f"({strength.long}/{strength.short}, total return)",
        )
        ax.annotate(
            f"this week {_signed_pct(strength.week_change)}",
            xy=(ratio.index[-1], ratio.iloc[-1]),
            xytext=(-8, -16 if strength.week_change < 0 else 10),
            textcoords="offset points",
            ha="right",
            color=INK,
            fontweight="bold",
        )
        axis_numbers(ax.yaxis, signed=False, decimals=2)
        # matplotlib.dates ships without annotations for these two constructors.
        ax.xaxis.set_major_locator(mdates.MonthLocator(bymonth=(1, 4, 7, 10)))  # type: ignore[no-untyped-call]
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%b %Y"))  # type: ignore[no-untyped-call]
        ax.margins(x=0.01, y=0.12)
        width, height = (int(d * DPI) for d in fig.get_size_inches())
        png = _to_png(fig)
    return Chart("relative_strength", png, _ratio_alt(strength, len(ratio)), width, height)


def render_week_returns_chart(stats: WeekStats) -> Chart:
    """The week's total returns of the scoreboard, sorted, as horizontal bars."""
    weekly = {
        t: r["1W"]
        for t, r in stats.returns.items()
        if r["1W"] is not None and not t.startswith("^")
    }
    if stats.breadth is not None:
        weekly.update({sector.ticker: sector.week for sector in stats.breadth.sectors})
    items = sorted(weekly.items(), key=lambda item: item[1])
    labels = [f"{display_name(t)} ({t})" for t, _ in items]
    values = [r * 100 for _, r in items]
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(WIDTH_IN, 0.3 * len(items) + 1.0), layout="constrained")
        colours = [UP if v >= 0 else DOWN for v in values]
        bars = ax.barh(labels, values, color=colours, height=0.62)
        ax.axvline(0, color=MUTED, lw=0.8)
        ax.grid(axis="y", visible=False)
        axis_numbers(ax.xaxis, "%")
        texts = ax.bar_label(
            bars,
            labels=[_signed_pct(v / 100, 2) for v in values],
            padding=4,
            color=INK,
            fontweight="bold",
        )
        span = (max(0.0, *values) - min(0.0, *values)) or 1.0
        low, high = min(0.0, *values), max(0.0, *values)
        ax.set_xlim(low - 0.05 * span, high + 0.05 * span)
        fit_labels(fig, ax, list(texts))
        _title(fig, f"Total return, week to {stats.as_of:%a} {stats.as_of.day} {stats.as_of:%b %Y}")
        width, height = (int(d * DPI) for d in fig.get_size_inches())
        png = _to_png(fig)
    best_ticker, best = items[-1]
    worst_ticker, worst = items[0]
    alt = (
        f"Bar chart of this week's returns of {len(items)} funds: best {display_name(best_ticker)} "
        f"{_signed_pct(best, 2)}, worst {display_name(worst_ticker)} {_signed_pct(worst, 2)}."
    )
    return Chart("week_returns", png, alt, width, height)


def render_spread_distribution_chart(prices: Prices, stats: WeekStats) -> Chart:
    """How rare was this week: every 5-session spread in the history, this week marked."""
    spread = stats.spread_5d
    values = (
        prices.spread(spread.long, spread.short, SPREAD_SESSIONS).loc[: pd.Timestamp(stats.as_of)]
        * 100
    )
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(WIDTH_IN, 2.9), layout="constrained")
        ax.hist(values.to_numpy(), bins=80, color=MUTED, alpha=0.55, lw=0)
        ax.axvline(spread.value * 100, color=UP if spread.value >= 0 else DOWN, lw=2.2)
        ax.annotate(
            f"this week {spread.value * 100:+.1f} pp".replace("-", MINUS),
            xy=(spread.value * 100, ax.get_ylim()[1] * 0.92),
            xytext=(-6 if spread.value > 0 else 6, 0),
            textcoords="offset points",
            ha="right" if spread.value > 0 else "left",
            color=INK,
            fontweight="bold",
        )
        ax.set_yticks([])
        ax.spines["left"].set_visible(False)
        axis_numbers(ax.xaxis, " pp")
        ax.grid(axis="y", visible=False)
        _title(
            fig,
            f"All {len(values):,} five-session {spread.long} {MINUS} {spread.short} spreads "
            f"since {spread.history_start.year}",
        )
        width, height = (int(d * DPI) for d in fig.get_size_inches())
        png = _to_png(fig)
    rank = "the largest" if spread.rank == 1 else f"rank {spread.rank:,} of {spread.of:,}"
    alt = (
        f"Histogram of every five-session {spread.long} minus {spread.short} return spread since "
        f"{spread.history_start.year}: this week's {spread.value * 100:+.1f} points is {rank}."
    )
    return Chart("spread_distribution", png, alt, width, height)


def render_megacap_chart(stats: WeekStats) -> Chart | None:
    """Each mega cap's contribution to the index's YTD return, with its week's return."""
    conc = stats.concentration
    if conc is None:
        return None
    members = sorted(conc.members, key=lambda m: m.contribution)
    labels = [display_name(m.name) for m in members]
    values = [m.contribution * 100 for m in members]
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(WIDTH_IN, 0.34 * len(members) + 1.1), layout="constrained")
        ax.barh(labels, values, color=[UP if v >= 0 else DOWN for v in values], height=0.6)
        ax.axvline(0, color=MUTED, lw=0.8)
        ax.grid(axis="y", visible=False)
        # Every value label right of its bar, or of zero for a negative bar: to the left it
        # would run over the names.
        texts = [
            ax.annotate(
                f"{v:+.2f} pp  (week {_signed_pct(m.week)})".replace("-", MINUS),
                xy=(max(v, 0.0), i),
                xytext=(4, 0),
                textcoords="offset points",
                va="center",
                color=INK,
            )
            for i, (v, m) in enumerate(zip(values, members, strict=True))
        ]
        span = (max(0.0, *values) - min(0.0, *values)) or 1.0
        ax.set_xlim(min(0.0, *values) - 0.05 * span, max(0.0, *values) + 0.05 * span)
        axis_numbers(ax.xaxis, " pp")
        fit_labels(fig, ax, texts)
        _title(
            fig,
            f"Contribution to the {display_name(conc.index)}'s {_signed_pct(conc.index_ytd)} this year",
        )
        width, height = (int(d * DPI) for d in fig.get_size_inches())
        png = _to_png(fig)
    lead = max(conc.members, key=lambda m: m.share)
    alt = (
        f"Bar chart of mega-cap contributions to the {display_name(conc.index)}'s year-to-date return: "
        f"together {conc.group_share * 100:.0f}% of it, {display_name(lead.name)} alone {lead.share * 100:.0f}%."
    )
    return Chart("megacaps", png, alt, width, height)


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
_YTD_COLOURS = {"SPY": UP, "RSP": "#6aa84f", "QQQ": "#7f3fbf", "IWM": DOWN}


def render_ytd_chart(prices: Prices, stats: WeekStats) -> Chart | None:
    """Cumulative total return since the end of last year for the cap-weight, equal-weight,
    Nasdaq-100 and small-cap funds."""
    tickers = [t for t in YTD_LINES if t in prices.tickers]
    frame = prices.adjusted.loc[
        pd.Timestamp(stats.bases["YTD"]) : pd.Timestamp(stats.as_of), tickers
    ].dropna(axis=1)
    if frame.empty or len(frame) < 2:
        return None
    growth = (frame / frame.iloc[0] - 1) * 100
    label_y = _spread_labels(
        growth.iloc[-1], min_gap=(growth.max().max() - growth.min().min()) * 0.08
    )
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(WIDTH_IN, 3.0), layout="constrained")
        for ticker in growth.columns:
            ax.plot(growth.index, growth[ticker].to_numpy(), color=_YTD_COLOURS[ticker], lw=1.6)
            ax.annotate(
                f"{ticker} {growth[ticker].iloc[-1]:+.1f}%".replace("-", MINUS),
                xy=(growth.index[-1], label_y[ticker]),
                xytext=(6, 0),
                textcoords="offset points",
                va="center",
                color=_YTD_COLOURS[ticker],
                fontweight="bold",
                fontsize=9,
            )
        ax.axhline(0, color=MUTED, lw=0.8)
        axis_numbers(ax.yaxis, "%")
        ax.xaxis.set_major_locator(mdates.MonthLocator())  # type: ignore[no-untyped-call]
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%b"))  # type: ignore[no-untyped-call]
        ax.margins(x=0.02)
        ax.set_xlim(right=growth.index[-1] + (growth.index[-1] - growth.index[0]) * 0.16)
        _title(fig, f"Total return this year, to {stats.as_of.day} {stats.as_of:%b %Y}")
        width, height = (int(d * DPI) for d in fig.get_size_inches())
        png = _to_png(fig)
    final = growth.iloc[-1].sort_values()
    alt = (
        f"Line chart of year-to-date total returns: {final.index[-1]} leads at "
        f"{_signed_pct(final.iloc[-1] / 100, 1)}, {final.index[0]} trails at {_signed_pct(final.iloc[0] / 100, 1)}."
    )
    return Chart("ytd", png, alt, width, height)


def render_charts(prices: Prices, stats: WeekStats, ratio_sessions: int) -> tuple[Chart, ...]:
    """Every chart of the digest the data supports, in the order the email shows them."""
    charts = (
        render_week_returns_chart(stats),
        render_ytd_chart(prices, stats),
        render_spread_distribution_chart(prices, stats),
        render_ratio_chart(prices, stats, ratio_sessions),
        render_megacap_chart(stats),
    )
    return tuple(chart for chart in charts if chart is not None)
