"""The lede: the week in ten seconds, two to four sentences above everything else.

1. The rarest move of the week with its rarity (the subject's fact), naming its window;
   and, when that move is not the rotation itself, how the rotation went over the same
   five sessions.
2. Who carried or dragged the index this year (issue/headline.py's `support`).
3. When this week is among the five largest small-cap episodes: what followed the five
   largest earlier ones (the median spread over the next 63 sessions, from complete windows
   only).
4. The next scheduled catalyst and its date.
Every claim is made by issue/claims.py's rules; tests/test_claims.py checks them.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING

from newsletter.issue.claims import points, rarity_words, spread_sentence, what_moved
from newsletter.issue.headline import candidates, fact_sentence, headline_spread, support
from newsletter.issue.numbers import long_date

if TYPE_CHECKING:
    from newsletter.weekstats import SpreadStats, WeekStats

AFTERMATH_RANK = 5
"""This week must be among this many largest episodes for the aftermath sentence."""
AFTERMATH_MIN = 3
_COUNTS = {3: "three", 4: "four", 5: "five"}
"""Complete earlier windows a median needs."""


@dataclass(frozen=True, slots=True)
class Story:
    """The rotation as the email tells it: one spread (the longest history), its rarity in
    plain words, and what followed the largest earlier episodes when that applies."""

    spread: SpreadStats
    rarity_words: str
    aftermath: str


def story_of(stats: WeekStats) -> Story:
    spread = headline_spread(stats)
    pair = f"{spread.long}-{spread.short}"
    rarity = next((r for r in stats.rarities if r.kind == "spread" and r.subject == pair), None)
    words = rarity_words(rarity, what_moved(rarity)) if rarity else ""
    return Story(spread, words[0].upper() + words[1:] if words else "", aftermath_sentence(spread))


def _window(stats: WeekStats, spread: SpreadStats) -> str:
    return (
        f"Over the five sessions from the close of {long_date(spread.window_start)} to "
        f"{long_date(stats.as_of)}"
    )


def aftermath_sentence(spread: SpreadStats) -> str:
    """What followed the largest earlier episodes, when this week is one of the largest."""
    rank = spread.episode_rank  # None unless this week is a new episode
    if not (spread.value > 0 and rank is not None and rank <= AFTERMATH_RANK):
        return ""
    later = [a.next_63 for a in spread.aftermath if a.next_63 is not None]
    if len(later) < AFTERMATH_MIN:
        return ""
    median = statistics.median(later)
    verb = "lead" if median >= 0 else "trail"
    which = (
        f"the {_COUNTS[len(later)]} largest earlier episodes"
        if len(later) == len(spread.aftermath)
        else f"{_COUNTS.get(len(later), str(len(later)))} of the five largest earlier episodes "
        "(the others are too recent)"
    )
    return (
        f"After {which}, small caps went on to {verb} by a median of {points(median)} over the "
        "next 63 sessions."
    )


def _clause(sentence: str) -> str:
    """A sentence to follow "Over the five sessions ...,": its window said once, lower case
    first (a name such as "Energy" or "Nvidia" keeps its capital)."""
    text = sentence.replace(" in five sessions", "", 1)
    return text[0].lower() + text[1:] if text.startswith(("The ", "A ", "Small caps")) else text


def write_lede(stats: WeekStats) -> tuple[str, ...]:
    """The lede's sentences, in order (two to four)."""
    spread = headline_spread(stats)
    ranked = candidates(stats)
    top = ranked[0] if ranked else None
    window = _window(stats, spread)
    if top is None or top.kind == "spread":
        said = fact_sentence(top, spread) if top else spread_sentence(spread)
        sentences = [f"{window}, {_clause(said)}."]
    else:
        sentences = [
            f"{window}, {_clause(fact_sentence(top, spread))}.",
            f"Over the same five sessions, {_clause(spread_sentence(spread))}.",
        ]
    sentences += [support(stats), aftermath_sentence(spread)]
    others = [r for r in ranked if r is not top and r.kind != "spread"]
    if not any(sentences[1:]) and others:  # a second fact, so the lede is never one line
        sentences.append(
            f"Over the same five sessions, {_clause(fact_sentence(others[0], spread))}."
        )
    if stats.key_dates:
        upcoming = stats.key_dates[0]
        sentences.append(f"Next: {upcoming.label}, {long_date(upcoming.day)}.")
    return tuple(sentence for sentence in sentences if sentence)[:4]
