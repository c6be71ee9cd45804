"""The sentences the digest makes about the week's moves, and the rules that allow each claim.

A claim is words about a number: "beat ... by 10.0 points", "the largest in data back to
September 1987", "the most since July 2024", "larger than 97% of ...". Each phrase here is made
only when its rule holds, from the figures in stats.json:

- *record* ("in data back to <month>"): this window is larger, in its direction, than every
  earlier one of the history (rank 1 and the only window that extreme);
- *most since <month>*: this window is a new episode (none of the earlier windows it overlaps
  is as extreme) and the latest earlier window at least as extreme ends in that month;
- *a larger ... than P% of the N since <year>*: P is the share of the history's N windows
  strictly less extreme, rounded down;
- a spread under 0.05 points either way is a *tie*: nobody "beat" anybody by 0.0 points.

tests/test_claims.py checks these rules with its own implementation over many weeks.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from newsletter.issue.numbers import month, plain_pct
from newsletter.models import display_name

if TYPE_CHECKING:
    from newsletter.weekstats import Rarity, SpreadStats

TIE = 0.0005
"""Half the last digit shown (0.1 points): a smaller spread reads "0.0" and is a tie."""
RARE_TAIL = 0.05
"""A move at least this rare is worth a plain-words rarity ("larger than 97% of ...")."""


def points(value: float) -> str:
    """A spread in prose: 0.0997 -> '10.0 points' (the magnitude; the words carry the sign)."""
    return f"{abs(value) * 100:.1f} points"


def percent(value: float) -> str:
    """A move's size in prose: -0.125 -> '12.5%' (the words carry the sign)."""
    return plain_pct(abs(value))


def is_tie(value: float) -> bool:
    return abs(value) < TIE


_SMALL_CAPS = {"^RUT": "small caps", "IWM": "small caps (IWM)"}


def pair_names(long: str, short: str) -> tuple[str, str]:
    """Names for a pair: the Russell 2000 as "small caps" (its fund with its ticker), another
    index by its name ("the S&P 500"), a fund by its name and ticker ("the S&P 500 fund
    (SPY)"), so "the S&P 500 rose" always means the index."""

    def name(ticker: str) -> str:
        if ticker in _SMALL_CAPS:
            return _SMALL_CAPS[ticker]
        if ticker.startswith("^"):
            return f"the {display_name(ticker)}"
        return f"the {display_name(ticker)} fund ({ticker})"

    return name(long), name(short)


def pair_sentence(long_ticker: str, short_ticker: str, value: float) -> str:
    """Who beat whom over the five sessions, or that they finished level."""
    long, short = pair_names(long_ticker, short_ticker)
    if is_tie(value):
        return f"{long} and {short} finished level over five sessions"
    winner, loser = (long, short) if value > 0 else (short, long)
    return f"{winner} beat {loser} by {points(value)} in five sessions"


def spread_sentence(spread: SpreadStats) -> str:
    return pair_sentence(spread.long, spread.short, spread.value)


def is_record(rarity: Rarity) -> bool:
    return rarity.rank == 1 and math.isclose(rarity.tail, 1 / rarity.of)


def _rule(rarity: Rarity) -> str | None:
    """Which rarity claim the move allows: "record", "since", "share" or none."""
    if is_record(rarity):
        return "record"
    if rarity.tail > RARE_TAIL:
        return None
    return "since" if rarity.new_episode and rarity.largest_since is not None else "share"


def _share(rarity: Rarity) -> int:
    """P: the share of the history's windows strictly less extreme, in whole percent."""
    return math.floor(100 * (1 - rarity.tail) + 1e-9)


def _share_phrase(rarity: Rarity, what: str) -> str:
    return (
        f"a larger {what} than {_share(rarity)}% of the {rarity.of:,} since "
        f"{rarity.history_start.year}"
    )


def rarity_phrase(rarity: Rarity, what: str) -> str | None:
    """How unusual a move is, in words its rule allows, or None for an ordinary one.
    `what` names the kind of move ("five-session lead for small caps")."""
    rule = _rule(rarity)
    if rule == "record":
        return f"the largest {what} in data back to {month(rarity.history_start)}"
    if rule == "since" and rarity.largest_since is not None:
        return f"the largest {what} since {month(rarity.largest_since)}"
    return _share_phrase(rarity, what) if rule == "share" else None


def rarity_brief(rarity: Rarity) -> str | None:
    """`rarity_phrase` in the few words a subject line has room for: "the most in data back
    to <month>", "the most since <month>", "top K% since <year>" (K = 100 - P)."""
    rule = _rule(rarity)
    if rule == "record":
        return f"the most in data back to {month(rarity.history_start)}"
    if rule == "since" and rarity.largest_since is not None:
        return f"the most since {month(rarity.largest_since)}"
    if rule == "share":
        return f"top {100 - _share(rarity)}% since {rarity.history_start.year}"
    return None


def rarity_words(rarity: Rarity, what: str) -> str:
    """`rarity_phrase`, or for an ordinary move the share of windows it exceeds (the plain
    words the email uses in place of a percentile and a z-score)."""
    return rarity_phrase(rarity, what) or _share_phrase(rarity, what)


def move_sentence(rarity: Rarity) -> str:
    """A move in words: "Nvidia fell 12.5% in five sessions", or a pair's sentence."""
    if rarity.kind in ("spread", "breadth"):
        long, short = rarity.subject.split("-")
        return pair_sentence(long, short, rarity.value)
    verb = "rose" if rarity.value >= 0 else "fell"
    if rarity.kind == "yield":
        return f"The 10-year Treasury yield {verb} {abs(rarity.value):.0f} bp in five sessions"
    if rarity.kind == "sector":
        return f"{display_name(rarity.subject)} stocks ({rarity.subject}) {verb} {percent(rarity.value)} in five sessions"
    return f"{display_name(rarity.subject)} {verb} {percent(rarity.value)} in five sessions"


_LEADERS = {"^RUT": "small caps", "IWM": "small caps", "^GSPC": "the S&P 500", "SPY": "the S&P 500"}


def what_moved(rarity: Rarity) -> str:
    """The noun for `rarity_phrase`: what kind of move this is."""
    if rarity.kind == "breadth":  # its S&P 500 is the cap-weight fund: named so
        weight = "equal weight" if rarity.value >= 0 else "cap weight"
        return f"five-session lead for {weight}"
    if rarity.kind == "spread":
        long, short = rarity.subject.split("-")
        leader = long if rarity.value >= 0 else short
        return f"five-session lead for {_LEADERS.get(leader, leader)}"
    if rarity.kind == "yield":
        return f"five-session {'rise' if rarity.value >= 0 else 'fall'}"
    return f"five-session {'gain' if rarity.value >= 0 else 'drop'}"
