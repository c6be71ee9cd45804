"""The one place that knows the stage order: data -> stats -> charts -> render -> compose -> deliver.

Drivers (the CLI today; the scheduler and preview later) call `build_issue` and `send_issue`.
Everything is built first, then written through one sink (`write_issue_folder`), then sent.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as time_of_day
from email.utils import make_msgid
from pathlib import Path
from secrets import token_bytes
from typing import TYPE_CHECKING

import pandas as pd

from newsletter import store
from newsletter.charts import render_charts
from newsletter.compose import ListInfo, MessageFactory, message_id
from newsletter.delivery import (
    CaptureServer,
    Sender,
    SendPolicy,
    SmtpConnection,
    SmtpFailure,
    SmtpSettings,
)
from newsletter.errors import (
    AsOfError,
    DataQualityError,
    DeliveryError,
    FetchError,
    LintError,
    RenderError,
)
from newsletter.headline import write_headline
from newsletter.lint import ERROR, Finding, lint_message
from newsletter.market.calendar import TradingCalendar
from newsletter.market.events import load_key_dates
from newsletter.market.fundamentals import YahooFundamentals
from newsletter.market.snapshot import SnapshotSource
from newsletter.market.source import MarketDataSource
from newsletter.market.store import PriceStore, RefreshReport, SeriesInfo, gaps, refresh
from newsletter.market.store import open_store as open_price_store
from newsletter.market.weights import load_start_of_year_weights
from newsletter.market.yahoo import YahooSource
from newsletter.models import (
    BOUNCED,
    CLAIMED,
    DEFERRED,
    FAILED,
    PENDING,
    SENT,
    SKIPPED,
    UNSUBSCRIBE_MARKER,
    Delivery,
    EstimateSnapshot,
    Issue,
    Outcome,
    Prices,
    StatsSpec,
    Subscriber,
)
from newsletter.notes import TEMPLATE as NOTES_TEMPLATE
from newsletter.notes import Notes, parse_notes
from newsletter.quality import DataQuality, check_quality
from newsletter.render import make_environment, render_html, render_issue, render_page
from newsletter.stats import compute_week_stats, member_tickers, required_tickers, spec_tickers
from newsletter.stats.strength import YEAR_SESSIONS
from newsletter.subscribers import normalise_address, read_subscriber_csv
from newsletter.unsubscribe import make_token, verify_token

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, MutableMapping, Sequence

    from sqlalchemy.engine import Engine

    from newsletter.config import Config, Secrets
    from newsletter.models import Chart, DeliveryReport, RenderedIssue, ReportDates
    from newsletter.weekstats import WeekStats

logger = logging.getLogger(__name__)

REQUEST_SLACK_DAYS = 14
UNSUBSCRIBE_TEMPLATE = "unsubscribe.html.j2"
NOTES_FILE = "notes.md"
EXAMPLE_TOKEN = "example-token"
KEY_DATES_SOURCE = "Federal Reserve FOMC calendars and BLS CPI release schedules (see KEY_DATES.md)"
FILE_MODE = 0o644
WEB_PAGE = "web.html"
STATS_FILE = "stats.json"
ARCHIVE_PAGE = "index.html"
ARCHIVE_META = "issue.json"
APPROVED = "approved"


@dataclass(frozen=True, slots=True)
class BuiltIssue:
    """A built issue: what is mailed, its numbers, and the folder holding its files."""

    stats: WeekStats
    rendered: RenderedIssue
    folder: Path
    files: Mapping[str, bytes]
    """What the build wrote into `folder`, by file name."""
    preheader: str
    findings: tuple[Finding, ...] = ()

    @property
    def content_sha256(self) -> str:
        """The digest of what subscribers get: a send freezes it, an approval names it."""
        digest = hashlib.sha256(self.rendered.subject.encode())
        digest.update(self.rendered.html.encode())
        digest.update(self.rendered.text.encode())
        for chart in self.rendered.images:
            digest.update(chart.png)
        return digest.hexdigest()

    @property
    def lint_errors(self) -> list[Finding]:
        return [finding for finding in self.findings if finding.level == ERROR]


def stats_spec(config: Config) -> StatsSpec:
    """The statistics' inputs, from config.yaml's `stats` section."""
    s = config.stats
    return StatsSpec(
        scoreboard=tuple(s.scoreboard),
        long_indexes=tuple(s.long_indexes),
        spread_long=s.spread_long,
        spread_short=s.spread_short,
        index_spread_long=s.index_spread_long,
        index_spread_short=s.index_spread_short,
        megacaps=tuple(s.megacaps),
        concentration_index=s.concentration_index,
        equal_weight=s.equal_weight,
        sectors=tuple(s.sectors),
        rates=s.rates,
        key_dates_horizon_days=s.key_dates_horizon_days,
    )


def market_source(config: Config) -> MarketDataSource:
    """The configured price provider: the bundled snapshot, or Yahoo Finance (live)."""
    if config.market.provider == "yfinance":
        return YahooSource(timeout_s=config.market.timeout_s, attempts=config.market.attempts)
    return SnapshotSource(config.market.snapshot_dir)


def megacap_tickers(config: Config) -> list[str]:
    """The tickers of the configured mega caps (each share class)."""
    return [ticker for member in config.stats.megacaps for ticker in member_tickers(member)]


def refresh_fundamentals(
    config: Config, clock: Callable[[], datetime], source: YahooFundamentals | None = None
) -> tuple[int, list[str]]:
    """Store today's forward revenue estimates and next earnings dates of the mega caps.

    Returns (rows stored, one message per ticker that failed); a failure leaves that ticker's
    history as it was and the email says the figure is missing rather than guessing.
    """
    source = source or YahooFundamentals()
    today = clock().date()
    snapshots, failures = [], []
    for ticker in megacap_tickers(config):
        try:
            found = source.fetch(ticker)
        except FetchError as err:
            failures.append(str(err))
            continue
        snapshots += [
            EstimateSnapshot(
                ticker,
                today,
                period,
                value,
                found.analysts.get(period, 0),
                found.next_earnings,
                found.shares,
            )
            for period, value in found.revenue.items()
        ]
    return store.save_estimates(open_store(config), snapshots), failures


def price_tickers(config: Config) -> list[str]:
    """Every ticker the digest reads, as the price store keeps them."""
    return spec_tickers(stats_spec(config))


def refresh_prices(
    config: Config,
    clock: Callable[[], datetime],
    on_progress: Callable[[str], None] = lambda t: None,
) -> RefreshReport:
    """Bring the local price store up to date from the configured provider.

    Tickers the store has never held are seeded from the bundled snapshot first, so a machine
    without network still has history; the provider then adds what is new, and rewrites a
    ticker whose adjusted history it finds re-based.
    """
    tickers = price_tickers(config)
    store = open_price_store(config.price_store_path, clock())
    try:
        held = store.info()
        snapshot = SnapshotSource(config.market.snapshot_dir)
        for ticker in tickers:
            if ticker not in held:
                seed = snapshot.fetch([ticker])
                store.write(
                    ticker,
                    seed.adjusted[ticker],
                    seed.raw[ticker],
                    snapshot.name,
                    clock(),
                    replace=True,
                )
        return refresh(store, market_source(config), tickers, clock(), on_progress)
    finally:
        store.close()


def price_status(config: Config, today: date) -> list[tuple[SeriesInfo, int, list[date]]]:
    """For each stored ticker: what the store holds, its age in days, and its calendar gaps."""
    store = open_price_store(
        config.price_store_path, datetime.combine(today, time_of_day.min, tzinfo=UTC)
    )
    try:
        info = store.info()
        if not info:
            return []
        prices = store.read(list(info), "store")
    finally:
        store.close()
    first = min(item.first for item in info.values())
    calendar = TradingCalendar(first, today + timedelta(days=7))
    return [
        (item, (today - item.last).days, gaps(prices.adjusted[ticker], calendar.sessions))
        for ticker, item in info.items()
    ]


def _present(prices: Prices, tickers: list[str]) -> pd.DatetimeIndex:
    """Sessions at which every one of `tickers` has a close."""
    return pd.DatetimeIndex(prices.adjusted[tickers].dropna().index)


@dataclass(frozen=True, slots=True)
class Market:
    """Prices aligned to NYSE sessions, the calendar, and the as-of session they serve."""

    prices: Prices
    calendar: TradingCalendar
    as_of: date
    stored_through: dict[str, date] | None = None


def load_market(config: Config, requested: date | None) -> Market:
    """Load the prices and resolve `requested` to the as-of session they serve.

    An issue can be built for any session at which the headline pair (IWM and SPY) has a close
    and a year of history behind it; sections whose tickers lack data say so. The default is the
    last session at which the whole scoreboard, the pair and the mega caps all have closes.
    """
    started = time.perf_counter()
    spec = stats_spec(config)
    source = market_source(config)
    stored_through = None
    if config.market.provider == "yfinance":
        store = PriceStore(config.price_store_path)
        try:
            prices = store.read(spec_tickers(spec), source.name)
            stored_through = {ticker: info.last for ticker, info in store.info().items()}
        finally:
            store.close()
    else:
        prices = source.fetch(spec_tickers(spec))
    required = _present(prices, required_tickers(spec))
    if len(required) <= YEAR_SESSIONS:
        raise AsOfError(
            f"{' and '.join(required_tickers(spec))} have under a year of common history"
        )
    first, last = required[YEAR_SESSIONS].date(), required[-1].date()
    complete = [*spec.scoreboard, *required_tickers(spec), spec.concentration_index]
    complete += [t for member in spec.megacaps for t in member_tickers(member)]
    default = _present(prices, complete)
    available = (
        f"the data covers {first.isoformat()} to {last.isoformat()} "
        f"({' and '.join(required_tickers(spec))} with a year of history)"
    )
    if requested is not None and not first <= requested <= last + timedelta(
        days=REQUEST_SLACK_DAYS
    ):
        raise AsOfError(f"no data for --as-of {requested.isoformat()}: {available}")
    start = prices.adjusted.index[0].date()
    calendar = TradingCalendar(start, max(last, requested or last) + timedelta(days=7))
    if requested is None:
        as_of = default[-1].date() if len(default) and default[-1].date() >= first else last
    else:
        as_of = calendar.session_on_or_before(requested)
    if not first <= as_of <= last:
        raise AsOfError(
            f"no data for --as-of {requested} (NYSE session {as_of.isoformat()}): {available}"
        )
    sessions = calendar.sessions[
        (calendar.sessions >= prices.adjusted.index[0])
        & (calendar.sessions <= prices.adjusted.index[-1])
    ]
    aligned = Prices(
        adjusted=prices.adjusted.reindex(sessions),
        raw=prices.raw.reindex(sessions),
        source=prices.source,
    )
    logger.info(
        "Loaded %d tickers, %d sessions from %s in %.2f s",
        len(prices.tickers),
        len(sessions),
        source.name,
        time.perf_counter() - started,
    )
    return Market(prices=aligned, calendar=calendar, as_of=as_of, stored_through=stored_through)


def build_issue(
    config: Config,
    requested: date | None,
    out_dir: Path | None = None,
    *,
    subject: str | None = None,
    preheader: str | None = None,
    allow_stale: bool = False,
    stale_reason: str | None = None,
    market: Market | None = None,
    chart_cache: MutableMapping[str, tuple[Chart, ...]] | None = None,
) -> BuiltIssue:
    """Compute, chart and render the issue for the session on or before `requested`.

    `subject` and `preheader` override the generated ones (the editor's words). The data-quality
    gate refuses the build on any finding unless `allow_stale`, and then the email says so.
    `market` is what `load_market(config, requested)` returned, for a driver that rebuilds the
    same issue as its words change (the preview); by default the prices are loaded here. Such a
    driver also passes one `chart_cache` per market: charts are redrawn only when the numbers
    change, and drawing them is most of a warm build.
    """
    market = market or load_market(config, requested)
    prices, as_of = market.prices, market.as_of
    started = time.perf_counter()
    dates = market.calendar.report_dates(as_of)
    quality = gate(config, market, dates, allow_stale)
    s = config.stats
    stats = compute_week_stats(
        prices,
        dates,
        stats_spec(config),
        weights=load_start_of_year_weights(config.market.snapshot_dir, as_of.year),
        events=load_key_dates(config.market.key_dates_file),
        events_source=KEY_DATES_SOURCE,
        estimates=store.load_estimates(open_store(config), megacap_tickers(config), as_of),
    )
    if chart_cache is None:
        charts = render_charts(prices, stats, s.ratio_chart_sessions)
    else:
        key = json.dumps([stats.to_json(), s.ratio_chart_sessions], sort_keys=True, default=str)
        if key not in chart_cache:
            chart_cache.clear()
            chart_cache[key] = render_charts(prices, stats, s.ratio_chart_sessions)
        charts = chart_cache[key]
    notes = read_notes(config, as_of)
    headline = write_headline(
        stats, subject=subject or notes.subject, preheader=preheader or notes.preheader
    )
    issue = Issue(
        stats=stats,
        charts=charts,
        subject=headline.subject,
        preheader=headline.preheader,
        newsletter_name=config.newsletter.name,
        base_url=config.newsletter.base_url,
        postal_address=config.newsletter.postal_address,
        note=notes.markdown,
        data_warning=_data_warning(quality, stale_reason, market),
    )
    env = make_environment(config.templates.dir)
    rendered = render_issue(issue, env, config.newsletter.images)
    folder = out_dir or config.issues_dir / as_of.isoformat()
    document = {
        **stats.to_json(),
        "headline": headline.to_json(),
        "data_quality": quality.to_json(),
    }
    example = f"{config.newsletter.base_url}/u/{EXAMPLE_TOKEN}"
    files = {
        "email.html": rendered.html.replace(UNSUBSCRIBE_MARKER, example).encode(),
        "preview.html": render_html(issue, env, "file")
        .replace(UNSUBSCRIBE_MARKER, example)
        .encode(),
        WEB_PAGE: render_html(issue, env, "file", web_version=True).encode(),
        "email.txt": rendered.text.replace(UNSUBSCRIBE_MARKER, example).encode(),
        STATS_FILE: (json.dumps(document, indent=2) + "\n").encode(),
        **{chart.filename: chart.png for chart in charts},
    }
    write_issue_folder(folder, files)
    findings = tuple(lint_message(rendered, sample_message(config, rendered)))
    for finding in findings:
        logger.warning("lint %s", finding)
    logger.info(
        "Built issue %s: %d charts, %d KB HTML in %.2f s",
        as_of,
        len(charts),
        len(rendered.html.encode()) // 1024,
        time.perf_counter() - started,
    )
    return BuiltIssue(
        stats=stats,
        rendered=rendered,
        folder=folder,
        files=files,
        preheader=headline.preheader,
        findings=findings,
    )


def sample_message(config: Config, rendered: RenderedIssue) -> bytes:
    """The issue as one example subscriber would get it, for the pre-send lint."""
    info = _list_info(config)
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
    spec = stats_spec(config)
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


def notes_path(config: Config, as_of: date) -> Path:
    return config.paths.notes_dir / as_of.isoformat() / NOTES_FILE


def read_notes(config: Config, as_of: date) -> Notes:
    """What the editor wrote for the issue (paths.notes_dir/<as-of>/notes.md); empty if nothing."""
    path = notes_path(config, as_of)
    try:
        return parse_notes(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Notes()
    except (OSError, UnicodeDecodeError) as err:
        raise RenderError(f"cannot read the editor's note {path}: {err}") from err


def start_draft(config: Config, requested: date | None) -> tuple[Path, bool]:
    """Create the issue's notes file from the commented template (never over an existing one).

    Returns the path and whether it was created now.
    """
    as_of = load_market(config, requested).as_of
    path = notes_path(config, as_of)
    if path.exists():
        return path, False
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, NOTES_TEMPLATE.format(as_of=as_of.isoformat()).encode())
    return path, True


def _write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename, so a crash never leaves half a file."""
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        tmp.write(data)
        tmp.flush()
        os.fsync(tmp.fileno())
    Path(tmp.name).chmod(FILE_MODE)
    Path(tmp.name).replace(path)


def write_issue_folder(folder: Path, files: Mapping[str, bytes]) -> None:
    """The one sink of a build: email.html (cid: refs), preview.html (the email with image
    files), web.html (the archive's web version), email.txt, the PNGs and stats.json.

    Each subscriber's message carries their own unsubscribe link; the shared copies of the
    email show an example link in its place.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        _write_atomic(folder / name, data)


def _list_info(config: Config) -> ListInfo:
    n = config.newsletter
    return ListInfo(
        sender=n.from_address,
        list_id=n.list_id,
        list_name=n.name,
        base_url=n.base_url,
        unsubscribe_mailto=n.unsubscribe_mailto,
        reply_to=n.reply_to,
    )


def open_store(config: Config) -> Engine:
    """The project database (subscribers, issues, the send ledger): one engine per database
    and process, so its pool is shared and the tables are created and checked once."""
    return _engine(config.database_url)


@functools.cache
def _engine(url: str) -> Engine:
    return store.open_database(url)


def sync_subscribers(config: Config, engine: Engine, now: datetime) -> list[str]:
    """Import subscribers.file into the database (new addresses only; nobody re-activated).

    Returns one message per bad row; the good rows are imported regardless.
    """
    if config.subscribers.file is None:
        return []
    read = read_subscriber_csv(config.subscribers.file)
    store.import_subscribers(engine, read.subscribers, source=str(config.subscribers.file), now=now)
    for error in read.errors:
        logger.warning("%s", error)
    return read.errors


def _smtp_settings(config: Config, secrets: Secrets) -> SmtpSettings:
    smtp = config.smtp
    return SmtpSettings(
        host=smtp.host,
        port=smtp.port,
        security=smtp.security,
        timeout_s=smtp.timeout_s,
        username=smtp.username,
        password=secrets.smtp_password,
        ca_file=str(smtp.ca_file) if smtp.ca_file else None,
    )


def _open_destination(
    config: Config, secrets: Secrets, stack: ExitStack
) -> tuple[SmtpSettings, str]:
    """Where to send, and how to name it; the built-in capture server runs until `stack` closes."""
    if config.smtp.is_builtin:
        server = stack.enter_context(CaptureServer(config.outbox_dir))
        return server.settings(
            config.smtp.timeout_s
        ), f"built-in capture server, Maildir {config.outbox_dir}"
    return _smtp_settings(config, secrets), f"SMTP server {config.smtp.host}:{config.smtp.port}"


def _unsubscribe_key(config: Config, secrets: Secrets) -> bytes:
    if secrets.unsubscribe_key is not None:
        return secrets.unsubscribe_key
    logger.warning(
        "%s is unset: unsubscribe links in this local run are signed with a one-off key",
        config.newsletter.unsubscribe_secret_env,
    )
    return token_bytes(32)


@dataclass
class StoreLedger:
    """The delivery.Ledger of one issue and run, backed by the database.

    The sender's threads take turns at writing: waiting on a lock costs microseconds, while
    SQLite's own busy handler sleeps for milliseconds when writers collide.
    """

    engine: Engine
    issue_id: int
    run_id: int
    clock: Callable[[], datetime]
    _writing: threading.Lock = field(default_factory=threading.Lock)

    def claim(self, limit: int) -> list[Delivery]:
        with self._writing:
            return store.claim(self.engine, self.issue_id, self.run_id, limit, self.clock())

    def record(self, outcomes: Sequence[Outcome]) -> None:
        with self._writing:
            store.record(self.engine, self.issue_id, outcomes, self.clock())

    def next_due(self) -> datetime | None:
        return store.next_due(self.engine, self.issue_id)

    def heartbeat(self) -> None:
        store.heartbeat(self.engine, self.run_id, self.clock())


@dataclass(frozen=True, slots=True)
class SendResult:
    """What a send did, the issue's ledger afterwards, and where the messages went."""

    report: DeliveryReport
    ledger: dict[str, int]
    destination: str
    row_errors: list[str]
    archive: Path
    """Where the issue as sent is kept (`newsletter serve` publishes it)."""

    @property
    def complete(self) -> bool:
        """True when no message of the issue is left pending, deferred or refused."""
        return not (set(self.ledger) & {PENDING, CLAIMED, DEFERRED, BOUNCED, FAILED})

    @property
    def retry_left(self) -> bool:
        """True while messages wait for another try (refused ones never get one)."""
        return bool(set(self.ledger) & {PENDING, CLAIMED, DEFERRED})


def approve_issue(config: Config, built: BuiltIssue, now: datetime) -> None:
    """Record that the editor approved exactly this content of the issue for the schedule."""
    if built.lint_errors:
        raise LintError(
            f"issue {built.stats.as_of.isoformat()} has {len(built.lint_errors)} lint error(s), "
            f"the first: {built.lint_errors[0].text}; fix them before approving"
        )
    store.approve(open_store(config), built.stats.as_of, built.content_sha256, now)


def approval_state(config: Config, built: BuiltIssue) -> str:
    """Whether the editor approved exactly this content: "approved", "changed since it was
    approved" or "not approved"."""
    approved = store.review(open_store(config), built.stats.as_of).approved_sha256
    if approved == built.content_sha256:
        return APPROVED
    return "changed since it was approved" if approved else "not approved"


def archive_issue(config: Config, built: BuiltIssue, now: datetime) -> Path:
    """Keep the issue as sent in archive/<as-of>/: the web page (index.html), the text, the
    numbers and the charts, for `newsletter serve` (issue pages, the feed, hosted images).

    Called once the send has frozen the content, so the archive holds what subscribers got;
    sending again keeps the first archiving time. issue.json is written last: the index lists
    an issue only once all its files are in place.
    """
    folder = config.archive_dir / built.stats.as_of.isoformat()
    meta_path = folder / ARCHIVE_META
    try:
        earlier = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        earlier = {}
    if earlier.get("content_sha256") == built.content_sha256:
        return folder
    names = {WEB_PAGE: ARCHIVE_PAGE, "email.txt": "email.txt", STATS_FILE: STATS_FILE}
    names.update({name: name for name in built.files if name.endswith(".png")})
    meta = {
        "as_of": built.stats.as_of.isoformat(),
        "subject": built.rendered.subject,
        "preheader": built.preheader,
        "archived_at": earlier.get("archived_at", now.isoformat()),
        "content_sha256": built.content_sha256,
    }
    write_issue_folder(
        folder,
        {
            **{target: built.files[source] for source, target in names.items()},
            ARCHIVE_META: (json.dumps(meta, indent=2) + "\n").encode(),
        },
    )
    logger.info("Archived issue %s in %s", meta["as_of"], folder)
    return folder


def send_issue(
    config: Config,
    built: BuiltIssue,
    *,
    secrets: Secrets,
    clock: Callable[[], datetime],
    on_start: Callable[[int], None] = lambda total: None,
    on_progress: Callable[[int], None] = lambda done: None,
) -> SendResult:
    """Deliver the built issue to every active subscriber who has not received it yet.

    Safe to run again at any time: the ledger makes a second run send only what is missing.
    """
    if built.lint_errors:
        raise LintError(
            f"issue {built.stats.as_of.isoformat()} has {len(built.lint_errors)} lint error(s), the first: "
            f"{built.lint_errors[0].text}; run `newsletter lint` to see all, and fix them before sending"
        )
    engine = open_store(config)
    now = clock()
    row_errors = sync_subscribers(config, engine, now)
    rendered, info = built.rendered, _list_info(config)
    as_of = built.stats.as_of.isoformat()
    issue_id = store.record_issue(
        engine, built.stats.as_of, rendered.subject, built.content_sha256, now
    )
    archive = archive_issue(config, built, now)
    run_id = store.start_run(engine, issue_id, now)
    try:
        store.enqueue_audience(
            engine, issue_id, lambda email: message_id(info.list_id, as_of, email), now
        )
        counts = store.ledger_counts(engine, issue_id)
        on_start(sum(counts.get(status, 0) for status in (PENDING, CLAIMED)))
        factory = MessageFactory(rendered, info, now)
        key = _unsubscribe_key(config, secrets)

        def build(job: Delivery) -> bytes:
            token = make_token(key, info.list_id, job.email)
            return factory.build(Subscriber(job.email, job.name), job.message_id, token)

        d = config.delivery
        policy = SendPolicy(
            connections=d.connections,
            rate_per_s=d.rate_per_s,
            max_attempts=d.max_attempts,
            backoff_s=d.retry_backoff_s,
            max_wait_s=d.max_wait_s,
        )
        ledger = StoreLedger(engine, issue_id, run_id, clock)
        with ExitStack() as stack:
            settings, destination = _open_destination(config, secrets, stack)
            report = Sender(settings, info.envelope_sender, build, policy, clock).run(
                ledger, on_progress
            )
    finally:
        store.finish_run(engine, run_id, clock())
    counts = store.ledger_counts(engine, issue_id)
    report.skipped = counts.get(SENT, 0) - report.sent + counts.get(SKIPPED, 0)
    logger.info(
        "Sent issue %s: %d sent, %d retried, %d bounced, %d failed, %d deferred, %d skipped",
        as_of,
        report.sent,
        report.retried,
        report.bounced,
        report.failed,
        report.deferred,
        report.skipped,
    )
    return SendResult(
        report=report,
        ledger=counts,
        destination=destination,
        row_errors=row_errors,
        archive=archive,
    )


def send_test(
    config: Config,
    built: BuiltIssue,
    address: str,
    *,
    secrets: Secrets,
    clock: Callable[[], datetime],
) -> str:
    """Send one copy marked [TEST] to `address`; it is never recorded as sent. Returns where."""
    recipient = normalise_address(address)
    info = _list_info(config)
    factory = MessageFactory(built.rendered, info, clock(), test=True)
    token = make_token(_unsubscribe_key(config, secrets), info.list_id, recipient)
    data = factory.build(Subscriber(recipient, ""), make_msgid(domain=info.list_id), token)
    with ExitStack() as stack:
        settings, destination = _open_destination(config, secrets, stack)
        try:
            with SmtpConnection(settings) as connection:
                connection.send(info.envelope_sender, recipient, data)
        except SmtpFailure as failure:
            raise DeliveryError(f"the test copy to {recipient} was refused: {failure}") from failure
    return destination


def dry_run(
    config: Config, built: BuiltIssue, *, secrets: Secrets, clock: Callable[[], datetime]
) -> tuple[int, int]:
    """Compose every message a send would deliver now, without sending; (messages, bytes)."""
    engine = open_store(config)
    sync_subscribers(config, engine, clock())
    info = _list_info(config)
    factory = MessageFactory(built.rendered, info, clock())
    key = _unsubscribe_key(config, secrets)
    as_of = built.stats.as_of.isoformat()
    count = size = 0
    for email, name, _status in store.list_subscribers(engine, status=store.ACTIVE):
        data = factory.build(
            Subscriber(email, name),
            message_id(info.list_id, as_of, email),
            make_token(key, info.list_id, email),
        )
        count += 1
        size += len(data)
    return count, size


class UnsubscribePages:
    """The unsubscribe endpoint's logic: verify a token, unsubscribe, render the pages."""

    def __init__(self, config: Config, key: bytes) -> None:
        self.config = config
        self.key = key
        self.engine = open_store(config)
        self.env = make_environment(config.templates.dir)

    def verify(self, token: str) -> str | None:
        """The address a genuine token of this list was made for."""
        return verify_token(self.key, self.config.newsletter.list_id, token)

    def unsubscribe(self, token: str, now: datetime) -> str | None:
        """Unsubscribe the token's address (at once, and for good); None for a bad token."""
        address = self.verify(token)
        if address is None:
            return None
        if not store.set_subscriber_status(self.engine, address, store.UNSUBSCRIBED, now):
            logger.info("unsubscribe for an address not in the database")
        return address

    def page(self, state: str, **context: str) -> str:
        return render_page(
            self.env,
            UNSUBSCRIBE_TEMPLATE,
            state=state,
            list_name=self.config.newsletter.name,
            **context,
        )
