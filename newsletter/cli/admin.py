"""The commands around an issue: data, db, schedule, check-config (serve and preview: cli/web.py)."""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import TYPE_CHECKING

from newsletter.cli.common import load, now_utc, refresh_progress
from newsletter.cli.issues import print_refresh

if TYPE_CHECKING:
    import argparse
    from datetime import datetime


def cmd_db(args: argparse.Namespace) -> int:
    from newsletter.app.wiring import database_schema, upgrade_database  # noqa: PLC0415

    config = load(args)
    if args.action == "upgrade":
        where, before, after = upgrade_database(config)
        if before == after:
            print(f"Database {where}: schema revision {after}, already this version's")
        else:
            print(
                f"Database {where}: schema revision {before or 'none (new or pre-migration)'} -> {after}"
            )
        return 0
    where, state = database_schema(config)
    if state.current == state.head:
        print(f"Database {where}: schema revision {state.current}, this version's")
        return 0
    if state.empty:
        print(
            f"Database {where}: new; the first command that uses it creates revision {state.head}"
        )
        return 0
    print(
        f"Database {where}: schema revision {state.current or 'none (made before migrations)'}, "
        f"this version needs {state.head}: run `newsletter db upgrade`"
    )
    return 1


def cmd_data(args: argparse.Namespace) -> int:
    config = load(args)
    if args.action == "refresh" and not config.market.is_live:
        print(
            f"Nothing to refresh: market.provider is {config.market.provider}, so builds read "
            f"the bundled prices in {config.market.snapshot_dir} directly (`newsletter data "
            "status` shows them); set market.provider: yfinance for live prices"
        )
        return 0
    if args.action == "refresh":
        from newsletter.app.data import refresh_market  # noqa: PLC0415

        with refresh_progress(config, quiet=args.quiet) as on_progress:
            refreshed = refresh_market(config, now_utc, on_progress=on_progress)
        print_refresh(refreshed)
        return 0
    from newsletter.app.data import price_status  # noqa: PLC0415

    rows = price_status(config, now_utc().date())
    if not rows:
        print(f"The price store {config.price_store_path} is empty; run `newsletter data refresh`.")
        return 0
    print(f"{'ticker':8} {'first':10} {'last':10} {'rows':>6} {'age':>5}  {'gaps':>4}  source")
    for info, age_days, missing in rows:
        listed = ", ".join(day.isoformat() for day in missing[:3]) + (
            " ..." if len(missing) > 3 else ""
        )
        print(
            f"{info.ticker:8} {info.first.isoformat()} {info.last.isoformat()} {info.rows:>6} "
            f"{age_days:>4}d  {len(missing):>4}  {info.source}"
            f"{'  gaps: ' + listed if missing else ''}"
        )
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    from newsletter.app.signing import dkim_signer  # noqa: PLC0415
    from newsletter.config import require_imap_password, resolve_secrets  # noqa: PLC0415
    from newsletter.schedule import check_schedule  # noqa: PLC0415

    config = load(args)
    secrets = resolve_secrets(config, os.environ)
    require_imap_password(config, secrets)
    check_schedule(config.schedule, now_utc(), str(args.config))
    signer = dkim_signer(config, secrets)
    print(f"{args.config}: OK")
    print(config.model_dump_json(indent=2, exclude={"source"}))  # secrets masked (as ***)
    print(
        f"SMTP password: {'set' if secrets.smtp_password else 'not needed'}; "
        f"unsubscribe key: {'set' if secrets.unsubscribe_key else 'unset (built-in server only)'}"
        f"; IMAP password: {'set' if secrets.imap_password else 'not needed'}"
    )
    if signer is None:
        print("DKIM: off (set dkim.domain, dkim.selector and a key to sign; README: DKIM)")
        return 0
    print(
        f"DKIM: messages are signed as d={signer.domain}, s={signer.selector} with a "
        f"{signer.key.bits}-bit RSA key; publish this TXT record in DNS:\n{signer.dns_record()}"
    )
    return 0


def cmd_schedule(args: argparse.Namespace) -> int:
    from newsletter.cli import scheduled_job  # noqa: PLC0415
    from newsletter.config import require_imap_password, resolve_secrets  # noqa: PLC0415
    from newsletter.schedule import (  # noqa: PLC0415
        check_schedule,
        run_scheduler,
        stored_next_run,
        upcoming,
    )

    config = load(args)
    zone = config.schedule.zone
    if args.list is not None:
        stored = stored_next_run(config)
        section = config.schedule
        print(f"Schedule: {section.day_of_week} {section.time} {section.timezone}")
        if stored is not None:
            print(f"  Stored job runs next: {stored.astimezone(zone):%a %Y-%m-%d %H:%M %Z}")
        for plan in upcoming(section, now_utc(), args.list):
            print(f"  {plan.describe(zone)}")
        return 0
    # A missing secret fails now, not at Friday's run.
    require_imap_password(config, resolve_secrets(config, os.environ))
    check_schedule(config.schedule, now_utc(), str(args.config))
    _log_runs(verbose=args.verbose)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())

    def ready(next_run: datetime | None) -> None:
        when = f"{next_run.astimezone(zone):%a %Y-%m-%d %H:%M %Z}" if next_run else "never"
        print(f"Scheduler running; next run {when} (SIGTERM or Ctrl-C stops)", flush=True)

    run_scheduler(config, scheduled_job, stop, now_utc, on_ready=ready)
    print("Scheduler stopped.")
    return 0


def _log_runs(*, verbose: bool) -> None:
    """The scheduler's log: one line per stage of each run on stderr, with the time."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    logging.getLogger("newsletter").setLevel(logging.INFO)
    if not verbose:
        # APScheduler logs a failed job's traceback; our listener logs the one line that matters.
        logging.getLogger("apscheduler").setLevel(logging.CRITICAL)
