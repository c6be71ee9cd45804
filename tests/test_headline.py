"""The headline rules, one by one, on the real 2024-07-16 statistics with one fact changed."""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path

import pytest

from newsletter.issue.headline import write_headline

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def stats(build_day):
    return build_day("2024-07-16").stats


def with_spread(stats, **changes):
    index = dataclasses.replace(stats.spread_5d_index, **changes)
    return dataclasses.replace(stats, spread_5d_index=index)


def test_record_episode(stats):
    headline = write_headline(stats)
    assert headline.rule == "record"
    assert (
        headline.subject
        == "Record rotation: Russell 2000 beat the S&P 500 by 9.9 points in five sessions"
    )
    assert headline.preheader.startswith(
        "The largest five-session small-cap outperformance in data back to September 1987."
    )


def test_a_top_five_episode_says_since_when(stats):
    rare = with_spread(stats, episode_rank=3, episode_largest_since=date(2020, 4, 29))
    headline = write_headline(rare)
    assert headline.rule == "rare"
    assert headline.subject.endswith(", the most since April 2020")
    assert "Number 3 of 1,484 such episodes since September 1987" in headline.preheader


def test_largest_since_needs_the_episode_rank(stats):
    ordinary = with_spread(stats, episode_rank=40, episode_largest_since=date(2024, 7, 1))
    assert "most since" not in write_headline(ordinary).subject


def test_a_mega_cap_drop(stats):
    ordinary = with_spread(stats, episode_rank=40)
    conc = ordinary.concentration
    members = tuple(
        dataclasses.replace(m, seven_day=-0.125) if m.name == conc.lead else m for m in conc.members
    )
    dropped = dataclasses.replace(
        ordinary, concentration=dataclasses.replace(conc, members=members)
    )
    headline = write_headline(dropped)
    assert headline.rule == "megacap_drop"
    assert headline.subject.startswith(
        "Nvidia fell 12.5% in seven days as Russell 2000 beat the S&P 500"
    )


def test_a_big_index_move(stats):
    ordinary = with_spread(stats, episode_rank=40)
    returns = {**ordinary.returns, "SPY": {**ordinary.returns["SPY"], "1W": -0.041}}
    headline = write_headline(dataclasses.replace(ordinary, returns=returns))
    assert headline.rule == "big_move"
    assert headline.subject == "The S&P 500 fell 4.1% this week"


def test_the_default_scoreboard_line(stats):
    ordinary = with_spread(stats, episode_rank=40)
    headline = write_headline(ordinary)
    assert headline.rule == "scoreboard"
    assert (
        headline.subject
        == "Week to 16 Jul: Russell 2000 beat the S&P 500 by 9.9 points in five sessions"
    )


def test_the_editor_overrides(stats):
    headline = write_headline(stats, subject="My words")
    assert (headline.subject, headline.rule) == ("My words", "editor")
    assert headline.preheader == write_headline(stats).preheader
