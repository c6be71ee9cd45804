"""Build an issue: data-quality gate -> stats -> charts -> headline -> render -> files -> lint.

Everything is built first, then written through one sink (app/files.py). `prepare_issue` is the
one "refresh, then build" that the CLI and the schedule share.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing
import os
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from datetime import time as time_of_day
from typing import TYPE_CHECKING

from newsletter.app.built import STATS_FILE, TEXT_FILE, WEB_PAGE, BuiltIssue
from newsletter.app.data import DataRefresh, Market, load_market, megacap_tickers, refresh_market
from newsletter.app.drafts import notes_path, read_notes
from newsletter.app.files import write_folder
from newsletter.app.wiring import database
from newsletter.db.estimates import load_estimates
from newsletter.errors import DataQualityError, FetchError
from newsletter.issue.chartpool import ChartPool, draw_here
from newsletter.issue.headline import Headline, check_text, write_headline
from newsletter.issue.lede import write_lede
from newsletter.issue.quality import DataQuality, check_quality
from newsletter.issue.render import (
    dropped_from_note,
    make_environment,
    render_html,
    render_issue,
)
from newsletter.mail.compose import MessageFactory, message_id, unsubscribe_url
from newsletter.mail.lint import Finding, Severity, lint_message
from newsletter.market.events import load_key_dates
from newsletter.market.weights import load_start_of_year_weights
from newsletter.models import UNSUBSCRIBE_MARKER, Issue, Subscriber
from newsletter.stats import compute_week_stats, required_tickers

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from datetime import date
    from pathlib import Path

    from newsletter.config import Config
    from newsletter.issue.notes import EditorNotes
    from newsletter.models import Chart, RenderedIssue, ReportDates
    from newsletter.weekstats import WeekStats

logger = logging.getLogger(__name__)

EXAMPLE_TOKEN = "example-token"
KEY_DATES_SOURCE = (
    "Federal Reserve FOMC calendars, BLS CPI and Employment Situation release schedules "
    "(newsletter/data/KEY_DATES.md)"
)


@dataclass(frozen=True, slots=True)
class BuildOptions:
    """The editor's choices for one build."""

    subject: str | None = None
    preheader: str | None = None
    allow_stale: bool = False
    """Build despite data-quality findings (the email then shows them)."""
    stale_reason: str | None = None
    """Why the prices could not be refreshed, when building from the stored ones."""


@dataclass(frozen=True, slots=True)
class Prepared:
    """A built issue and what the refresh before it did (None: no refresh was needed)."""

    built: BuiltIssue
    refreshed: DataRefresh | None
    stale_reason: str | None = None
    """Why the refresh failed, when the issue was built from the stored prices instead."""
    default_reason: str | None = None
    """Why this session, when none was asked for."""


def prepare_issue(
    config: Config,
    requested: date | None,
    *,
    clock: Callable[[], datetime],
    options: BuildOptions = BuildOptions(),
    out_dir: Path | None = None,
    on_progress: Callable[[str], None] = lambda ticker: None,
    on_as_of: Callable[[date], None] = lambda as_of: None,
) -> Prepared:
    """Refresh the prices (with the live provider), then build the issue.

    A failed refresh stops here unless `options.allow_stale`: then the issue is built from the
    stored prices and the email says why. `on_as_of` hears the issue's session as soon as the
    prices resolve it, before the long part of the build.
    """
    refreshed = None
    with chart_pool() as pool:  # forked first: its workers import matplotlib meanwhile
        if config.market.is_live:
            try:
                refreshed = refresh_market(config, clock, on_progress)
            except FetchError as err:
                if not options.allow_stale:
                    raise
                options = dataclasses.replace(options, stale_reason=str(err))
        market = load_market(config, requested)
        on_as_of(market.as_of)
        built = build_issue(config, requested, out_dir, options=options, market=market, pool=pool)
    reason = market.default_reason if requested is None else None
    return Prepared(built, refreshed, options.stale_reason, reason)


def _findings(
    config: Config, rendered: RenderedIssue, note: str, data_notes: tuple[str, ...]
) -> tuple[Finding, ...]:
    """What the editor should know before sending: the lint of the message a reader gets,
    what the sanitiser dropped from the note, and what the data left out of the email."""
    findings = (
        tuple(lint_message(rendered, sample_message(config, rendered)))
        + tuple(
            Finding(Severity.WARNING, f"the editor's note: {text}")
            for text in dropped_from_note(note)
        )
        + tuple(Finding(Severity.WARNING, f"left out of the email: {line}") for line in data_notes)
    )
    for finding in findings:
        logger.info("lint %s", finding)  # the driver shows them: the CLI on stderr
    return findings


def build_issue(
    config: Config,
    requested: date | None,
    out_dir: Path | None = None,
    *,
    options: BuildOptions = BuildOptions(),
    market: Market | None = None,
    chart_cache: ChartCache | None = None,
    pool: ChartPool | None = None,
) -> BuiltIssue:
    """Compute, chart and render the issue for the session on or before `requested`.

    The data-quality gate refuses the build on any finding unless `options.allow_stale`.
    `market` is what `load_market(config, requested)` returned, for a driver that rebuilds the
    same issue as its words change (the preview); by default the prices are loaded here. Such a
    driver also passes a `chart_cache` kept with the market. `pool` draws the charts (by
    default one is started here where forking is safe and pays: see `chart_pool`).
    """
    with chart_pool(pool) as drawing:
        market = market or load_market(config, requested)
        started = time.perf_counter()
        dates = market.calendar.report_dates(market.as_of)
        quality = gate(config, market, dates, options.allow_stale)
        stats = _compute_stats(config, market, dates)
        charts = _charts(config, market, stats, chart_cache, drawing)
    notes = read_notes(config, market.as_of)
    headline = _headline(stats, options, notes, notes_path(config, market.as_of))
    issue = Issue(
        stats=stats,
        charts=charts,
        subject=headline.subject,
        preheader=headline.preheader,
        newsletter_name=config.newsletter.name,
        base_url=config.newsletter.base_url,
        postal_address=config.newsletter.postal_address,
        note=notes.markdown,
        lede=write_lede(stats),
        data_warning=_data_warning(quality, options.stale_reason, market),
    )
    rendered, files = _render_files(config, issue, headline, quality)
    write_folder(out_dir or config.issues_dir / market.as_of.isoformat(), files)
    findings = _findings(config, rendered, notes.markdown, stats.notes)
    logger.info(
        "Built issue %s: %d charts, %d KB HTML in %.2f s",
        market.as_of,
        len(charts),
        len(rendered.html.encode()) // 1024,
        time.perf_counter() - started,
    )
    return BuiltIssue(
        stats=stats,
        rendered=rendered,
        folder=out_dir or config.issues_dir / market.as_of.isoformat(),
        files=files,
        preheader=headline.preheader,
        findings=findings,
    )


def _headline(
    stats: WeekStats, options: BuildOptions, notes: EditorNotes, notes_file: Path
) -> Headline:
    """The subject and preheader, each checked and, when refused, named by where it came from:
    the --subject/--preheader flag, the notes file's Subject:/Preheader: line, or the rules."""
    words = {}
    for field, flag, noted in (
        ("subject", options.subject, notes.subject),
        ("preheader", options.preheader, notes.preheader),
    ):
        if flag:
            words[field] = check_text(flag, field, f"the --{field}")
        elif noted:
            words[field] = check_text(noted, field, f"the {field} from {notes_file}")
    headline = write_headline(stats, subject=words.get("subject"), preheader=words.get("preheader"))
    for field, text in (("subject", headline.subject), ("preheader", headline.preheader)):
        if field not in words:
            fix = f"give one with --{field} or a {field.title()}: line in {notes_file}"
            check_text(text, field, f"the generated {field}", fix=fix)
    return headline


def issue_words(config: Config, market: Market) -> tuple[WeekStats, Headline, tuple[str, ...]]:
    """The week's statistics and the words generated from them (subject, preheader, lede),
    without charts or rendering: what a check of every generated claim over many weeks needs."""
    stats = _compute_stats(config, market, market.calendar.report_dates(market.as_of))
    return stats, write_headline(stats), write_lede(stats)


def _compute_stats(config: Config, market: Market, dates: ReportDates) -> WeekStats:
    return compute_week_stats(
        market.prices,
        dates,
        config.stats,
        weights=load_start_of_year_weights(config.market.snapshot_dir, market.as_of.year),
        events=load_key_dates(config.market.key_dates_file),
        events_source=KEY_DATES_SOURCE,
        estimates=load_estimates(database(config), megacap_tickers(config), market.as_of),
    )


class ChartCache:
    """Charts by the numbers they draw, so a rebuild whose numbers did not change redraws
    nothing (drawing is most of a warm build); past `size` numbers the oldest drop out."""

    def __init__(self, size: int = 1) -> None:
        self.size = size
        self._charts: OrderedDict[str, tuple[Chart, ...]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._charts)

    def charts(self, key: str, draw: Callable[[], tuple[Chart, ...]]) -> tuple[Chart, ...]:
        """The charts drawn for `key`, drawn now by `draw` if they are not kept."""
        if key in self._charts:
            self._charts.move_to_end(key)
            return self._charts[key]
        charts = self._charts[key] = draw()
        while len(self._charts) > self.size:
            self._charts.popitem(last=False)
        return charts


def chart_workers() -> int:
    """Processes to draw the charts with: two where forking is safe and pays (a process with
    one thread, on a platform that forks, with two cores or more), else one. A threaded
    driver (the preview server, the scheduler) draws in its own process."""
    forks = "fork" in multiprocessing.get_all_start_methods()
    return 2 if forks and threading.active_count() == 1 and (os.cpu_count() or 1) > 1 else 1


@contextmanager
def chart_pool(pool: ChartPool | None = None) -> Iterator[ChartPool | None]:
    """`pool`, or a pool of `chart_workers()` started now when that is more than one (None:
    the charts are drawn in this process). Forked before the prices load, its workers import
    matplotlib while this process loads and computes, and this process never does."""
    workers = 1 if pool is not None else chart_workers()
    if workers == 1:
        yield pool
        return
    with ChartPool(workers) as started:
        yield started


def _charts(
    config: Config,
    market: Market,
    stats: WeekStats,
    cache: ChartCache | None,
    pool: ChartPool | None,
) -> tuple[Chart, ...]:
    """The issue's charts, reused from `cache` while the numbers they draw stay the same."""
    sessions = config.stats.ratio_chart_sessions

    def draw() -> tuple[Chart, ...]:
        if pool is None:
            return draw_here(market.prices, stats, sessions)
        return pool.draw(market.prices, stats, sessions)

    if cache is None:
        return draw()
    return cache.charts(json.dumps([stats.to_json(), sessions], sort_keys=True, default=str), draw)


def _render_files(
    config: Config, issue: Issue, headline: Headline, quality: DataQuality
) -> tuple[RenderedIssue, dict[str, bytes]]:
    """The mailed rendering and every file of the issue's folder: email.html (cid: refs),
    preview.html (the email with image files), web.html (the archive's web version),
    email.txt, the PNGs and stats.json.

    Each subscriber's message carries their own unsubscribe link; the shared copies of the
    email show an example link in its place.
    """
    env = make_environment(config.templates.dir)
    rendered = render_issue(issue, env, config.newsletter.images)
    document = {
        **issue.stats.to_json(),
        "headline": {**headline.to_json(), "lede": list(issue.lede)},
        "data_quality": quality.to_json(),
    }
    example = unsubscribe_url(config.newsletter, EXAMPLE_TOKEN)
    files = {
        "email.html": rendered.html.replace(UNSUBSCRIBE_MARKER, example).encode(),
        "preview.html": render_html(issue, env, "file")
        .replace(UNSUBSCRIBE_MARKER, example)
        .encode(),
        WEB_PAGE: render_html(issue, env, "file", web_version=True).encode(),
        TEXT_FILE: rendered.text.replace(UNSUBSCRIBE_MARKER, example).encode(),
        STATS_FILE: (json.dumps(document, indent=2) + "\n").encode(),
        **{chart.filename: chart.png for chart in issue.charts},
    }
    return rendered, files


def sample_message(config: Config, rendered: RenderedIssue) -> bytes:
    """The issue as one example subscriber would get it, for the pre-send lint."""
    info = config.newsletter
    moment = datetime.combine(rendered.as_of, time_of_day.min, tzinfo=UTC)
    sample = Subscriber("reader@example.com", "Example Reader")
    return MessageFactory(rendered, info, moment).build(
        sample, message_id(info.list_id, rendered.as_of.isoformat(), sample.email), EXAMPLE_TOKEN
    )


def _data_warning(quality: DataQuality, stale_reason: str | None, market: Market) -> str:
    """The banner for an issue built on stale or flawed data ('' for a clean build)."""
    parts = list(quality.problems)
    if stale_reason:
        parts.insert(
            0,
            f"prices could not be refreshed ({stale_reason}); this issue uses the stored prices "
            f"to {market.as_of.isoformat()}",
        )
    return "Data warning: " + "; ".join(parts) if parts else ""


def gate(config: Config, market: Market, dates: ReportDates, allow_stale: bool) -> DataQuality:
    """Run the data-quality gate on the headline pair and the concentration index."""
    spec = config.stats
    quality = check_quality(
        market.prices,
        market.calendar.sessions,
        dates,
        [*required_tickers(spec), spec.concentration_index],
        max_daily_move=config.data_quality.max_daily_move,
        stored_through=market.stored_through,
    )
    if quality.ok:
        return quality
    if not allow_stale:
        more = f" (and {len(quality.problems) - 1} more)" if len(quality.problems) > 1 else ""
        raise DataQualityError(
            f"the prices for the week to {dates.as_of.isoformat()} failed the data-quality gate: "
            f"{quality.problems[0]}{more}; repair the data (newsletter data refresh), pick another "
            "--as-of, or build anyway with --allow-stale"
        )
    logger.warning("building despite data-quality problems: %s", "; ".join(quality.problems))
    return dataclasses.replace(quality, allowed=True)
