"""The weekly schedule: fire times across DST and holidays, late and empty weeks, approval,
a real scheduler run against aiosmtpd, and restarts that neither duplicate nor lose the job."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime
from email import message_from_bytes
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
import time_machine

from newsletter.app.review import approve_issue
from newsletter.app.weekly import RunOutcome
from newsletter.app.wiring import database
from newsletter.cli import main, scheduled_job
from newsletter.config import load_config, resolve_secrets
from newsletter.db.reviews import review
from newsletter.db.schema import open_database
from newsletter.delivery.capture import free_loopback_port
from newsletter.errors import ScheduleError
from newsletter.schedule import (
    JOB_ID,
    JOB_TABLE,
    install_job,
    make_scheduler,
    run_once,
    run_scheduler,
    single_instance,
    upcoming,
)
from tests.conftest import RecordingHandler, both_databases, now_utc, serving

NY = ZoneInfo("America/New_York")
SECRET = {"NEWSLETTER_UNSUBSCRIBE_SECRET": "schedule-test-secret"}


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def test_fire_times_keep_new_york_wall_time_across_dst_and_step_back_on_good_friday(
    write_config,
):
    section = load_config(write_config()).schedule
    plans = upcoming(section, utc(2026, 3, 1, 12, 0), 6)
    # US daylight saving starts Sun 8 March 2026: 17:30 New York is 22:30 UTC before, 21:30 after.
    assert [plan.fire for plan in plans] == [
        utc(2026, 3, 6, 22, 30),
        utc(2026, 3, 13, 21, 30),
        utc(2026, 3, 20, 21, 30),
        utc(2026, 3, 27, 21, 30),
        utc(2026, 4, 3, 21, 30),
        utc(2026, 4, 10, 21, 30),
    ]
    assert all(plan.fire.astimezone(NY).strftime("%a %H:%M") == "Fri 17:30" for plan in plans)
    # Good Friday (3 April 2026) is an NYSE holiday: that run covers Thursday.
    assert [plan.as_of for plan in plans] == [
        date(2026, 3, 6),
        date(2026, 3, 13),
        date(2026, 3, 20),
        date(2026, 3, 27),
        date(2026, 4, 2),
        date(2026, 4, 10),
    ]
    # The deadline is Monday's 09:30 open, already on summer time after the 6 March run.
    assert plans[0].deadline == utc(2026, 3, 9, 13, 30)
    assert plans[4].deadline == utc(2026, 4, 6, 13, 30)


def test_fire_times_across_the_autumn_change_thanksgiving_and_christmas(write_config):
    section = load_config(write_config()).schedule
    plans = upcoming(section, utc(2026, 10, 26, 0, 0), 10)
    by_fire = {plan.fire: plan for plan in plans}
    assert utc(2026, 10, 30, 21, 30) in by_fire  # EDT
    assert utc(2026, 11, 6, 22, 30) in by_fire  # EST from Sun 1 November
    # Friday after Thanksgiving closes early at 13:00 and is still the week's last session.
    assert by_fire[utc(2026, 11, 27, 22, 30)].as_of == date(2026, 11, 27)
    # Christmas Day is a Friday holiday: Thursday 24 December (an early close) is covered.
    assert by_fire[utc(2026, 12, 25, 22, 30)].as_of == date(2026, 12, 24)
    assert by_fire[utc(2026, 12, 25, 22, 30)].deadline == utc(2026, 12, 28, 14, 30)


def test_schedule_list_prints_the_next_runs_in_the_configured_zone(write_config, capsys):
    config_path = write_config(schedule={"timezone": "Europe/London", "time": "08:00"})
    with time_machine.travel(utc(2026, 12, 20, 12, 0), tick=False):
        code = main(["schedule", "--list", "3", "--config", str(config_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "Fri 2026-12-25 08:00 GMT  issue for the week to 2026-12-24" in out
    assert "Fri 2027-01-01 08:00 GMT  issue for the week to 2026-12-31" in out
    assert "Fri 2027-01-08 08:00 GMT  issue for the week to 2027-01-07" in out


def _config(write_config, port, tmp_path, **schedule):
    return load_config(
        write_config(
            smtp={"host": "127.0.0.1", "port": port},
            schedule=schedule,
        )
    )


def test_a_run_before_the_first_close_of_its_week_sends_nothing(write_config, tmp_path):
    handler = RecordingHandler()
    with serving(handler) as port:
        config = _config(write_config, port, tmp_path, day_of_week="mon", time="08:00")
        outcome = run_once(
            config,
            secrets=resolve_secrets(config, SECRET),
            clock=lambda: utc(2024, 7, 22, 12, 5),
        )
    assert outcome is RunOutcome.NO_SESSION
    assert handler.envelopes == []


def test_a_run_after_the_next_open_is_skipped_not_sent_late(write_config, tmp_path, prepare):
    handler = RecordingHandler()
    with serving(handler) as port:
        config = _config(write_config, port, tmp_path)
        # The machine was off over the weekend: Friday's run is attempted on Monday at 09:31.
        outcome = run_once(
            config,
            secrets=resolve_secrets(config, SECRET),
            clock=lambda: utc(2024, 7, 22, 13, 31),
        )
        assert outcome is RunOutcome.TOO_LATE
        # The same missed run on Monday before the open still goes out, for Friday's week.
        outcome = run_once(
            config,
            secrets=resolve_secrets(config, SECRET),
            clock=lambda: utc(2024, 7, 22, 12, 0),
            prepare=prepare,
        )
    assert outcome is RunOutcome.SENT
    assert len(handler.envelopes) == 5
    message = message_from_bytes(handler.envelopes[0].content)
    assert "19 Jul 2024" in message.get_payload(0).get_payload(decode=True).decode()


def test_an_unapproved_issue_goes_to_the_editor_once_and_waits(write_config, tmp_path, prepare):
    handler = RecordingHandler()
    friday = utc(2024, 7, 19, 21, 30)
    with serving(handler) as port:
        config = _config(
            write_config, port, tmp_path, require_approval=True, editor_email="ed@example.com"
        )
        secrets = resolve_secrets(config, SECRET)

        def run() -> RunOutcome:
            return run_once(config, secrets=secrets, clock=lambda: friday, prepare=prepare)

        assert run() is RunOutcome.WAITING
        assert run() is RunOutcome.WAITING
        assert [e.rcpt_tos for e in handler.envelopes] == [["ed@example.com"]]
        test_copy = message_from_bytes(handler.envelopes[0].content)
        assert test_copy["Subject"].startswith("[TEST]")

        approve_issue(config, prepare(config, date(2024, 7, 19)).built, friday)
        notes = config.paths.notes_dir / "2024-07-19" / "notes.md"
        notes.parent.mkdir(parents=True)
        notes.write_text("A late thought after approval.\n")
        assert run() is RunOutcome.WAITING
        assert len(handler.envelopes) == 2  # the changed issue went to the editor again
        approve_issue(config, prepare(config, date(2024, 7, 19)).built, friday)
        assert run() is RunOutcome.SENT
    recipients = sorted(e.rcpt_tos[0] for e in handler.envelopes[2:])
    assert len(recipients) == 5
    assert "ed@example.com" not in recipients


def _job_rows(config) -> list[tuple[str, float]]:
    with database(config).connect() as conn:
        rows = conn.execute(sa.text(f"SELECT id, next_run_time FROM {JOB_TABLE}")).all()
    return [tuple(row) for row in rows]


def _install(config) -> datetime | None:
    scheduler = make_scheduler(config)
    scheduler.start(paused=True)
    try:
        return install_job(scheduler, config, scheduled_job)
    finally:
        scheduler.shutdown(wait=False)


@both_databases
def test_a_restart_keeps_one_job_and_a_run_missed_while_off(write_config, tmp_path, database_url):
    """The scheduler's job store is the project database, SQLite or PostgreSQL."""
    config = load_config(write_config(database={"url": database_url}))
    with time_machine.travel(utc(2024, 7, 17, 15, 0), tick=False):
        first = _install(config)
    assert first == utc(2024, 7, 19, 21, 30)
    # Off over Friday evening, back on Saturday: the missed run is still pending, once.
    with time_machine.travel(utc(2024, 7, 20, 14, 0), tick=False):
        again = _install(config)
    assert again == first
    assert [row[0] for row in _job_rows(config)] == [JOB_ID]
    # A changed schedule replaces the job (same id) with the new trigger's next time.
    changed = load_config(
        write_config(schedule={"day_of_week": "thu"}, database={"url": database_url})
    )
    with time_machine.travel(utc(2024, 7, 20, 14, 0), tick=False):
        assert _install(changed) == utc(2024, 7, 25, 21, 30)
    assert [row[0] for row in _job_rows(config)] == [JOB_ID]


@pytest.mark.slow
def test_the_scheduler_runs_the_real_job_when_due_and_stops_cleanly(
    write_config, tmp_path, monkeypatch
):
    monkeypatch.setenv(*next(iter(SECRET.items())))
    handler = RecordingHandler()
    stop = threading.Event()
    ready: list[datetime | None] = []
    with serving(handler) as port:
        config = _config(write_config, port, tmp_path)
        # Two seconds before Friday 19 July 2024, 17:30 New York; the clock runs on from there.
        with time_machine.travel(datetime(2024, 7, 19, 17, 29, 58, tzinfo=NY), tick=True):
            thread = threading.Thread(
                target=run_scheduler,
                args=(config, scheduled_job, stop, now_utc),
                kwargs={"on_ready": ready.append},
            )
            thread.start()
            deadline = time.monotonic() + 180
            while len(handler.envelopes) < 5 and time.monotonic() < deadline:
                time.sleep(0.2)
            stop.set()
            thread.join(timeout=60)
    assert not thread.is_alive()
    assert ready == [utc(2024, 7, 19, 21, 30)]
    assert len(handler.envelopes) == 5
    assert len({e.rcpt_tos[0] for e in handler.envelopes}) == 5
    (row,) = _job_rows(config)
    assert datetime.fromtimestamp(row[1], UTC) == utc(2024, 7, 26, 21, 30)
    assert (config.archive_dir / "2024-07-19" / "index.html").is_file()


def test_a_waiting_run_rechecks_and_sends_once_the_editor_approves(
    write_config, tmp_path, monkeypatch, caplog, fast_job, prepare
):
    monkeypatch.setenv(*next(iter(SECRET.items())))
    caplog.set_level(logging.INFO, logger="newsletter")
    handler = RecordingHandler()
    stop = threading.Event()
    with serving(handler) as port:
        config = _config(
            write_config,
            port,
            tmp_path,
            require_approval=True,
            editor_email="ed@example.com",
            retry_minutes=0.02,
        )
        with time_machine.travel(datetime(2024, 7, 19, 17, 29, 59, tzinfo=NY), tick=True):
            thread = threading.Thread(
                target=run_scheduler,
                args=(config, fast_job, stop, now_utc),
            )
            thread.start()
            deadline = time.monotonic() + 180
            while not handler.envelopes and time.monotonic() < deadline:
                time.sleep(0.1)
            assert [e.rcpt_tos for e in handler.envelopes] == [["ed@example.com"]]
            built = prepare(config, date(2024, 7, 19)).built
            approve_issue(config, built, datetime.now(UTC))
            while len(handler.envelopes) < 6 and time.monotonic() < deadline:
                time.sleep(0.2)
            stop.set()
            thread.join(timeout=60)
    assert not thread.is_alive()
    assert len(handler.envelopes) == 6
    assert "ed@example.com" not in {e.rcpt_tos[0] for e in handler.envelopes[1:]}
    stages = [r.getMessage().split()[0] for r in caplog.records if r.name == "newsletter.schedule"]
    assert stages.count("approve") >= 1 and stages.count("send") == 1
    assert {"plan", "build"} <= set(stages)


def test_schedule_stops_cleanly_on_sigterm(write_config, tmp_path):
    config_path = write_config()
    env = {**os.environ, **SECRET}
    process = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "schedule", "--config", str(config_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        first = process.stdout.readline()
        assert first.startswith("Scheduler running; next run Fri "), first
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert out.strip() == "Scheduler stopped."
    assert "Traceback" not in err


@pytest.mark.slow
def test_a_run_that_finds_the_smtp_server_down_retries_and_sends_each_message_once(
    write_config, tmp_path, monkeypatch, caplog, fast_job
):
    monkeypatch.setenv(*next(iter(SECRET.items())))
    caplog.set_level(logging.INFO, logger="newsletter")

    def retries() -> int:
        return sum("tries again" in r.getMessage() for r in caplog.records)

    port = free_loopback_port()
    config = load_config(
        write_config(
            smtp={"host": "127.0.0.1", "port": port, "timeout_s": 2},
            delivery={"max_attempts": 1, "max_wait_s": 0},
            schedule={"retry_minutes": 0.02},
        )
    )
    handler = RecordingHandler()
    stop = threading.Event()
    with time_machine.travel(datetime(2024, 7, 19, 17, 29, 59, tzinfo=NY), tick=True):
        thread = threading.Thread(target=run_scheduler, args=(config, fast_job, stop, now_utc))
        thread.start()
        deadline = time.monotonic() + 180
        while not retries() and time.monotonic() < deadline:
            time.sleep(0.2)
        # The first run found nothing listening; the server comes up before the retry.
        with serving(handler, port=port):
            while len(handler.envelopes) < 5 and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(2.5)  # a further retry (every 1.2 s), were one scheduled, would send now
            stop.set()
            thread.join(timeout=60)
    assert not thread.is_alive()
    recipients = [e.rcpt_tos[0] for e in handler.envelopes]
    assert len(recipients) == 5 and len(set(recipients)) == 5
    assert retries() == 1


def test_a_retry_of_last_weeks_run_is_dropped_once_a_newer_run_came(write_config):
    config = load_config(write_config(schedule={"deadline_after_open_minutes": None}))
    outcome = run_once(
        config,
        secrets=resolve_secrets(config, SECRET),
        clock=lambda: utc(2024, 7, 26, 22, 0),
        fire=utc(2024, 7, 19, 21, 30),
    )
    assert outcome is RunOutcome.TOO_LATE


def test_a_second_scheduler_on_the_same_project_refuses_to_start(write_config):
    config = load_config(write_config())
    with (
        single_instance(config.paths.var_dir / "schedule.lock"),
        pytest.raises(ScheduleError, match=rf"another scheduler already runs .*pid {os.getpid()}"),
    ):
        run_scheduler(config, scheduled_job, threading.Event(), now_utc)
    stop = threading.Event()
    stop.set()  # the lock is free again: a scheduler starts (and stops at once)
    run_scheduler(config, scheduled_job, stop, now_utc)


def test_approve_records_the_issue_as_built_now(fast_cli, write_config, capsys, prepare):
    config_path = write_config(
        schedule={"require_approval": True, "editor_email": "ed@example.com"}
    )
    assert main(["approve", "--as-of", "2024-07-19", "--quiet", "--config", str(config_path)]) == 0
    out = capsys.readouterr().out
    assert "Approved: issue 2024-07-19 as built now" in out
    assert "require_approval is off" not in out
    config = load_config(config_path)
    found = review(open_database(config.database_url), date(2024, 7, 19))
    assert found.approved_sha256 == prepare(config, date(2024, 7, 19)).built.content_sha256


def test_schedule_list_with_a_retry_due_reads_the_store_without_running_it(write_config):
    """A stop left a retry that is now due: --list must neither run it nor trip over it."""
    from datetime import timedelta  # noqa: PLC0415

    from apscheduler.job import Job  # noqa: PLC0415
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore  # noqa: PLC0415
    from apscheduler.triggers.date import DateTrigger  # noqa: PLC0415

    from newsletter.app.wiring import database  # noqa: PLC0415

    config_path = write_config()
    config = load_config(config_path)
    _install(config)
    overdue = datetime.now(UTC) - timedelta(minutes=5)
    store = SQLAlchemyJobStore(engine=database(config), tablename=JOB_TABLE)
    store.start(make_scheduler(config), "default")
    store.add_job(
        Job(
            make_scheduler(config),
            id="weekly-issue-retry",
            func=scheduled_job,
            args=[str(config_path.resolve()), overdue.isoformat()],
            kwargs={},
            trigger=DateTrigger(overdue),
            executor="default",
            name="retry of the weekly issue",
            misfire_grace_time=3600,
            coalesce=True,
            max_instances=1,
            next_run_time=overdue,
        )
    )
    listed = subprocess.run(
        [
            sys.executable,
            "-m",
            "newsletter",
            "schedule",
            "--list",
            "2",
            "--config",
            str(config_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert listed.returncode == 0
    assert "Stored job runs next: Fri " in listed.stdout
    assert listed.stderr == ""
    assert {row[0] for row in _job_rows(config)} == {JOB_ID, "weekly-issue-retry"}  # not run
