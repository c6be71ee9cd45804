"""The charts as drawn, checked without a person looking: every text lies inside its figure,
no two texts overlap, and every number on an axis reads back as the value of its tick at the
precision it shows. On the charts of several real weeks, calm and wild ones."""

from __future__ import annotations

import math
import os
import re
from datetime import date

import pytest
from matplotlib.colors import to_hex
from matplotlib.patches import Rectangle
from matplotlib.text import Text

from newsletter.issue import chartstyle
from newsletter.issue.chartpool import draw_here

pytestmark = [pytest.mark.xdist_group("chart-layout"), pytest.mark.slow]  # one worker, once
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
    original = chartstyle.to_png

    def keep(fig):
        fig.canvas.draw()
        title = fig._suptitle.get_text() if fig._suptitle else ""
        size = (fig.bbox.width, fig.bbox.height)
        figures.append((week, title, size, _texts(fig), _tick_labels(fig), fig))
        return original(fig)

    chartstyle.to_png = keep
    try:
        for week in WEEKS:
            stats = build_day(week).stats
            prices = market.at(date.fromisoformat(week)).prices
            draw_here(prices, stats, StatsSection().ratio_chart_sessions)
    finally:
        chartstyle.to_png = original
    return figures


def test_every_text_of_every_chart_is_inside_its_figure(drawn):
    for week, title, (width, height), texts, _, _ in drawn:
        for text, box in texts:
            assert box.x0 >= -SLACK_PX and box.y0 >= -SLACK_PX, (week, title, text.get_text())
            assert box.x1 <= width + SLACK_PX and box.y1 <= height + SLACK_PX, (
                week,
                title,
                text.get_text(),
            )


def test_no_two_texts_of_a_chart_overlap(drawn):
    for week, title, _, boxes, _, _ in drawn:
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
    for week, title, _, _, ticks, _ in drawn:
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


def _contrast(first: str, second: str) -> float:
    """WCAG 2 contrast ratio of two colours, from the sRGB formula itself."""

    def luminance(colour: str) -> float:
        channels = [int(colour.lstrip("#")[i : i + 2], 16) / 255 for i in (0, 2, 4)]
        linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    high, low = sorted((luminance(first), luminance(second)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_every_text_is_at_least_12_css_px_on_a_phone(drawn):
    """A chart shows 343 CSS px wide on a phone (a 375 px screen less the column's padding)."""
    for week, title, (width, _), texts, _, fig in drawn:
        for text, _ in texts:
            image_px = text.get_fontsize() * fig.dpi / 72
            assert image_px * 343 / width >= 12, (week, title, text.get_text(), image_px)


def test_every_text_colour_reads_on_the_card(drawn):
    for week, title, _, texts, _, fig in drawn:
        card = to_hex(fig.get_facecolor())
        for text, _ in texts:
            ratio = _contrast(to_hex(text.get_color()), card)
            assert ratio >= 4.5, (week, title, text.get_text(), to_hex(text.get_color()), ratio)


def _lines(fig):
    return [line for ax in fig.axes for line in ax.get_lines() if len(line.get_xdata()) > 2]


def test_each_fund_has_one_colour_and_direction_has_its_own_pair(drawn):
    """The YTD lines are labelled with their ticker: each line's colour is its fund's, the same
    in every week, and no fund's colour is the up or the down colour. Bars mean direction:
    a bar is the up colour when its value is positive, the down colour when negative."""
    up, down = chartstyle.UP, chartstyle.DOWN
    seen: dict[str, str] = {}
    for week, title, _, texts, _, fig in drawn:
        labels = {
            t.get_text().split()[0]: to_hex(t.get_color())
            for t, _ in texts
            if re.match(r"^[A-Z]{3} [+\u2212]", t.get_text())
        }
        for ticker, colour in labels.items():
            assert seen.setdefault(ticker, colour) == colour, (week, ticker)
            assert colour not in {up, down}, (week, title, ticker)
        line_colours = {to_hex(line.get_color()) for line in _lines(fig)}
        assert not line_colours & {up, down}, (week, title, "a line in a direction colour")
        for ax in fig.axes:
            for bar in ax.patches:
                if not isinstance(bar, Rectangle) or bar.get_width() == 0 or bar.get_height() >= 1:
                    continue
                colour = to_hex(bar.get_facecolor())
                if colour in {up, down}:
                    assert colour == (up if bar.get_width() > 0 else down), (week, title)
    assert set(seen) >= {"SPY", "QQQ", "IWM", "RSP"}
    assert len(set(seen.values())) == len(seen), "two funds share a colour"


def test_every_title_states_a_number(drawn):
    for week, title, *_ in drawn:
        assert re.search(r"\d", title), (week, title)


def test_this_module_runs_in_one_worker(request):
    """Under pytest-xdist's loadgroup a grouped test's id carries its group: if it does not,
    grouping is broken (pytest 9 with xdist 3.8) and every worker draws the four weeks."""
    if os.environ.get("PYTEST_XDIST_WORKER") and request.config.getvalue("loadgroup"):
        assert request.node.nodeid.endswith("@chart-layout")
