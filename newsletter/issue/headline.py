"""The subject line and preheader: the week's rarest fact first.

Every five-session move of the week is ranked against its own history (stats/rarity.py: the
small-cap spread, equal against cap weight, each mega cap, each sector, the 10-year yield), and
the subject leads with the rarest, in the words issue/claims.py allows for it:
- `record`: the headline spread (^RUT - ^GSPC from 1987 when present, else IWM - SPY) is the
  largest in its history: "Record rotation: the Russell 2000 beat the S&P 500 by ...";
- `spread`: the spread is the rarest move, with "the largest ... since <month>" when it is a
  new episode, or "larger than P% of ..." when it is rare;
- `move`: another move is rarer ("Nvidia fell 12.5% in five sessions, the largest five-session
  drop since ..."); the preheader then says how the rotation went.
A spread under 0.05 points is a tie and never leads. An editor's subject or preheader replaces
the generated one (rule `editor`).

Whoever wrote them, the words must fit a message (`check_text`): at most 250 characters and no
control character (C0 including tab, DEL, C1), which a mail header cannot carry raw and some
servers refuse the whole message for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from newsletter.errors import ContentError
from newsletter.issue.claims import (
    is_record,
    is_tie,
    move_sentence,
    percent,
    rarity_brief,
    rarity_phrase,
    spread_sentence,
    what_moved,
)
from newsletter.models import CONTROL, display_name

if TYPE_CHECKING:
    from newsletter.weekstats import Rarity, SpreadStats, WeekStats

SUBJECT_ROOM = 78
"""Characters an inbox shows of a subject; a longer generated one drops its rarity phrase
(the lede says it)."""
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


def headline_spread(stats: WeekStats) -> SpreadStats:
    """The spread the reader is told about: the longest history available."""
    return stats.spread_5d_index or stats.spread_5d


def candidates(stats: WeekStats) -> list[Rarity]:
    """The moves that may lead, rarest first: not the other spread pair (one story, one
    number), and no tie."""
    spread = headline_spread(stats)
    pair = f"{spread.long}-{spread.short}"
    return [
        r
        for r in stats.rarities
        if not (r.kind == "spread" and r.subject != pair)
        and not (r.kind in ("spread", "breadth") and is_tie(r.value))
    ]


def _capitalised(text: str) -> str:
    return text[0].upper() + text[1:]


def fact_sentence(rarity: Rarity, spread: SpreadStats, *, subject: bool = False) -> str:
    """One move as a sentence with its rarity, capitalised; for a `subject`, the rarity in
    brief, and none if even that would pass SUBJECT_ROOM characters."""
    said = spread_sentence(spread) if rarity.kind == "spread" else move_sentence(rarity)
    if not subject:
        phrase = rarity_phrase(rarity, what_moved(rarity))
        return _capitalised(f"{said}, {phrase}" if phrase else said)
    brief = rarity_brief(rarity)
    full = f"{said}, {brief}" if brief else said
    return _capitalised(full if len(full) <= SUBJECT_ROOM else said)


def support(stats: WeekStats) -> str:
    """Who carried or dragged the index this year, in one sentence."""
    conc = stats.concentration
    if conc is None:
        return ""
    index = display_name(conc.index)
    if conc.index_ytd > 0 and conc.group_share > 0:
        lead = max(conc.members, key=lambda m: m.contribution)
        made = (
            f"more than all of the {index}'s gain this year ({percent(conc.group_share)})"
            if conc.group_share > 1
            else f"{percent(conc.group_share)} of the {index}'s gain this year"
        )
        return (
            f"{len(conc.members)} mega caps made {made}, {display_name(lead.name)} alone "
            f"{percent(lead.share)}."
        )
    drag = min(conc.members, key=lambda m: m.contribution)
    if conc.index_ytd < 0 and drag.contribution < 0:
        return (
            f"The {index} is down {abs(conc.index_ytd) * 100:.2f}% this year; "
            f"{display_name(drag.name)} was the biggest drag, {drag.contribution * 100:.2f} "
            "points of it.".replace("-", "\u2212")
        )
    return ""


def _unsaid(rarity: Rarity, subject: str) -> str:
    """The rarity the subject had no room for, as the preheader's first sentence."""
    phrase = rarity_phrase(rarity, what_moved(rarity))
    brief = rarity_brief(rarity)
    return "" if not phrase or (brief and brief in subject) else f"{_capitalised(phrase)}."


def _generated(stats: WeekStats) -> Headline:
    spread = headline_spread(stats)
    ranked = candidates(stats)
    top = ranked[0] if ranked else None
    rotation = _capitalised(spread_sentence(spread)) + "."
    if top is None:
        subject = f"Week to {stats.as_of.day} {stats.as_of:%b}: {rotation.rstrip('.')}"
        return Headline(subject, " ".join(p for p in (rotation, support(stats)) if p), "spread")
    if top.kind == "spread" and top.value > 0 and is_record(top):
        subject, rule = f"Record rotation: {spread_sentence(spread)}", "record"
        first = _unsaid(top, "")
    else:
        subject = fact_sentence(top, spread, subject=True)
        rule = "spread" if top.kind == "spread" else "move"
        first = _unsaid(top, subject)
    if top.kind == "spread":
        others = [r for r in ranked if r.kind != "spread"]
        second = f"{fact_sentence(others[0], spread)}." if others and not first else ""
    else:
        second = rotation
    preheader = " ".join(part for part in (first, second, support(stats)) if part)
    return Headline(subject=subject, preheader=preheader or rotation, rule=rule)


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
