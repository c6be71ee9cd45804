"""Every generated sentence is true, as a property over many weeks.

For a sample of as-of sessions (every 25th buildable one since mid-2001, and the weeks an audit
found false claims in), the subject, preheader and lede are split into sentences, and each
claim in them is decided by rules written here from the definitions, on the raw price columns,
not by the code under test: who beat whom by how much, "finished level", "rose/fell X% in five
sessions", "in data back to <month>" (larger than every earlier window), "since <month>" (a new
episode: none of the four earlier windows it overlaps as extreme; the latest earlier window as
extreme ends in that month), "a larger ... than P% of the N since <year>", the mega caps' share
or drag, the median of what followed the largest earlier episodes, and the next key date. A
sentence with a figure that no rule recognises fails the test: no claim goes unchecked.
`scripts/claims_all_weeks.py` runs the same check over every buildable session.
"""

from __future__ import annotations

import csv
import math
import re
import statistics
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from newsletter.app.build import issue_words
from newsletter.config import load_config

from .conftest import REPO

pytestmark = [pytest.mark.xdist_group("claims"), pytest.mark.slow]
AUDITED = ("2016-11-15", "2008-11-04", "2008-12-22", "2023-10-27", "2023-12-29", "2025-01-10")
NAMED = ("2024-07-16", "2024-07-17", "2025-02-20", "2025-09-26", *AUDITED)
MEGACAPS = {"Nvidia": "NVDA", "Microsoft": "MSFT", "Apple": "AAPL", "Alphabet": "GOOGL",
            "Amazon": "AMZN", "Meta": "META"}  # fmt: skip
MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"
SESSIONS = 5


def _windows(values: pd.Series, change: bool = False) -> pd.Series:
    """Every five-row window of a price column: its return (or, for a yield, its change in bp)."""
    moved = (
        (values - values.shift(SESSIONS)) * 100 if change else values / values.shift(SESSIONS) - 1
    )
    return moved.dropna()


class Judge:
    """The rules, applied to one as-of session's data."""

    def __init__(self, market, day: date) -> None:
        self.day = day
        self.adjusted = market.prices.adjusted.loc[: pd.Timestamp(day)]
        self.raw = market.prices.raw.loc[: pd.Timestamp(day)]
        self.last: tuple[pd.Series, str] | None = None
        """The series the previous sentence was about: a preheader may open with the
        subject's rarity alone ("The largest five-session drop in data back to ...")."""

    def pair(self, long: str, short: str, raw: bool) -> pd.Series:
        frame = (self.raw if raw else self.adjusted)[[long, short]]
        return (
            frame[long] / frame[long].shift(SESSIONS) - frame[short] / frame[short].shift(SESSIONS)
        ).dropna()

    def story_pair(self) -> tuple[pd.Series, str, str]:
        """The pair the email tells the week by: the indexes when both closed today."""
        if not self.raw[["^RUT", "^GSPC"]].iloc[-1].isna().any():
            return self.pair("^RUT", "^GSPC", raw=True), "small caps", "the S&P 500"
        return self.pair("IWM", "SPY", raw=False), "small caps (IWM)", "the S&P 500 fund (SPY)"

    def series(self, sentence: str) -> tuple[pd.Series, str] | None:
        """The windows the sentence's first claim is about, and its checked wording."""
        if "Equal Weight fund (RSP)" in sentence or re.search(
            "lead for (equal|cap) weight", sentence
        ):
            return self.pair("RSP", "SPY", raw=False), "RSP"
        pair = (
            r"(small caps|the S&P 500)( \(IWM\)| fund \(SPY\))? (beat|and)|lead for (small|the S&P)"
        )
        if re.search(pair, sentence, re.I):
            windows, long, short = self.story_pair()
            return windows, f"{long}|{short}"
        if found := re.search(r"stocks \((XL\w+)\)", sentence):
            return _windows(self.adjusted[found.group(1)]), "sector"
        if found := re.match(
            rf"(?:Over the (?:same )?five sessions[^,]*, )?({'|'.join(MEGACAPS)}) (rose|fell)",
            sentence,
        ):
            return _windows(self.raw[MEGACAPS[found.group(1)]]), "megacap"
        if "10-year Treasury yield" in sentence:
            return _windows(self.raw["^TNX"], change=True), "yield"
        return None


def _extreme(windows: pd.Series) -> dict[str, object]:
    """The rules for "in data back to", "since" and "a larger ... than P%", from scratch."""
    values = windows.to_numpy()
    sign = 1.0 if values[-1] >= 0 else -1.0
    signed = values * sign
    now, earlier = signed[-1], signed[:-1]
    new_episode = not (earlier[-(SESSIONS - 1) :] >= now).any()
    as_large = np.flatnonzero(earlier >= now)  # positions of the earlier windows as extreme
    return {
        "record": bool((earlier < now).all()),
        "since": f"{windows.index[as_large[-1]]:%B %Y}" if len(as_large) and new_episode else None,
        "share": math.floor(100 * np.count_nonzero(signed < now) / len(signed) + 1e-9),
        "of": len(signed),
        "first": windows.index[0],
    }


def _check_qualifiers(sentence: str, windows: pd.Series) -> None:
    rule = _extreme(windows)
    if found := re.search(r"in data back to (\w+ \d{4})", sentence):
        assert rule["record"], sentence
        assert found.group(1) == f"{rule['first']:%B %Y}", sentence
    if found := re.search(rf"the (?:largest [\w -]+?|most) since ((?:{MONTHS}) \d{{4}})", sentence):
        assert rule["since"] == found.group(1), (sentence, rule["since"])
    if found := re.search(r"a larger [\w -]+? than (\d+)% of the ([\d,]+) since (\d{4})", sentence):
        share, of, year = (
            int(found.group(1)),
            int(found.group(2).replace(",", "")),
            int(found.group(3)),
        )
        assert (share, of, year) == (rule["share"], rule["of"], rule["first"].year), sentence


def _check_brief(sentence: str, rule: dict[str, object]) -> None:
    """A subject's "top K% since <year>": K is 100 minus the share strictly less extreme."""
    if found := re.search(r"top (\d+)% since (\d{4})", sentence):
        assert int(found.group(1)) == 100 - rule["share"], sentence
        assert int(found.group(2)) == rule["first"].year, sentence


def _check_move(sentence: str, judge: Judge) -> bool:
    """The fact at the start of a sentence, with its qualifiers; False if there is none."""
    found = judge.series(sentence)
    if found is None and re.match(
        r"(The largest|A larger) ", sentence
    ):  # the subject's rarity, after it
        found = judge.last
    if found is None:
        return False
    judge.last = found
    windows, kind = found
    value = float(windows.iloc[-1])
    assert windows.index[-1] == pd.Timestamp(judge.day), "a five-session window ending today"
    if beat := re.search(r"(.+?) beat (.+?) by (\d+\.\d) points", sentence):
        assert abs(value) >= 0.0005, f"a tie called a win: {sentence}"
        winner = beat.group(1).rsplit(", ", 1)[-1].removeprefix("Record rotation: ").lower()
        long = "small caps" if kind != "RSP" else "the s&p 500 equal weight fund (rsp)"
        assert winner.startswith(long) == (value > 0), sentence
        assert beat.group(3) == f"{abs(value) * 100:.1f}", sentence
    elif "finished level" in sentence:
        assert abs(value) < 0.0005, sentence
    elif move := re.search(r"(rose|fell) (\d+(?:\.\d)?)(%| bp)", sentence):
        assert (move.group(1) == "rose") == (value >= 0), sentence
        shown = f"{abs(value):.0f}" if kind == "yield" else f"{abs(value) * 100:.1f}"
        assert move.group(2) == shown, sentence
    _check_qualifiers(sentence, windows)
    _check_brief(sentence, _extreme(windows))
    return True


def _year_start(judge: Judge) -> pd.Timestamp:
    before = judge.raw.index[judge.raw.index < pd.Timestamp(date(judge.day.year, 1, 1))]
    return before[judge.raw.loc[before, "^GSPC"].notna()][-1]


def _check_megacaps(sentence: str, judge: Judge) -> bool:
    gain = re.search(
        r"(\d+) mega caps made (?:more than all of )?.*?(\d+\.\d)%.*?, (\w+) alone (\d+\.\d)%",
        sentence,
    )
    drag = re.search(
        r"The S&P 500 is down (\d+\.\d\d)% this year; (\w+) was the biggest drag", sentence
    )
    if not (gain or drag):
        return False
    base = _year_start(judge)
    weights_file = (
        REPO / f"newsletter/data/market/sp500_weights/megacap_weights_{base:%Y-%m-%d}.csv"
    )
    with weights_file.open() as handle:
        weights = {
            row["ticker"]: float(row["weight_pct_mid"]) / 100 for row in csv.DictReader(handle)
        }
    raw = judge.raw
    index_ytd = raw["^GSPC"].iloc[-1] / raw.loc[base, "^GSPC"] - 1
    groups = {
        name: [t for t in weights if t.startswith(ticker[:4])] for name, ticker in MEGACAPS.items()
    }
    contribution = {
        name: sum(weights[t] * (raw[t].iloc[-1] / raw.loc[base, t] - 1) for t in tickers)
        for name, tickers in groups.items()
    }
    if gain:
        assert index_ytd > 0, sentence
        share = sum(contribution.values()) / index_ytd
        assert gain.group(2) == f"{share * 100:.1f}", sentence
        lead = max(contribution, key=contribution.__getitem__)
        assert (
            gain.group(3) == lead and gain.group(4) == f"{contribution[lead] / index_ytd * 100:.1f}"
        )
    else:
        assert index_ytd < 0 and drag.group(1) == f"{-index_ytd * 100:.2f}", sentence
        assert drag.group(2) == min(contribution, key=contribution.__getitem__), sentence
    return True


def _check_next(sentence: str, judge: Judge) -> bool:
    found = re.match(r"Next: (.+), (\w{3} \d{1,2} \w{3} \d{4})$", sentence)
    if not found:
        return False
    with (REPO / "newsletter/data/key_dates.csv").open() as handle:
        events = sorted(
            (date.fromisoformat(row["date"]), row["label"]) for row in csv.DictReader(handle)
        )
    ahead = [e for e in events if judge.day < e[0] <= judge.day + timedelta(days=35)]
    assert ahead, sentence
    day, label = ahead[0]
    assert (found.group(1), found.group(2)) == (label, f"{day:%a} {day.day} {day:%b %Y}")
    return True


def _peaks(values: np.ndarray) -> list[int]:
    """Episode peaks: largest first, each window no peak already chosen overlaps."""
    chosen: list[int] = []
    for i in sorted(range(len(values)), key=lambda i: (-values[i], i)):
        if all(abs(i - j) >= SESSIONS for j in chosen):
            chosen.append(i)
    return chosen


def _check_aftermath(sentence: str, judge: Judge) -> bool:
    found = re.search(
        r"After (?:the )?(\w+) (?:of the five )?largest earlier episodes.*?went on to "
        r"(lead|trail) by a median of (\d+\.\d) points",
        sentence,
    )
    if not found:
        return False
    windows, _, _ = judge.story_pair()
    rows = judge.raw.index if windows.index.isin(judge.raw.index).all() else judge.adjusted.index
    position = {day: i for i, day in enumerate(rows)}
    values = windows.to_numpy()
    now = position[windows.index[-1]]
    ends = [position[d] for d in windows.index]
    earlier = [k for k in range(len(values) - 1) if ends[k] <= now - SESSIONS]
    top = [earlier[i] for i in _peaks(values[earlier])][:5]
    assert values[-1] > 0 and sum(values[k] > values[-1] for k in top) < 5, sentence
    story = windows.index
    long, short = (
        ("^RUT", "^GSPC") if story[0] in judge.raw.index and "^RUT" in judge.raw else ("IWM", "SPY")
    )
    frame = judge.raw if long.startswith("^") else judge.adjusted
    later = []
    for k in top:
        start = ends[k]
        if start + 63 <= now:
            a, b = rows[start], rows[start + 63]
            later.append(
                (frame.loc[b, long] / frame.loc[a, long] - 1)
                - (frame.loc[b, short] / frame.loc[a, short] - 1)
            )
    median = statistics.median(later)
    assert found.group(2) == ("lead" if median >= 0 else "trail")
    assert found.group(3) == f"{abs(median) * 100:.1f}", sentence
    return True


def _sentences(subject: str, preheader: str, lede: tuple[str, ...]) -> list[str]:
    text = " ".join([subject + ".", preheader, *lede])
    return [s.strip() for s in re.split(r"(?<=[a-z%)0-9])\.(?:\s+|$)", text) if s.strip()]


def judge_week(market, config, day: date) -> list[str]:
    """Check every generated sentence of one week; the sentences, for the caller to count."""
    stats, headline, lede = issue_words(config, market.at(day))
    judge = Judge(market, stats.as_of)
    sentences = _sentences(headline.subject, headline.preheader, lede)
    for sentence in sentences:
        checked = [
            check(sentence, judge)
            for check in (_check_move, _check_megacaps, _check_next, _check_aftermath)
        ]
        assert any(checked) or not re.search(r"\d", sentence), f"an unchecked claim: {sentence}"
    return sentences


def sample_days(market) -> list[date]:
    both = market.prices.adjusted[["IWM", "SPY"]].dropna().index
    days = [d.date() for d in both[both >= pd.Timestamp("2001-06-01")][::25]]
    return sorted({*days, *(date.fromisoformat(d) for d in NAMED)})


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    folder = tmp_path_factory.mktemp("claims")
    path = folder / "config.yaml"
    path.write_text(f"paths:\n  var_dir: {folder / 'var'}\n")
    return load_config(path)


def test_every_generated_claim_is_true_over_many_weeks(market, config):
    days = sample_days(market)
    assert len(days) > 240
    counted = sum(len(judge_week(market, config, day)) for day in days)
    assert counted > 3 * len(days)


@pytest.mark.parametrize("day", AUDITED)
def test_the_audited_weeks_claim_nothing_false(market, config, day):
    sentences = judge_week(market, config, date.fromisoformat(day))
    text = " ".join(sentences)
    assert "by 0.0 points" not in text and "0 of 0" not in text
    if day == "2016-11-15":  # inside the run of the election-week window: no "since"
        assert "in data back to" not in text and "lead for small caps since" not in text


def test_the_rules_themselves_can_fail():
    """A record is larger than every earlier window; a window inside a larger run has no
    "since"; shares round down."""
    ends = pd.date_range("2020-01-01", periods=12, freq="D")
    inside = [0.01, 0.05, 0.02, 0.01, 0.0, 0.01, 0.02, 0.0, 0.01, 0.03, 0.04, 0.035]
    rule = _extreme(pd.Series(inside, ends))
    assert rule["record"] is False and rule["since"] is None  # 0.04 two windows back
    assert rule["share"] == math.floor(100 * 9 / 12)
    apart = [0.05, 0.0, 0.0, 0.0, 0.0, 0.0, 0.01, 0.0, 0.0, 0.0, 0.0, 0.045]
    rule = _extreme(pd.Series(apart, ends))
    assert rule["since"] == "January 2020" and rule["record"] is False
    assert _extreme(pd.Series([*apart[:-1], 0.06], ends))["record"] is True
