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
from matplotlib.ticker import FuncFormatter, MaxNLocator, PercentFormatter
from PIL import Image

from newsletter.models import Chart, display_name

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from newsletter.models import Prices
    from newsletter.weekstats import WeekStats

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
    return f"{value * 100:+.{digits}f}%".replace("-", "\u2212")


def render_ratio_chart(prices: Prices, stats: WeekStats, sessions: int) -> Chart:
    """The long/short relative-strength line over the last year with its 50/200-session averages."""
    strength = stats.relative_strength
    full = prices.ratio(strength.long, strength.short).loc[: pd.Timestamp(stats.as_of)]
    ratio = full.iloc[-sessions:]
    averages = {
        window: full.rolling(window).mean().iloc[-sessions:]
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
        ax.plot(
            ratio.index,
            ratio.to_numpy(),
            color=UP,
            lw=1.8,
            label=f"{strength.long}/{strength.short}",
        )
        ax.plot(ratio.index[-1], ratio.iloc[-1], "o", color=UP, ms=5)
        ax.legend(loc="upper left", frameon=False, fontsize=9, ncols=3)
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
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3f}"))
        # matplotlib.dates ships without annotations for these two constructors.
        ax.xaxis.set_major_locator(mdates.MonthLocator(bymonth=(1, 4, 7, 10)))  # type: ignore[no-untyped-call]
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%b %Y"))  # type: ignore[no-untyped-call]
        ax.margins(x=0.01, y=0.12)
        width, height = (int(d * DPI) for d in fig.get_size_inches())
        png = _to_png(fig)
    above = "above" if strength.vs_sma200 >= 0 else "below"
    alt = (
        f"Line chart of the {strength.long}/{strength.short} ratio over the last {len(ratio)} sessions: "
        f"{display_name(strength.long)} {'gained' if strength.week_change >= 0 else 'lost'} "
        f"{abs(strength.week_change) * 100:.1f}% against the {display_name(strength.short)} this week "
        f"and stands {abs(strength.vs_sma200) * 100:.1f}% {above} its 200-session average."
    )
    return Chart("relative_strength", png, alt, width, height)


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
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
        ax.xaxis.set_major_formatter(PercentFormatter(decimals=None))
        ax.bar_label(
            bars,
            labels=[_signed_pct(v / 100, 2) for v in values],
            padding=4,
            color=INK,
            fontweight="bold",
        )
        span = (max(0.0, *values) - min(0.0, *values)) or 1.0
        low, high = min(0.0, *values), max(0.0, *values)
        ax.set_xlim(low - (0.45 * span if low < 0 else 0.05 * span), high + 0.3 * span)
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


def render_charts(prices: Prices, stats: WeekStats, ratio_sessions: int) -> tuple[Chart, ...]:
    """Every chart of the digest, in the order the email shows them."""
    return (
        render_week_returns_chart(stats),
        render_ratio_chart(prices, stats, ratio_sessions),
    )
