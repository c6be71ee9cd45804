"""The headline rules, one by one, on the real 2024-07-16 statistics with one fact changed."""

from __future__ import annotations

import calendar
import dataclasses
import re
from datetime import date

import pytest

from newsletter.issue.headline import write_headline
from newsletter.issue.lede import write_lede
from newsletter.weekstats import Rarity


@pytest.fixture(scope="module")
def stats(build_day):
    return build_day("2024-07-16").stats


def rarity(kind, subject, value, rank, of=9000, since=None, new=True, start=date(1987, 9, 10)):
    return Rarity(kind, subject, value, 5, rank / of, rank, of, start, new, since)


def with_rarities(stats, *rarities, spread_value=None):
    """`stats` whose rarities are `rarities` (rarest first), the spread's value changed too."""
    changed = dataclasses.replace(stats, rarities=tuple(sorted(rarities, key=lambda r: r.tail)))
    if spread_value is not None:
        index = dataclasses.replace(stats.spread_5d_index, value=spread_value)
        changed = dataclasses.replace(changed, spread_5d_index=index)
    return changed


def test_a_record_spread_is_a_record_rotation(stats):
    headline = write_headline(stats)
    assert headline.rule == "record"
    assert headline.subject == (
        "Record rotation: small caps beat the S&P 500 by 9.9 points in five sessions"
    )
    assert headline.preheader.startswith(
        "The largest five-session lead for small caps in data back to September 1987."
    )
    assert "mega caps made 56.2% of the S&P 500's gain this year" in headline.preheader


def test_a_rare_new_episode_says_since_when(stats):
    spread = rarity("spread", "^RUT-^GSPC", 0.0989, 3, since=date(2020, 4, 29))
    headline = write_headline(with_rarities(stats, spread))
    assert headline.rule == "spread"
    assert headline.subject == "Small caps beat the S&P 500 by 9.9 points in five sessions"
    assert headline.preheader.startswith(
        "The largest five-session lead for small caps since April 2020."
    )
    assert "the largest five-session lead for small caps since April 2020" in " ".join(
        write_lede(with_rarities(stats, spread))
    )


def test_a_window_inside_a_larger_run_never_says_since(stats):
    inside = rarity("spread", "^RUT-^GSPC", 0.0989, 3, since=None, new=False)
    headline = write_headline(with_rarities(stats, inside))
    subject = headline.subject
    assert "lead for small caps since" not in subject and "record" not in subject.lower()
    assert subject.endswith(", top 1% since 1987")
    words = " ".join([subject, headline.preheader, *write_lede(with_rarities(stats, inside))])
    months = "|".join(calendar.month_name[1:])
    assert not re.search(rf"(most|largest)[^.]* since ({months}) \d{{4}}", words), words


def test_a_rarer_move_leads_and_the_rotation_follows(stats):
    nvidia = rarity("megacap", "NVDA", -0.15, 1, of=4000, start=date(1999, 1, 22))
    spread = rarity("spread", "^RUT-^GSPC", 0.0989, 40)
    headline = write_headline(with_rarities(stats, spread, nvidia))
    assert headline.rule == "move"
    assert headline.subject == (
        "Nvidia fell 15.0% in five sessions, the most in data back to January 1999"
    )
    assert headline.preheader.startswith("Small caps beat the S&P 500 by 9.9 points")


def test_a_tie_never_leads_and_is_called_level(stats):
    tie = rarity("spread", "^RUT-^GSPC", 0.0003, 1)
    energy = rarity("sector", "XLE", 0.05, 300, of=6000, start=date(1998, 12, 22))
    headline = write_headline(with_rarities(stats, tie, energy, spread_value=0.0003))
    assert headline.subject.startswith("Energy stocks (XLE) rose 5.0% in five sessions")
    assert "beat" not in headline.preheader.split(".")[0]
    assert headline.preheader.startswith(
        "Small caps and the S&P 500 finished level over five sessions."
    )


def test_the_other_spread_pair_never_leads(stats):
    funds = rarity("spread", "IWM-SPY", 0.1, 1, of=6000)
    index = rarity("spread", "^RUT-^GSPC", 0.0989, 500)
    headline = write_headline(with_rarities(stats, funds, index))
    assert "IWM" not in headline.subject and "Record" not in headline.subject


def test_the_editor_overrides(stats):
    headline = write_headline(stats, subject="My words")
    assert (headline.subject, headline.rule) == ("My words", "editor")
    assert headline.preheader == write_headline(stats).preheader
