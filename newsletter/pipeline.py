"""The one place that knows the stage order: data -> stats -> charts -> render -> compose -> deliver.

Drivers (the CLI today; the scheduler and preview later) call `build_issue` and `send_issue`.
Everything is built first, then written through one sink (`write_issue_folder`), then sent.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from secrets import token_bytes
from typing import TYPE_CHECKING, Any

import pandas as pd

from newsletter.charts import render_charts
from newsletter.compose import ListInfo, compose_message
from newsletter.delivery import CaptureServer, Outgoing, SendLedger, SmtpSettings, deliver
from newsletter.errors import AsOfError
from newsletter.headline import write_headline
from newsletter.market.calendar import TradingCalendar
from newsletter.market.events import load_key_dates
from newsletter.market.snapshot import SnapshotSource
from newsletter.market.weights import load_start_of_year_weights
from newsletter.models import UNSUBSCRIBE_MARKER, Issue, Prices, StatsSpec
from newsletter.render import make_environment, render_html, render_issue
from newsletter.stats import compute_week_stats, member_tickers, required_tickers, spec_tickers
from newsletter.stats.strength import YEAR_SESSIONS
from newsletter.subscribers import load_subscribers
from newsletter.unsubscribe import make_token

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from datetime import datetime

    from newsletter.config import Config, Secrets
    from newsletter.models import DeliveryReport, RenderedIssue, Subscriber
    from newsletter.weekstats import WeekStats

logger = logging.getLogger(__name__)

LEDGER_FILE = "sent.jsonl"
REQUEST_SLACK_DAYS = 14
EXAMPLE_TOKEN = "example-token"
KEY_DATES_SOURCE = "Federal Reserve FOMC calendars and BLS CPI release schedules (see KEY_DATES.md)"
FILE_MODE = 0o644


@dataclass(frozen=True, slots=True)
class BuiltIssue:
    """A built issue: what is mailed, its numbers, and the folder holding its files."""

    stats: WeekStats
    rendered: RenderedIssue
    folder: Path


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


def _present(prices: Prices, tickers: list[str]) -> pd.DatetimeIndex:
    """Sessions at which every one of `tickers` has a close."""
    return pd.DatetimeIndex(prices.adjusted[tickers].dropna().index)


@dataclass(frozen=True, slots=True)
class Market:
    """Prices aligned to NYSE sessions, the calendar, and the as-of session they serve."""

    prices: Prices
    calendar: TradingCalendar
    as_of: date


def load_market(config: Config, requested: date | None) -> Market:
    """Load the prices and resolve `requested` to the as-of session they serve.

    An issue can be built for any session at which the headline pair (IWM and SPY) has a close
    and a year of history behind it; sections whose tickers lack data say so. The default is the
    last session at which the whole scoreboard, the pair and the mega caps all have closes.
    """
    started = time.perf_counter()
    spec = stats_spec(config)
    source = SnapshotSource(config.market.snapshot_dir)
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
    return Market(prices=aligned, calendar=calendar, as_of=as_of)


def build_issue(
    config: Config,
    requested: date | None,
    out_dir: Path | None = None,
    *,
    subject: str | None = None,
    preheader: str | None = None,
) -> BuiltIssue:
    """Compute, chart and render the issue for the session on or before `requested`.

    `subject` and `preheader` override the generated ones (the editor's words).
    """
    market = load_market(config, requested)
    prices, as_of = market.prices, market.as_of
    started = time.perf_counter()
    dates = market.calendar.report_dates(as_of)
    s = config.stats
    stats = compute_week_stats(
        prices,
        dates,
        stats_spec(config),
        weights=load_start_of_year_weights(config.market.snapshot_dir, as_of.year),
        events=load_key_dates(config.market.key_dates_file),
        events_source=KEY_DATES_SOURCE,
    )
    charts = render_charts(prices, stats, s.ratio_chart_sessions)
    headline = write_headline(stats, subject=subject, preheader=preheader)
    issue = Issue(
        stats=stats,
        charts=charts,
        subject=headline.subject,
        preheader=headline.preheader,
        newsletter_name=config.newsletter.name,
        base_url=config.newsletter.base_url,
        postal_address=config.newsletter.postal_address,
    )
    env = make_environment(config.templates.dir)
    rendered = render_issue(issue, env)
    folder = out_dir or config.issues_dir / as_of.isoformat()
    document = {**stats.to_json(), "headline": headline.to_json()}
    write_issue_folder(
        folder,
        rendered,
        document,
        render_html(issue, env, "file"),
        unsubscribe_example=f"{config.newsletter.base_url}/u/{EXAMPLE_TOKEN}",
    )
    logger.info(
        "Built issue %s: %d charts, %d KB HTML in %.2f s",
        as_of,
        len(charts),
        len(rendered.html.encode()) // 1024,
        time.perf_counter() - started,
    )
    return BuiltIssue(stats=stats, rendered=rendered, folder=folder)


def _write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename, so a crash never leaves half a file."""
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        tmp.write(data)
        tmp.flush()
        os.fsync(tmp.fileno())
    Path(tmp.name).chmod(FILE_MODE)
    Path(tmp.name).replace(path)


def write_issue_folder(
    folder: Path,
    rendered: RenderedIssue,
    stats_json: dict[str, Any],
    preview_html: str,
    *,
    unsubscribe_example: str,
) -> None:
    """The issue's files: email.html (cid: refs), preview.html (image files), email.txt, PNGs, stats.json.

    Each subscriber's message carries their own unsubscribe link; these shared copies show an
    example link in its place.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in (
        ("email.html", rendered.html),
        ("preview.html", preview_html),
        ("email.txt", rendered.text),
    ):
        _write_atomic(
            folder / name, content.replace(UNSUBSCRIBE_MARKER, unsubscribe_example).encode()
        )
    for chart in rendered.images:
        _write_atomic(folder / chart.filename, chart.png)
    _write_atomic(folder / "stats.json", (json.dumps(stats_json, indent=2) + "\n").encode())


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


def _messages(
    built: BuiltIssue, subscribers: Sequence[Subscriber], info: ListInfo, key: bytes, now: datetime
) -> Iterator[Outgoing]:
    for subscriber in subscribers:
        token = make_token(key, info.list_id, subscriber.email)
        yield Outgoing(
            subscriber.email,
            compose_message(built.rendered, subscriber, info, token=token, now=now),
        )


@dataclass(frozen=True, slots=True)
class SendResult:
    """What a send did, and where its copies went."""

    report: DeliveryReport
    recipients: int
    destination: str


def send_issue(
    config: Config,
    built: BuiltIssue,
    *,
    secrets: Secrets,
    now: datetime,
    on_start: Callable[[int], None] = lambda total: None,
    on_progress: Callable[[], None] = lambda: None,
) -> SendResult:
    """Deliver the built issue to every subscriber not yet in its ledger."""
    subscribers = load_subscribers(config.subscribers.file)
    info = _list_info(config)
    key = secrets.unsubscribe_key
    if key is None:
        logger.warning(
            "%s is unset: unsubscribe links in this local run are signed with a one-off key",
            config.newsletter.unsubscribe_secret_env,
        )
        key = token_bytes(32)
    ledger = SendLedger(config.issues_dir / built.stats.as_of.isoformat() / LEDGER_FILE)
    on_start(len(subscribers))
    messages = _messages(built, subscribers, info, key, now)
    smtp = config.smtp
    with ExitStack() as stack:
        if smtp.is_builtin:
            server = stack.enter_context(CaptureServer(config.outbox_dir))
            settings = server.settings(smtp.timeout_s)
            destination = f"built-in capture server, Maildir {config.outbox_dir}"
        else:
            settings = SmtpSettings(
                host=smtp.host,
                port=smtp.port,
                security=smtp.security,
                timeout_s=smtp.timeout_s,
                username=smtp.username,
                password=secrets.smtp_password,
            )
            destination = f"SMTP server {smtp.host}:{smtp.port}"
        report = deliver(messages, settings, info.envelope_sender, ledger, on_progress)
    logger.info(
        "Sent issue %s: %d sent, %d already sent, %d refused",
        built.stats.as_of,
        len(report.sent),
        len(report.skipped),
        len(report.refused),
    )
    return SendResult(report=report, recipients=len(subscribers), destination=destination)
