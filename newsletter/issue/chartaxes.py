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
    axis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 5, 10]))
    axis.set_major_formatter(_TickNumbers(unit, signed=signed, decimals=decimals))


def _crowded(fig: Figure, axis: Any, gap_px: float) -> bool:
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    low, high = sorted(axis.get_view_interval())
    boxes = sorted(
        (
            tick.label1.get_window_extent(renderer)
            for tick in axis.get_major_ticks()
            if low <= tick.get_loc() <= high and tick.label1.get_text()
        ),
        key=lambda box: box.x0,
    )
    horizontal = axis.axis_name == "x"
    return any(
        (b.x0 - a.x1 if horizontal else abs(b.y0 - a.y0) - a.height) < gap_px
        for a, b in itertools.pairwise(boxes)
    )


def thin_numbers(fig: Figure, gap_px: float = 12.0) -> None:
    """Fewer ticks on every numeric axis whose labels would touch: a phone-width chart has
    room for four or five labels like "+0.5 pp", not six."""
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            locator = axis.get_major_locator()
            if not isinstance(axis.get_major_formatter(), _TickNumbers) or not isinstance(
                locator, MaxNLocator
            ):
                continue
            bins = 6
            fig.canvas.draw()
            while bins > 2 and _crowded(fig, axis, gap_px):
                bins -= 1
                locator.set_params(nbins=bins)
                fig.canvas.draw()


def fit_labels(
    fig: Figure, ax: Any, labels: list[Any], rounds: int = 4, margin_px: float = 10.0
) -> None:
    """Widen the x view until every value label lies inside the axes, `margin_px` clear of
    its edges (a label past the edge is cut off, or drawn over the names beside the bars)."""
    for _ in range(rounds):
        fig.canvas.draw()
        box = ax.get_window_extent()
        renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
        extents = [label.get_window_extent(renderer) for label in labels]
        over_right = max((e.x1 for e in extents), default=box.x1) - (box.x1 - margin_px)
        over_left = (box.x0 + margin_px) - min((e.x0 for e in extents), default=box.x0)
        if over_right <= 0 and over_left <= 0:
            return
        left, right = ax.get_xlim()
        per_px = (right - left) / box.width
        ax.set_xlim(
            left - (over_left + 2) * per_px if over_left > 0 else left,
            right + (over_right + 2) * per_px if over_right > 0 else right,
        )
