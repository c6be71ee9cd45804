"""`newsletter schedule`: the weekly issue on time, once, across holidays, DST and restarts.

APScheduler 3 runs one cron job (day names, a time and a zone from config) kept in the project
database, so a machine that was off still runs the missed send when it comes back, within the
misfire grace time; coalescing makes several missed runs one, and a single worker thread with
max_instances=1 never overlaps two runs. What a run does is decided here, from the fire time
it stands for and the NYSE calendar:

- the issue covers the last session of the fire's week that had closed (Thursday when Friday
  is a holiday); a week without sessions sends nothing;
- a run later than the next session's open (plus schedule.deadline_after_open_minutes) is
  skipped: a weekly recap that arrives after the market reopened is worse than none;
- with schedule.require_approval the issue is sent only if the editor approved exactly this
  content; otherwise the editor gets one test copy;
- a run that did not finish (waiting for approval, the week's prices not there yet, the SMTP
  server down, messages deferred) tries again every schedule.retry_minutes until the deadline
  (the retry is a stored job too, so it survives a restart).

Sending twice is impossible by construction: the ledger sends each subscriber one message.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MISSED,
    JobExecutionEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from newsletter import store
from newsletter.errors import ConfigError, ScheduleError
from newsletter.market.calendar import TradingCalendar
from newsletter.pipeline import (
    APPROVED,
    approval_state,
    build_issue,
    open_store,
    refresh_fundamentals,
    refresh_prices,
    send_issue,
    send_test,
)

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable

    from newsletter.config import Config, ScheduleSection, Secrets

logger = logging.getLogger(__name__)

JOB_ID = "weekly-issue"
RETRY_ID = "weekly-issue-retry"
JOB_TABLE = "apscheduler_jobs"
CALENDAR_MARGIN = timedelta(days=14)
LOCK_FILE = "schedule.lock"


class RunOutcome(StrEnum):
    """How a scheduled run ended."""

    SENT = "sent"
    """Every subscriber's message was delivered or refused for good (bounced, failed)."""
    INCOMPLETE = "incomplete"
    """Some messages wait for another try (deferred by the server, or not reached yet)."""
    NO_SESSION = "no-session"
    TOO_LATE = "too-late"
    WAITING = "waiting-for-approval"
    FAILED = "failed"


RETRIED = {RunOutcome.WAITING.value, RunOutcome.INCOMPLETE.value, RunOutcome.FAILED.value}


@dataclass(frozen=True, slots=True)
class Plan:
    """What a run at `fire` is for: the as-of session and the moment it stops being useful."""

    fire: datetime
    as_of: date | None
    deadline: datetime | None

    def describe(self, zone: Any) -> str:
        when = self.fire.astimezone(zone).strftime("%a %Y-%m-%d %H:%M %Z")
        if self.as_of is None:
            return f"{when}  no NYSE session that week: nothing is sent"
        until = (
            f", skipped after {self.deadline.astimezone(zone).strftime('%a %H:%M %Z')}"
            if self.deadline
            else ""
        )
        return f"{when}  issue for the week to {self.as_of.isoformat()}{until}"


def make_trigger(section: ScheduleSection) -> CronTrigger:
    """The cron trigger: day names (never numbers) at a wall-clock time in the configured zone,
    so 17:30 New York stays 17:30 New York across daylight-saving changes."""
    return CronTrigger(
        day_of_week=section.day_of_week,
        hour=section.at.hour,
        minute=section.at.minute,
        timezone=section.zone,
    )


def fire_times(trigger: CronTrigger, start: datetime, count: int) -> list[datetime]:
    """The next `count` fire times at or after `start`."""
    times: list[datetime] = []
    fire = trigger.get_next_fire_time(None, start)
    while fire is not None and len(times) < count:
        times.append(fire)
        fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
    return times


def fire_served(trigger: CronTrigger, now: datetime) -> datetime | None:
    """The latest fire time at or before `now` (within a week): the one a (possibly late,
    coalesced) run stands for. A run after a night off must cover the week it was due for."""
    latest = None
    fire = trigger.get_next_fire_time(None, now - timedelta(days=8))
    while fire is not None and fire <= now:
        latest = fire
        fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
    return latest


def plan_run(calendar: TradingCalendar, fire: datetime, deadline_minutes: int | None) -> Plan:
    """The session a run at `fire` covers, and when it becomes too late to send."""
    as_of = calendar.week_last_session(fire)
    if as_of is None:
        return Plan(fire, None, None)
    deadline = (
        None
        if deadline_minutes is None
        else calendar.next_open(as_of) + timedelta(minutes=deadline_minutes)
    )
    return Plan(fire, as_of, deadline)


def calendar_around(first: datetime, last: datetime) -> TradingCalendar:
    return TradingCalendar(first.date() - CALENDAR_MARGIN, last.date() + CALENDAR_MARGIN)


def upcoming(section: ScheduleSection, now: datetime, count: int) -> list[Plan]:
    """The next `count` runs and what each will do."""
    fires = fire_times(make_trigger(section), now, count)
    if not fires:
        return []
    calendar = calendar_around(fires[0], fires[-1])
    return [plan_run(calendar, fire, section.deadline_after_open_minutes) for fire in fires]


def _log_stage(stage: str, started: float, detail: str) -> None:
    logger.info("%-8s %s (%.2f s)", stage, detail, time.perf_counter() - started)


def run_once(
    config: Config,
    *,
    secrets: Secrets,
    clock: Callable[[], datetime],
    fire: datetime | None = None,
) -> RunOutcome:
    """One scheduled run: plan, refresh, build, check approval, send; one log line per stage.

    `fire` pins the run to a fire time (an approval recheck); by default it is the latest fire
    time of the configured trigger at or before now.
    """
    now = clock()
    section = config.schedule
    latest = fire_served(make_trigger(section), now)
    started = time.perf_counter()
    if fire is not None and latest is not None and latest > fire:
        _log_stage(
            "plan", started, f"retry of the {fire.isoformat()} run dropped: {latest} came since"
        )
        return RunOutcome.TOO_LATE
    fire = fire or latest or now
    plan = plan_run(calendar_around(fire, fire), fire, section.deadline_after_open_minutes)
    if plan.as_of is None:
        _log_stage(
            "plan", started, f"no NYSE session in the week of {fire.date()}: nothing to send"
        )
        return RunOutcome.NO_SESSION
    if plan.deadline is not None and now > plan.deadline:
        _log_stage(
            "plan",
            started,
            f"skipped the issue for {plan.as_of}: it is {now:%Y-%m-%d %H:%M} UTC, past the "
            f"deadline {plan.deadline:%Y-%m-%d %H:%M} UTC (the next session's open)",
        )
        return RunOutcome.TOO_LATE
    _log_stage("plan", started, f"fire {fire.isoformat()}: issue for the week to {plan.as_of}")
    if config.market.provider == "yfinance":
        started = time.perf_counter()
        report = refresh_prices(config, clock)
        stored, failures = refresh_fundamentals(config, clock)
        _log_stage(
            "data",
            started,
            f"{sum(report.written.values())} price rows for {len(report.written)} tickers, "
            f"{stored} estimate rows ({len(failures)} tickers failed)",
        )
    started = time.perf_counter()
    built = build_issue(config, plan.as_of)
    _log_stage(
        "build",
        started,
        f"issue {built.stats.as_of}: {len(built.files)} files, "
        f"{len(built.findings)} lint finding(s), subject {built.rendered.subject!r}",
    )
    if built.lint_errors:
        logger.error(
            "issue %s not sent: %d lint error(s), the first: %s",
            plan.as_of,
            len(built.lint_errors),
            built.lint_errors[0].text,
        )
        return RunOutcome.FAILED
    if section.require_approval and section.editor_email:
        why = approval_state(config, built)
        if why != APPROVED:
            started = time.perf_counter()
            engine = open_store(config)
            if store.review(engine, plan.as_of).test_sent_sha256 != built.content_sha256:
                send_test(config, built, section.editor_email, secrets=secrets, clock=clock)
                store.note_test_sent(engine, plan.as_of, built.content_sha256, clock())
                detail = f"test copy sent to {section.editor_email}"
            else:
                detail = f"test copy already with {section.editor_email}"
            _log_stage(
                "approve",
                started,
                f"issue {plan.as_of} {why}: {detail}; waiting for `newsletter approve "
                f"--as-of {plan.as_of}`",
            )
            return RunOutcome.WAITING
    started = time.perf_counter()
    result = send_issue(config, built, secrets=secrets, clock=clock)
    r = result.report
    _log_stage(
        "send",
        started,
        f"{r.sent} sent, {r.skipped} skipped, {r.deferred} deferred, {r.bounced} bounced, "
        f"{r.failed} failed via the {result.destination}",
    )
    return RunOutcome.INCOMPLETE if result.retry_left else RunOutcome.SENT


def _job_args(config: Config) -> list[str]:
    if config.source is None:
        raise ConfigError("the scheduler needs a config file (pass --config FILE)")
    return [str(config.source.resolve())]


def make_scheduler(config: Config) -> BackgroundScheduler:
    """A scheduler on the project database's job store, one worker, coalescing missed runs."""
    grace = int(config.schedule.misfire_grace_hours * 3600)
    return BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=open_store(config), tablename=JOB_TABLE)},
        executors={"default": ThreadPoolExecutor(max_workers=1)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": grace},
        timezone=config.schedule.zone,
    )


def install_job(
    scheduler: BackgroundScheduler, config: Config, job: Callable[..., str]
) -> datetime | None:
    """Store the weekly job under its fixed id, replacing an earlier one; returns its next run.

    An unchanged stored job keeps its pending run time, so a run missed while the machine was
    off still happens (within the grace time) instead of being recomputed away.
    """
    trigger = make_trigger(config.schedule)
    args = _job_args(config)
    existing = scheduler.get_job(JOB_ID)
    keep: dict[str, Any] = {}
    if (
        existing is not None
        and repr(existing.trigger) == repr(trigger)
        and list(existing.args) == args
        and existing.next_run_time is not None
    ):
        keep["next_run_time"] = existing.next_run_time
    stored = scheduler.add_job(
        job,
        trigger,
        args=args,
        id=JOB_ID,
        name="weekly issue",
        replace_existing=True,
        **keep,
    )
    next_run: datetime | None = stored.next_run_time
    return next_run


def stored_next_run(config: Config) -> datetime | None:
    """When the stored weekly job runs next (None: not stored yet), without running anything."""
    scheduler = make_scheduler(config)
    scheduler.start(paused=True)
    try:
        job = scheduler.get_job(JOB_ID)
        return None if job is None else job.next_run_time
    finally:
        scheduler.shutdown(wait=False)


@contextmanager
def single_instance(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` while the scheduler runs, so a second scheduler on the
    same project refuses to start instead of running every job twice (the ledger would stop
    duplicate emails, but not duplicate builds and test copies). The kernel drops the lock
    when the process dies, so a crash never leaves it stale."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "unknown"
            raise ScheduleError(
                f"another scheduler already runs on this project (pid {owner}, lock {path}); "
                "stop it first, or use it"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_scheduler(
    config: Config,
    job: Callable[..., str],
    stop: threading.Event,
    clock: Callable[[], datetime],
    on_ready: Callable[[datetime | None], None] = lambda next_run: None,
) -> None:
    """Run the schedule until `stop` is set; a run in progress finishes before it returns.

    A run that waits or fails is retried (schedule.retry_minutes) until its deadline.

    `job(config_path, fire=None)` is the stored job's entry point: a module-level function
    (the job store keeps its import path), which reads the environment and runs `run_once`.
    """
    with single_instance(config.paths.var_dir / LOCK_FILE):
        _run(config, job, stop, clock, on_ready)


def _run(
    config: Config,
    job: Callable[..., str],
    stop: threading.Event,
    clock: Callable[[], datetime],
    on_ready: Callable[[datetime | None], None],
) -> None:
    scheduler = make_scheduler(config)
    section = config.schedule

    def on_event(event: JobExecutionEvent) -> None:
        if event.code == EVENT_JOB_MISSED:
            logger.warning(
                "run due at %s skipped: more than %s h late (schedule.misfire_grace_hours)",
                event.scheduled_run_time,
                section.misfire_grace_hours,
            )
            return
        if event.code == EVENT_JOB_ERROR:
            logger.error("scheduled run failed: %r", event.exception)
        elif event.retval not in RETRIED:
            return
        fire = fire_served(make_trigger(section), clock()) or clock()
        retry = clock() + timedelta(minutes=section.retry_minutes)
        scheduler.add_job(
            job,
            "date",
            run_date=retry,
            args=[*_job_args(config), fire.isoformat()],
            id=RETRY_ID,
            name="retry of the weekly issue",
            replace_existing=True,
        )
        logger.info("the run tries again at %s", retry.isoformat())

    scheduler.add_listener(on_event, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED)
    scheduler.start(paused=True)
    try:
        on_ready(install_job(scheduler, config, job))
        scheduler.resume()
        stop.wait()
    finally:
        scheduler.shutdown(wait=True)
