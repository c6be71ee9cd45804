"""One scheduled run: plan -> refresh and build -> approval -> send, one log line per stage.

What a run at a fire time does is decided here, from the NYSE calendar:
- the issue covers the last session of the fire's week that had closed (Thursday when Friday
  is a holiday); a week without sessions sends nothing;
- a run later than the next session's open (plus schedule.deadline_after_open_minutes) is
  skipped: a weekly recap that arrives after the market reopened is worse than none;
- with schedule.require_approval the issue is sent only if the editor approved exactly this
  content; otherwise the editor gets one test copy of each version.
Sending twice is impossible by construction: the ledger sends each subscriber one message.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from newsletter.app.build import Prepared, prepare_issue
from newsletter.app.review import Approval, approval_state, request_approval
from newsletter.app.send import send_issue, send_unfinished
from newsletter.app.wiring import log_stage
from newsletter.market.calendar import TradingCalendar

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from zoneinfo import ZoneInfo

    from newsletter.config import Config, ScheduleSection, Secrets

logger = logging.getLogger("newsletter.schedule")
"""Named for the schedule, whose log these lines make (one per stage of each run)."""

CALENDAR_MARGIN = timedelta(days=14)


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

    @property
    def retried(self) -> bool:
        """Whether the schedule tries this run again (until its deadline)."""
        return self in {RunOutcome.WAITING, RunOutcome.INCOMPLETE, RunOutcome.FAILED}


@dataclass(frozen=True, slots=True)
class Plan:
    """What a run at `fire` is for: the as-of session and the moment it stops being useful."""

    fire: datetime
    as_of: date | None
    deadline: datetime | None

    def describe(self, zone: ZoneInfo) -> str:
        when = self.fire.astimezone(zone).strftime("%a %Y-%m-%d %H:%M %Z")
        if self.as_of is None:
            return f"{when}  no NYSE session that week: nothing is sent"
        until = (
            f", skipped after {self.deadline.astimezone(zone).strftime('%a %H:%M %Z')}"
            if self.deadline
            else ""
        )
        return f"{when}  issue for the week to {self.as_of.isoformat()}{until}"


def _plan(calendar: TradingCalendar, fire: datetime, deadline_minutes: int | None) -> Plan:
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


def plan_runs(section: ScheduleSection, fires: Sequence[datetime]) -> list[Plan]:
    """What each run at `fires` (ascending) will do."""
    if not fires:
        return []
    calendar = TradingCalendar(
        fires[0].date() - CALENDAR_MARGIN, fires[-1].date() + CALENDAR_MARGIN
    )
    return [_plan(calendar, fire, section.deadline_after_open_minutes) for fire in fires]


def resumable(config: Config, fire: datetime, now: datetime) -> date | None:
    """The issue of the run at `fire` if its send is unfinished and still in time, else None."""
    plan = plan_runs(config.schedule, [fire])[0]
    if plan.as_of is None or (plan.deadline is not None and now > plan.deadline):
        return None
    return plan.as_of if send_unfinished(config, plan.as_of) else None


def run_week(
    config: Config,
    fire: datetime,
    *,
    secrets: Secrets,
    clock: Callable[[], datetime],
    prepare: Callable[[Config, date], Prepared] | None = None,
) -> RunOutcome:
    """The run that stands for the fire time `fire`: plan, build, check approval, send.

    `prepare(config, as_of)` refreshes and builds the issue (by default `prepare_issue`); a
    test hands in one that reuses loaded prices.
    """
    now = clock()
    started = time.perf_counter()
    plan = plan_runs(config.schedule, [fire])[0]
    if plan.as_of is None:
        log_stage("plan", started, f"no NYSE session in the week of {fire.date()}: nothing to send")
        return RunOutcome.NO_SESSION
    if plan.deadline is not None and now > plan.deadline:
        log_stage(
            "plan",
            started,
            f"skipped the issue for {plan.as_of}: it is {now:%Y-%m-%d %H:%M} UTC, past the "
            f"deadline {plan.deadline:%Y-%m-%d %H:%M} UTC (the next session's open)",
        )
        return RunOutcome.TOO_LATE
    log_stage("plan", started, f"fire {fire.isoformat()}: issue for the week to {plan.as_of}")
    started = time.perf_counter()
    if prepare is None:
        prepared = prepare_issue(config, plan.as_of, clock=clock)
    else:
        prepared = prepare(config, plan.as_of)
    _log_build(prepared, started)
    return _release(config, prepared, secrets=secrets, clock=clock)


def _log_build(prepared: Prepared, started: float) -> None:
    refreshed, built = prepared.refreshed, prepared.built
    if refreshed is not None:
        written = refreshed.prices.written
        log_stage(
            "data",
            started,
            f"{sum(written.values())} price rows for {len(written)} tickers, "
            f"{refreshed.estimate_rows} estimate rows "
            f"({len(refreshed.estimate_failures)} tickers failed)",
        )
    log_stage(
        "build",
        started,
        f"issue {built.stats.as_of}: {len(built.files)} files, "
        f"{len(built.findings)} lint finding(s), subject {built.rendered.subject!r}",
    )


def _release(
    config: Config, prepared: Prepared, *, secrets: Secrets, clock: Callable[[], datetime]
) -> RunOutcome:
    """Approve, test-copy, send: the built issue goes out only when nothing holds it back."""
    built, section = prepared.built, config.schedule
    as_of = built.stats.as_of
    if built.lint_errors:
        logger.error(
            "issue %s not sent: %d lint error(s), the first: %s",
            as_of,
            len(built.lint_errors),
            built.lint_errors[0].text,
        )
        return RunOutcome.FAILED
    if section.require_approval and section.editor_email:
        why = approval_state(config, built)
        if why is not Approval.APPROVED:
            started = time.perf_counter()
            if request_approval(config, built, section.editor_email, secrets=secrets, clock=clock):
                detail = f"test copy sent to {section.editor_email}"
            else:
                detail = f"test copy already with {section.editor_email}"
            log_stage(
                "approve",
                started,
                f"issue {as_of} {why}: {detail}; waiting for `newsletter approve --as-of {as_of}`",
            )
            return RunOutcome.WAITING
    started = time.perf_counter()
    result = send_issue(config, built, secrets=secrets, clock=clock)
    r = result.report
    log_stage(
        "send",
        started,
        f"{r.sent} sent, {r.skipped} skipped, {r.deferred} deferred, {r.bounced} bounced, "
        f"{r.failed} failed via the {result.destination}",
    )
    return RunOutcome.INCOMPLETE if result.retry_left else RunOutcome.SENT
