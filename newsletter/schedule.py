"""`newsletter schedule`: the weekly issue on time, once, across holidays, DST and restarts.

APScheduler 3 runs one cron job (day names, a time and a zone from config) kept in the project
database, so a machine that was off still runs the missed send when it comes back, within the
misfire grace time; coalescing makes several missed runs one, and a single worker thread with
max_instances=1 never overlaps two runs. This module knows when runs fire; what a run at a fire
time does (which session it covers, its deadline, approval, sending) is app/weekly.py's.

A run that did not finish (waiting for approval, the week's prices not there yet, the SMTP
server down, messages deferred) tries again every schedule.retry_minutes until the deadline
(the retry is a stored job too, so it survives a restart).
"""

from __future__ import annotations

import fcntl
import functools
import logging
import os
import queue
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
    JobExecutionEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from newsletter.app.bounces import read_before_send
from newsletter.app.weekly import Plan, RunOutcome, plan_runs, resumable, run_week
from newsletter.app.wiring import database, log_stage
from newsletter.config import load_config, resolve_secrets
from newsletter.errors import ConfigError, NewsletterError, ScheduleError

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable, Mapping

    from newsletter.app.build import Prepared
    from newsletter.config import Config, ScheduleSection, Secrets

logger = logging.getLogger(__name__)

JOB_ID = "weekly-issue"
RETRY_ID = "weekly-issue-retry"
JOB_TABLE = "apscheduler_jobs"
LOCK_FILE = "schedule.lock"
WEEKS_CHECKED = 4
"""How many upcoming runs `check_schedule` looks at."""
CHANGES_POLL_S = 0.2
"""How soon the retry a run's start or end asks for is stored."""
RETRIED = {outcome.value for outcome in RunOutcome if outcome.retried}
"""What the stored job returns (an outcome's value) when its run is to be tried again."""


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


def upcoming(section: ScheduleSection, now: datetime, count: int) -> list[Plan]:
    """The next `count` runs and what each will do."""
    return plan_runs(section, fire_times(make_trigger(section), now, count))


def check_schedule(section: ScheduleSection, now: datetime, label: str) -> None:
    """Refuse a schedule whose every run comes after its own deadline (it would never send)."""
    plans = upcoming(section, now, WEEKS_CHECKED)
    late = [(p, p.deadline) for p in plans if p.deadline is not None and p.fire > p.deadline]
    if plans and len(late) == len(plans):
        zone = section.zone
        first, deadline = late[0]
        raise ConfigError(
            f"{label}: schedule: {section.day_of_week} {section.time} runs after its own "
            f"deadline: the run at {first.fire.astimezone(zone):%a %H:%M} covers the session of "
            f"{first.as_of}, which stops being news at {deadline.astimezone(zone):%a %H:%M %Z} "
            "(the next open plus "
            "schedule.deadline_after_open_minutes); run after the close, or raise the deadline"
        )


def run_once(
    config: Config,
    *,
    secrets: Secrets,
    clock: Callable[[], datetime],
    fire: datetime | None = None,
    prepare: Callable[[Config, date], Prepared] | None = None,
) -> RunOutcome:
    """One scheduled run, for the fire time it stands for (app/weekly.py says what it does).

    `fire` pins the run to a fire time (a retry); by default it is the latest fire time of the
    configured trigger at or before now. A retry that a newer fire time superseded is dropped.
    """
    latest = fire_served(make_trigger(config.schedule), clock())
    if fire is not None and latest is not None and latest > fire:
        log_stage(
            "plan",
            time.perf_counter(),
            f"retry of the {fire.isoformat()} run dropped: {latest} came since",
        )
        return RunOutcome.TOO_LATE
    if config.bounces.enabled:  # first, so that who bounced or left is not mailed
        read_before_send(config, secrets=secrets, clock=clock)
    return run_week(
        config, fire or latest or clock(), secrets=secrets, clock=clock, prepare=prepare
    )


def run_job(
    config_path: str,
    fire: str | None,
    *,
    environ: Mapping[str, str],
    clock: Callable[[], datetime],
    prepare: Callable[[Config, date], Prepared] | None = None,
) -> str:
    """What the stored job does: re-read the config, which may have changed since the job was
    stored, and run once; returns the outcome's value. An error ends as one log line, and the
    next run is unaffected."""
    try:
        config = load_config(Path(config_path))
        return run_once(
            config,
            secrets=resolve_secrets(config, environ),
            clock=clock,
            fire=datetime.fromisoformat(fire) if fire else None,
            prepare=prepare,
        ).value
    except NewsletterError as err:
        logger.error("scheduled run failed: %s", err)
        return RunOutcome.FAILED.value


def _job_args(config: Config) -> list[str]:
    if config.source is None:
        raise ConfigError("the scheduler needs a config file (pass --config FILE)")
    return [str(config.source.resolve())]


def make_scheduler(
    config: Config, executor: ThreadPoolExecutor | None = None
) -> BackgroundScheduler:
    """A scheduler on the project database's job store, one worker, coalescing missed runs."""
    grace = int(config.schedule.misfire_grace_hours * 3600)
    return BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=database(config), tablename=JOB_TABLE)},
        executors={"default": executor or ThreadPoolExecutor(max_workers=1)},
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
    # Read the job store without starting a scheduler: a started one (even paused) may run
    # a retry that is due, and its shutdown raced with that run.
    store = SQLAlchemyJobStore(engine=database(config), tablename=JOB_TABLE)
    store.start(make_scheduler(config), "default")
    try:
        job = store.lookup_job(JOB_ID)
        next_run: datetime | None = None if job is None else job.next_run_time
        return next_run
    finally:
        store.shutdown()


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


def _retry_at(
    scheduler: BackgroundScheduler,
    config: Config,
    job: Callable[..., str],
    fire: datetime,
    at: datetime,
) -> None:
    """Store (or move) the retry of the run that stands for `fire`, due at `at`."""
    scheduler.add_job(
        job,
        "date",
        run_date=at,
        args=[*_job_args(config), fire.isoformat()],
        id=RETRY_ID,
        name="retry of the weekly issue",
        replace_existing=True,
    )


def _drop_retry(scheduler: BackgroundScheduler) -> None:
    try:
        scheduler.remove_job(RETRY_ID)
    except JobLookupError:
        return


def _run(
    config: Config,
    job: Callable[..., str],
    stop: threading.Event,
    clock: Callable[[], datetime],
    on_ready: Callable[[datetime | None], None],
) -> None:
    worker = ThreadPoolExecutor(max_workers=1)
    scheduler = make_scheduler(config, worker)
    section = config.schedule
    # A run's end is heard in the executor's thread, which shutdown() waits for while it holds
    # the job store's lock: changes from there are queued, and this thread makes them. A run's
    # start is heard in the scheduler's own thread, which may change the store at once.
    changes: queue.Queue[Callable[[], None]] = queue.Queue()

    def retry(delay_minutes: float, *, now: bool = False) -> datetime:
        at = clock() + timedelta(minutes=delay_minutes)
        fire = fire_served(make_trigger(section), clock()) or clock()
        change = functools.partial(_retry_at, scheduler, config, job, fire, at)
        if now:
            change()
        else:
            changes.put(change)
        return at

    def on_event(event: JobExecutionEvent) -> None:
        if event.code == EVENT_JOB_MISSED:
            logger.warning(
                "run due at %s skipped: more than %s h late (schedule.misfire_grace_hours)",
                event.scheduled_run_time,
                section.misfire_grace_hours,
            )
        elif event.code == EVENT_JOB_SUBMITTED:
            # Stored before it sends, so a killed run is tried again, and due only after the
            # longest a run may take, so it never starts a second run beside a live one.
            retry(section.retry_minutes + config.delivery.max_run_minutes, now=True)
        elif event.code == EVENT_JOB_ERROR or event.retval in RETRIED:
            if event.code == EVENT_JOB_ERROR:
                logger.error("scheduled run failed: %r", event.exception)
            logger.info("the run tries again at %s", retry(section.retry_minutes).isoformat())
        else:
            changes.put(lambda: _drop_retry(scheduler))

    scheduler.add_listener(
        on_event, EVENT_JOB_SUBMITTED | EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED
    )
    scheduler.start(paused=True)
    try:
        on_ready(install_job(scheduler, config, job))
        _resume_unfinished(config, clock, retry)
        scheduler.resume()
        while not stop.wait(CHANGES_POLL_S):
            _apply(changes)
        scheduler.pause()
        worker.shutdown(wait=True)  # a run in progress finishes, and its end is heard
        _apply(changes)
    finally:
        scheduler.shutdown(wait=True)


def _apply(changes: queue.Queue[Callable[[], None]]) -> None:
    while True:
        try:
            changes.get_nowait()()
        except queue.Empty:
            return


def _resume_unfinished(
    config: Config, clock: Callable[[], datetime], retry: Callable[[float], datetime]
) -> None:
    """Finish what a killed scheduler started: the latest run's issue, if its send is
    unfinished and its deadline has not passed, goes on now."""
    fire = fire_served(make_trigger(config.schedule), clock())
    as_of = resumable(config, fire, clock()) if fire is not None else None
    if as_of is not None:
        retry(0)
        logger.info("resuming the unfinished send of the issue for %s", as_of)
