"""Axis numbers and value labels for the charts: ticks labelled with their own values, and
value labels kept inside the axes (charts.py draws the charts)."""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING, Any

from matplotlib.ticker import Formatter, MaxNLocator

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MINUS = "\u2212"
MAX_TICKS = 6
"""Tick intervals an axis starts from; `thin_numbers` takes fewer where labels would touch."""


class _TickNumbers(Formatter):
    """Tick labels that show each tick's value itself: as many decimals as the tick step needs
    (a tick at 2.5 reads "+2.5 pp", never "+2 pp"), a sign if asked, a true minus sign."""

    def __init__(self, unit: str = "", *, signed: bool = True, decimals: int = 0) -> None:
        self.unit = unit
        self.signed = signed
        self.least = decimals

    def format_ticks(self, values: Any) -> list[str]:
        ticks = sorted(float(v) for v in values)
        steps = [b - a for a, b in itertools.pairwise(ticks) if b > a]
        step = min(steps) if steps else 1.0
        decimals = max(self.least, -math.floor(math.log10(step) + 1e-9))
        return [self._label(float(v), decimals, step) for v in values]

    def __call__(self, x: float, pos: int | None = None) -> str:
        return self._label(x, self.least, 1.0)

    def _label(self, x: float, decimals: int, step: float) -> str:
        if abs(x) < step / 1e6:
            return f"{0:.{self.least}f}{self.unit}"
        text = f"{x:+.{decimals}f}" if self.signed else f"{x:.{decimals}f}"
        return text.replace("-", MINUS) + self.unit


def axis_numbers(axis: Any, unit: str = "", *, signed: bool = True, decimals: int = 0) -> None:
    """Round ticks (steps of 1, 2 or 5 times a power of ten) labelled with their own values."""
    axis.set_major_locator(MaxNLocator(nbins=MAX_TICKS, steps=[1, 2, 5, 10]))
    axis.set_major_formatter(_TickNumbers(unit, signed=signed, decimals=decimals))


def _crowded(axis: Any, renderer: Any, gap_px: float) -> bool:
    """Whether two neighbouring tick labels of `axis` come closer than `gap_px`, measured
    from the strings the formatter will draw (no drawing needed)."""
    ax = axis.axes
    low, high = sorted(axis.get_view_interval())
    values = [v for v in axis.get_major_locator()() if low <= v <= high]
    texts = axis.get_major_formatter().format_ticks(values)
    font = axis.get_major_ticks()[0].label1.get_fontproperties()
    sizes = [renderer.get_text_width_height_descent(t, font, ismath=False)[:2] for t in texts]
    horizontal = axis.axis_name == "x"
    points = [(v, 0.0) if horizontal else (0.0, v) for v in values]
    places = [ax.transData.transform(point)[0 if horizontal else 1] for point in points]
    ticks = sorted(zip(places, sizes, strict=True), key=lambda tick: tick[0])
    return any(
        b - a - ((wa + wb) / 2 if horizontal else (ha + hb) / 2) < gap_px
        for (a, (wa, ha)), (b, (wb, hb)) in itertools.pairwise(ticks)
    )


def thin_numbers(fig: Figure, gap_px: float = 12.0) -> None:
    """Fewer ticks on every numeric axis whose labels would touch: a phone-width chart has
    room for four or five labels like "+0.5 pp", not six. Needs the figure laid out once;
    measures, never draws."""
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            locator = axis.get_major_locator()
            if not isinstance(axis.get_major_formatter(), _TickNumbers) or not isinstance(
                locator, MaxNLocator
            ):
                continue
            bins = MAX_TICKS
            while bins > 2 and _crowded(axis, renderer, gap_px):
                bins -= 1
                locator.set_params(nbins=bins)


def fit_labels(fig: Figure, ax: Any, labels: list[Any], margin_px: float = 10.0) -> None:
    """Widen the x view until every value label lies inside the axes, `margin_px` clear of
    its edges (a label past the edge is cut off, or drawn over the names beside the bars).

    Each label keeps its size in pixels and its anchor in data units, so the view that fits
    them follows from one drawing: widening moves the anchors closer together, and a few
    rounds of that arithmetic settle it. Needs the figure laid out once.
    """
    if not labels:
        return
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    box = ax.get_window_extent(renderer)
    spans = []
    for label in labels:
        extent = label.get_window_extent(renderer)
        x, y = ax.convert_xunits(label.xy[0]), ax.convert_yunits(label.xy[1])  # dates to floats
        anchor = ax.transData.transform((x, y))[0]
        spans.append((float(x), anchor - extent.x0, extent.x1 - anchor))
    left, right = ax.get_xlim()
    widest = (right - left) * 3  # labels wider than the axes cannot fit: stop widening there
    for _ in range(24):
        per_px = (right - left) / box.width
        wanted_left = min(x - (back + margin_px) * per_px for x, back, _ in spans)
        wanted_right = max(x + (ahead + margin_px) * per_px for x, _, ahead in spans)
        if wanted_left >= left and wanted_right <= right:
            break
        if wanted_right - wanted_left > widest:
            break
        left, right = min(left, wanted_left), max(right, wanted_right)
    ax.set_xlim(left, right)
