"""The charts' one visual family: drawn for a phone, in one palette, saved as small PNGs.

Every chart is laid out at the width a phone shows it (343 CSS px: a 375 px screen less the
column's padding) and rasterised at twice that, so its smallest text is 12 CSS px on a phone
and larger on a desktop. Colours: one pair means direction (up, down) and nothing else; each
fund or index has its own colour in every chart; every text colour has a contrast of at least
4.5:1 on the chart's card. The card is a light neutral panel with a border drawn into the PNG,
so it still reads as a card when a mail client turns the page around it dark.
"""

from __future__ import annotations

import io
import re
import textwrap
from typing import TYPE_CHECKING, Any

import matplotlib as mpl

mpl.use("Agg")

import matplotlib.pyplot as plt
from PIL import Image

from newsletter.models import TICKER_NAMES

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PHONE_CSS_PX = 343
"""The width a phone shows a chart at: the design width of every chart."""
WIDTH_IN = 3.43
DPI = 200
"""Twice the design width in pixels (686 px): sharp on a phone's screen, and small."""
CSS_PX_PER_PT = PHONE_CSS_PX / (WIDTH_IN * 72)
TEXT_PT = 9.0
"""Tick labels, value labels, legends: 12.5 CSS px on a phone."""
TITLE_PT = 10.5
PALETTE_COLOURS = 32

UP = "#1f6fb4"
DOWN = "#a8510a"
INK = "#1b2733"
MUTED = "#5f6b78"
GRID = "#dde2e8"
CARD = "#f6f7f9"
CARD_EDGE = "#c9d1d9"
QUIET = "#b4bdc7"
"""Graphics that carry no series: the histogram of all weeks."""
WEEK_SHADE = "#e4e8ee"
SERIES = {
    "SPY": INK,
    "^GSPC": INK,
    "IWM": "#6f3fb0",
    "^RUT": "#6f3fb0",
    "QQQ": "#0f766e",
    "^NDX": "#0f766e",
    "RSP": "#7a5f00",
}
"""Each fund's colour, the same in every chart (an index shares its fund's colour)."""

_STYLE: dict[Any, Any] = {
    "font.family": "DejaVu Sans",
    "font.size": TEXT_PT,
    "axes.edgecolor": GRID,
    "axes.labelcolor": INK,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "xtick.color": MUTED,
    "ytick.color": MUTED,
    "xtick.labelsize": TEXT_PT,
    "ytick.labelsize": TEXT_PT,
    "xtick.labelcolor": MUTED,
    "ytick.labelcolor": MUTED,
    "legend.fontsize": TEXT_PT,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.color": GRID,
    "grid.linewidth": 0.6,
    "figure.facecolor": CARD,
    "axes.facecolor": CARD,
    "savefig.facecolor": CARD,
    "figure.constrained_layout.w_pad": 0.06,
    "figure.constrained_layout.h_pad": 0.06,
}


def series_colour(ticker: str) -> str:
    """The colour of a fund or index in every chart (ink for one without its own)."""
    return SERIES.get(ticker, INK)


def direction_colour(value: float) -> str:
    return UP if value >= 0 else DOWN


def new_figure(height_in: float) -> tuple[Figure, Any]:
    """A figure of the design width with one axes, in the family's style."""
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(WIDTH_IN, height_in), dpi=DPI, layout="constrained")
    fig.patch.set_edgecolor(CARD_EDGE)
    fig.patch.set_linewidth(1.5)
    return fig, ax


def style() -> Any:
    """The family's matplotlib settings, for drawing inside a `with` block."""
    return plt.rc_context(_STYLE)


_NAMES = sorted({name for name in TICKER_NAMES.values() if " " in name}, key=len, reverse=True)
_UNBREAKABLE = re.compile(
    "|".join([*(re.escape(name) for name in _NAMES), r"\w{3} \d{1,2} \w{3} \d{4}", r"\S+ pp"])
)
_NBSP = "\u00a0"


def _wrap(text: str, points: float, bold: bool) -> str:
    """`text` in lines that fit the figure, never breaking inside a name, a date or a number
    and its unit. DejaVu Sans averages about 0.6 em a character (0.65 bold); the layout test
    checks that the result lies inside the figure."""
    width_pt = WIDTH_IN * 72 * 0.97
    per_char = points * (0.65 if bold else 0.6)
    joined = _UNBREAKABLE.sub(lambda found: found.group().replace(" ", _NBSP), text)
    lines = textwrap.fill(joined, width=int(width_pt / per_char), break_long_words=False)
    return lines.replace(_NBSP, " ")


def title(fig: Figure, takeaway: str, detail: str = "") -> None:
    """The chart's takeaway as a bold sentence at the top left, and under it what is drawn."""
    text = _wrap(takeaway, TITLE_PT, bold=True)
    fig.suptitle(text, x=0.02, ha="left", fontsize=TITLE_PT, fontweight="bold", color=INK)
    if detail:
        fig.supxlabel(
            _wrap(detail, TEXT_PT, bold=False), x=0.02, ha="left", fontsize=TEXT_PT, color=MUTED
        )


def size_px(fig: Figure) -> tuple[int, int]:
    width, height = fig.get_size_inches()
    return round(width * DPI), round(height * DPI)


def to_png(fig: Figure) -> bytes:
    """The figure as a palette PNG with no metadata (same input, same bytes), its card's
    border drawn in.

    One draw: the canvas is drawn once and its pixels handed to Pillow, rather than saved by
    matplotlib and decoded again. Flat charts need few colours: a small palette looks the same
    and is a fraction of the size of a full-colour PNG.
    """
    fig.canvas.draw()
    rgba = fig.canvas.buffer_rgba()  # type: ignore[attr-defined]
    width, height = fig.canvas.get_width_height()
    plt.close(fig)
    image = Image.frombuffer("RGBA", (width, height), rgba, "raw", "RGBA", 0, 1).convert("RGB")
    palette = image.quantize(
        colors=PALETTE_COLOURS, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE
    )
    out = io.BytesIO()
    palette.save(out, format="PNG", optimize=True)
    return out.getvalue()
