"""The subject line and preheader, generated from the week's most notable statistic.

The first rule that applies wins:
1. `record`: this week's small-minus-large 5-session spread is the largest *episode* in the
   longest history available (the index pair ^RUT/^GSPC from 1987 when present, else IWM/SPY).
2. `rare`: it is among the top 5 episodes of that history ("the most since <month year>").
3. `megacap_drop`: the largest mega-cap contributor fell 10 % or more over seven days.
4. `big_move`: the S&P 500 (SPY) moved 3 % or more over the week.
5. `scoreboard`: who beat whom this week, by how much.
An editor's subject or preheader replaces the generated one (rule `editor`). Every number in
these words is a figure in stats.json, rounded; "largest since" appears only when the episode
ranking supports it.

Whoever wrote them, the words must fit a message (`check_text`): at most 250 characters and no
control character (C0 including tab, DEL, C1), which a mail header cannot carry raw and some
servers refuse the whole message for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from newsletter.errors import ContentError
from newsletter.models import CONTROL, display_name

if TYPE_CHECKING:
    from newsletter.weekstats import SpreadStats, WeekStats

RARE_EPISODE_RANK = 5
MEGACAP_DROP = -0.10
BIG_MOVE = 0.03
MAX_TEXT = 250
"""Characters a subject or preheader may have."""
_ROOM = {"subject": "that fit a mail header", "preheader": "a preheader may have"}


@dataclass(frozen=True, slots=True)
class Headline:
    """The subject and preheader, and the rule that produced the subject."""

    subject: str
    preheader: str
    rule: str

    def to_json(self) -> dict[str, Any]:
        return {"subject": self.subject, "preheader": self.preheader, "rule": self.rule}


def _pct(value: float) -> str:
    return f"{abs(value) * 100:.1f}%"


def _points(value: float) -> str:
    return f"{abs(value) * 100:.1f} points"


def _count(n: int) -> str:
    """Small counts in words, as prose writes them."""
    words = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
    return words[n] if n < len(words) else f"{n:,}"


def _month(day: Any) -> str:
    return f"{day:%B %Y}"


def _lead(spread: SpreadStats) -> str:
    long_name, short_name = display_name(spread.long), display_name(spread.short)
    if spread.value >= 0:
        return f"{long_name} beat the {short_name} by {_points(spread.value)} in five sessions"
    return f"{short_name} beat the {long_name} by {_points(spread.value)} in five sessions"


def _support(stats: WeekStats) -> str:
    """The preheader's second fact: the lead mega cap's week and the group's share, or the index's week."""
    conc = stats.concentration
    if conc is not None:
        lead = next(m for m in conc.members if m.name == conc.lead)
        verb = "fell" if lead.seven_day < 0 else "rose"
        line = f"{display_name(lead.name)} {verb} {_pct(lead.seven_day)} in seven days"
        if conc.index_ytd > 0 and conc.group_share > 0:
            line += f"; the {_count(len(conc.members))} mega caps made {_pct(conc.group_share)} of the index's gain this year"
        return line + "."
    week = stats.returns.get(stats.spread_5d.short, {}).get("1W")
    if week is None:
        return "The scoreboard, the charts and the dates ahead inside."
    return f"The {display_name(stats.spread_5d.short)} {'rose' if week >= 0 else 'fell'} {_pct(week)} on the week."


def _generated(stats: WeekStats) -> Headline:
    spread = stats.spread_5d_index or stats.spread_5d
    since = _month(spread.history_start)
    if spread.value > 0 and spread.episode_rank == 1:
        return Headline(
            subject=f"Record rotation: {_lead(spread)}",
            preheader=f"The largest five-session small-cap outperformance in data back to {since}. {_support(stats)}",
            rule="record",
        )
    if (
        spread.value > 0
        and spread.episode_rank <= RARE_EPISODE_RANK
        and spread.episode_largest_since
    ):
        return Headline(
            subject=f"{_lead(spread)}, the most since {_month(spread.episode_largest_since)}",
            preheader=f"Number {spread.episode_rank} of {spread.episodes:,} such episodes since {since}. {_support(stats)}",
            rule="rare",
        )
    conc = stats.concentration
    if conc is not None:
        lead = next(m for m in conc.members if m.name == conc.lead)
        if lead.seven_day <= MEGACAP_DROP:
            return Headline(
                subject=f"{display_name(lead.name)} fell {_pct(lead.seven_day)} in seven days as {_lead(stats.spread_5d)}",
                preheader=_support(stats),
                rule="megacap_drop",
            )
    week = stats.returns.get(stats.spread_5d.short, {}).get("1W")
    if week is not None and abs(week) >= BIG_MOVE:
        return Headline(
            subject=f"The {display_name(stats.spread_5d.short)} {'rose' if week > 0 else 'fell'} {_pct(week)} this week",
            preheader=f"{_lead(stats.spread_5d)}. {_support(stats)}",
            rule="big_move",
        )
    return Headline(
        subject=f"Week to {stats.as_of.day} {stats.as_of:%b}: {_lead(stats.spread_5d)}",
        preheader=_support(stats),
        rule="scoreboard",
    )


def write_headline(
    stats: WeekStats, *, subject: str | None = None, preheader: str | None = None
) -> Headline:
    """The issue's headline: generated by the rules above unless the editor supplied words."""
    generated = _generated(stats)
    if subject is None and preheader is None:
        return generated
    return Headline(
        subject=subject or generated.subject,
        preheader=preheader or generated.preheader,
        rule="editor" if subject else generated.rule,
    )


def text_problem(text: str, field: str) -> tuple[str, str] | None:
    """What keeps `text` from being the issue's `field` ("subject" or "preheader") and the
    editor's fix, or None if it fits. Positions count characters from 1."""
    control = CONTROL.search(text)
    if control:
        found = f"contains a control character (U+{ord(control.group()):04X}) at position "
        return found + str(control.start() + 1), "remove it"
    if len(text) > MAX_TEXT:
        return f"is {len(text)} characters, over the {MAX_TEXT} {_ROOM[field]}", "shorten it"
    return None


def check_text(text: str, field: str, source: str, *, fix: str | None = None) -> str:
    """`text` if it can be the issue's `field`; else a ContentError that starts with `source`
    (such as "the --subject") and ends with `fix` (by default what the editor should do)."""
    problem = text_problem(text, field)
    if problem is None:
        return text
    found, editor_fix = problem
    raise ContentError(f"{source} {found}; {fix or editor_fix}")
