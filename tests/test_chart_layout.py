"""The charts as drawn, checked without a person looking: every text lies inside its figure,
no two texts overlap, and every number on an axis reads back as the value of its tick at the
precision it shows. On the charts of several real weeks, calm and wild ones."""

from __future__ import annotations

import math
import re
from datetime import date

import pytest
from matplotlib.text import Text

from newsletter.issue import charts as charts_module

WEEKS = ("2024-07-17", "2025-02-20", "2025-09-26", "2008-10-10")
NUMBER = re.compile(r"^[+\-\u2212]?\d+(\.\d+)?$")
SLACK_PX = 1.0


def _views(ax):
    """Each axis of `ax` with its view interval, low to high."""
    for axis, limits in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
        yield axis, min(limits), max(limits)


def _off_view(fig) -> set[int]:
    """The tick labels matplotlib keeps but does not draw: their tick is outside the view."""
    hidden = set()
    for ax in fig.axes:
        for axis, low, high in _views(ax):
            for tick in [*axis.get_major_ticks(), *axis.get_minor_ticks()]:
                if not low <= tick.get_loc() <= high:
                    hidden.update({id(tick.label1), id(tick.label2)})
    return hidden


def _texts(fig):
    """(text, its box in pixels) of every text the figure draws."""
    renderer = fig.canvas.get_renderer()
    hidden = _off_view(fig)
    return [
        (text, text.get_window_extent(renderer))
        for text in fig.findobj(Text)
        if text.get_visible() and text.get_text().strip() and id(text) not in hidden
    ]


def _tick_labels(fig):
    """(label, its tick's value) of every numeric axis' ticks inside the view."""
    pairs = []
    for ax in fig.axes:
        for axis, low, high in _views(ax):
            kind = type(axis.get_major_formatter()).__module__
            if kind.endswith(("dates", "category")):  # month names, bar names
                continue
            for tick in axis.get_major_ticks():
                label = tick.label1
                if label.get_visible() and label.get_text() and low <= tick.get_loc() <= high:
                    pairs.append((label.get_text(), tick.get_loc()))
    return pairs


def _reads_back(label: str, value: float) -> bool:
    """Whether `label` ("+2.5 pp", "-10%", "0.350", "0"; a minus sign or a hyphen) shows the
    tick's value itself: a tick at 2.5 labelled "+2 pp" is a wrong label, not a rounded one."""
    number = label.replace("pp", "").replace("%", "").strip()
    if not NUMBER.match(number):
        return False
    shown = float(number.replace("\u2212", "-"))
    return math.isclose(shown, value, rel_tol=1e-9, abs_tol=1e-9)


@pytest.fixture(scope="module")
def drawn(market, build_day):
    """Every chart of the four weeks, as figures drawn the way the PNGs are."""
    from newsletter.config import StatsSection  # noqa: PLC0415

    figures = []
    original = charts_module._to_png

    def keep(fig):
        fig.canvas.draw()
        title = fig._suptitle.get_text() if fig._suptitle else ""
        size = (fig.bbox.width, fig.bbox.height)
        figures.append((week, title, size, _texts(fig), _tick_labels(fig)))
        return original(fig)

    charts_module._to_png = keep
    try:
        for week in WEEKS:
            stats = build_day(week).stats
            prices = market.at(date.fromisoformat(week)).prices
            charts_module.render_charts(prices, stats, StatsSection().ratio_chart_sessions)
    finally:
        charts_module._to_png = original
    return figures


def test_every_text_of_every_chart_is_inside_its_figure(drawn):
    for week, title, (width, height), texts, _ in drawn:
        for text, box in texts:
            assert box.x0 >= -SLACK_PX and box.y0 >= -SLACK_PX, (week, title, text.get_text())
            assert box.x1 <= width + SLACK_PX and box.y1 <= height + SLACK_PX, (
                week,
                title,
                text.get_text(),
            )


def test_no_two_texts_of_a_chart_overlap(drawn):
    for week, title, _, boxes, _ in drawn:
        for i, (first, a) in enumerate(boxes):
            for second, b in boxes[i + 1 :]:
                overlap_x = min(a.x1, b.x1) - max(a.x0, b.x0)
                overlap_y = min(a.y1, b.y1) - max(a.y0, b.y0)
                assert overlap_x <= SLACK_PX or overlap_y <= SLACK_PX, (
                    week,
                    title,
                    first.get_text(),
                    second.get_text(),
                )


def test_every_axis_number_is_the_value_of_its_tick(drawn):
    for week, title, _, _, ticks in drawn:
        for label, value in ticks:
            assert _reads_back(label, value), (week, title, label, value)


@pytest.mark.parametrize(
    ("label", "value", "ok"),
    [
        ("+2 pp", 2.5, False),
        ("+2.5 pp", 2.5, True),
        ("0 pp", 0.5, False),
        ("\u22125%", -5.0, True),
        ("0.350", 0.35, True),
        ("0.34", 0.335, False),
        ("10%", 10.0000000001, True),
        ("Jan", 1.0, False),
    ],
)
def test_the_read_back_rule_itself(label, value, ok):
    assert _reads_back(label, value) is ok
