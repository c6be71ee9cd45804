"""The `newsletter` command: parses arguments, calls the pipeline, turns errors into one line.

Heavy libraries are imported only inside commands, so `newsletter --help` is instant. This is
the one module that reads the environment and the clock, and prints.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import traceback
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from newsletter import __version__
from newsletter.errors import AsOfError, NewsletterError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from newsletter.config import Config, Secrets
    from newsletter.pipeline import BuiltIssue, SendResult

DEFAULT_CONFIG = Path("config.yaml")


def now_utc() -> datetime:
    """The clock every command passes down (the stages never read it themselves)."""
    return datetime.now(UTC)


def _parse_as_of(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError as err:
        raise AsOfError(f"--as-of must be a date as YYYY-MM-DD, got '{text}'") from err


def _load(args: argparse.Namespace) -> Config:
    from newsletter.config import load_config  # noqa: PLC0415 (pydantic off the --help path)

    return load_config(args.config)


def _describe_built(built: BuiltIssue) -> list[str]:
    from newsletter.models import display_name  # noqa: PLC0415
    from newsletter.render import signed_pp  # noqa: PLC0415

    stats = built.stats
    spread = stats.spread_5d
    return [
        f"Issue {stats.as_of.isoformat()} (week since the close of {stats.prev_close.isoformat()})",
        f"  Subject: {built.rendered.subject}",
        f"  {display_name(spread.long)} - {display_name(spread.short)}, 5 sessions: "
        f"{signed_pp(spread.value)} (episode {spread.episode_rank:,} of {spread.episodes:,} "
        f"since {spread.history_start.isoformat()})",
        f"  Draft:   {built.folder / 'preview.html'}",
    ]


def _refresh(config: Config, quiet: bool) -> None:
    from rich.console import Console  # noqa: PLC0415
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn  # noqa: PLC0415

    from newsletter.pipeline import price_tickers, refresh_prices  # noqa: PLC0415

    total = len(price_tickers(config))
    with Progress(
        TextColumn("Refreshing prices"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        console=Console(stderr=True),
        transient=True,
        disable=quiet,
    ) as progress:
        task = progress.add_task("", total=total)
        report = refresh_prices(
            config,
            now_utc,
            on_progress=lambda ticker: progress.update(task, advance=1, description=ticker),
        )
    rewritten = f"; history rewritten for {', '.join(report.rewritten)}" if report.rewritten else ""
    print(
        f"  Prices:  {sum(report.written.values()):,} rows stored for {len(report.written)} tickers{rewritten}"
    )
    if config.market.provider == "yfinance":
        from newsletter.pipeline import refresh_fundamentals  # noqa: PLC0415

        stored, failures = refresh_fundamentals(config, now_utc)
        print(f"  Estimates: {stored} snapshot rows stored for today")
        for failure in failures:
            print(f"  Warning: {failure}", file=sys.stderr)


def _build(args: argparse.Namespace, config: Config, as_of: date | None) -> BuiltIssue:
    from newsletter.errors import FetchError  # noqa: PLC0415
    from newsletter.pipeline import build_issue  # noqa: PLC0415

    stale_reason = None
    if config.market.provider == "yfinance":
        try:
            _refresh(config, quiet=getattr(args, "quiet", False))
        except FetchError as err:
            if not args.allow_stale:
                raise
            stale_reason = str(err)
            print(
                f"  Warning: {err}; building from the stored prices (--allow-stale)",
                file=sys.stderr,
            )

    built = build_issue(
        config,
        as_of,
        getattr(args, "out", None),
        subject=args.subject,
        preheader=args.preheader,
        allow_stale=args.allow_stale,
        stale_reason=stale_reason,
    )
    print("\n".join(_describe_built(built)))
    for finding in built.findings:
        print(f"  Lint {finding}", file=sys.stderr)
    return built


def cmd_build(args: argparse.Namespace) -> int:
    built = _build(args, _load(args), _parse_as_of(args.as_of))
    return 1 if built.lint_errors else 0


def cmd_draft(args: argparse.Namespace) -> int:
    from newsletter.pipeline import start_draft  # noqa: PLC0415

    path, created = start_draft(_load(args), _parse_as_of(args.as_of))
    print(
        f"{'Created' if created else 'Already there'}: {path} (write the note, then `newsletter build`)"
    )
    return 0


def cmd_lint(args: argparse.Namespace) -> int:
    built = _build(args, _load(args), _parse_as_of(args.as_of))
    errors = len(built.lint_errors)
    print(f"  Lint:    {errors} error(s), {len(built.findings) - errors} warning(s)")
    return 1 if errors else 0


def _send_and_report(
    args: argparse.Namespace, config: Config, built: BuiltIssue, secrets: Secrets
) -> int:
    from rich.console import Console  # noqa: PLC0415
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn  # noqa: PLC0415

    from newsletter.pipeline import send_issue  # noqa: PLC0415

    with Progress(
        TextColumn("Sending"),
        BarColumn(),
        MofNCompleteColumn(),
        console=Console(stderr=True),
        transient=True,
        disable=args.quiet,
    ) as progress:
        task = progress.add_task("send", total=None)
        result = send_issue(
            config,
            built,
            secrets=secrets,
            clock=now_utc,
            on_start=lambda total: progress.update(task, total=total),
            on_progress=lambda done: progress.advance(task, done),
        )
    _print_summary(result)
    return 0 if result.complete else 1


def _print_summary(result: SendResult) -> None:
    report = result.report
    print(
        f"  Sent:    {report.sent} now to the {result.destination}; "
        f"{report.retried} retried, {report.bounced} bounced, {report.failed} failed, "
        f"{report.deferred} deferred, {report.skipped} skipped (sent earlier or unsubscribed)"
    )
    ledger = ", ".join(f"{count} {status}" for status, count in sorted(result.ledger.items()))
    print(f"  Ledger:  {ledger or 'no subscribers'}")
    print(f"  Archive: {result.archive} (`newsletter serve` publishes it)")
    for address, reply in report.refusals:
        print(f"  Not delivered: {address}: {reply}", file=sys.stderr)
    for error in result.row_errors:
        print(f"  Skipped row: {error}", file=sys.stderr)
    if not result.complete:
        print(
            "  Some messages are still undelivered; run the same command again to retry them.",
            file=sys.stderr,
        )


def cmd_run(args: argparse.Namespace) -> int:
    from newsletter.config import resolve_secrets  # noqa: PLC0415

    config = _load(args)
    secrets = resolve_secrets(config, os.environ)  # before the build: a missing secret fails fast
    built = _build(args, config, _parse_as_of(args.as_of))
    return _send_and_report(args, config, built, secrets)


def cmd_send(args: argparse.Namespace) -> int:
    from newsletter.config import resolve_secrets  # noqa: PLC0415
    from newsletter.pipeline import dry_run, open_store, send_test  # noqa: PLC0415
    from newsletter.store import latest_unfinished_issue  # noqa: PLC0415

    config = _load(args)
    secrets = resolve_secrets(config, os.environ)
    as_of = _parse_as_of(args.as_of)
    if args.resume:
        if as_of is not None:
            raise AsOfError("--resume picks the interrupted issue itself; leave out --as-of")
        as_of = latest_unfinished_issue(open_store(config))
        if as_of is None:
            print("Nothing to resume: every issue's send is complete.")
            return 0
    built = _build(args, config, as_of)
    if args.test:
        where = send_test(config, built, args.test, secrets=secrets, clock=now_utc)
        print(f"  Test:    one [TEST] copy to {args.test} via the {where} (not recorded as sent)")
        return 0
    if args.dry_run:
        count, size = dry_run(config, built, secrets=secrets, clock=now_utc)
        print(
            f"  Dry run: {count} messages composed, {size / 1024:.0f} KB in all; nothing was sent"
        )
        return 0
    return _send_and_report(args, config, built, secrets)


def cmd_approve(args: argparse.Namespace) -> int:
    from newsletter.pipeline import approve_issue  # noqa: PLC0415

    config = _load(args)
    built = _build(args, config, _parse_as_of(args.as_of))
    approve_issue(config, built, now_utc())
    print(
        f"  Approved: issue {built.stats.as_of.isoformat()} as built now (content "
        f"{built.content_sha256[:12]}); the scheduled run sends it unless it changes"
    )
    if not config.schedule.require_approval:
        print(
            "  Note: schedule.require_approval is off, so the scheduled run does not wait for "
            "approvals"
        )
    return 0


def scheduled_job(config_path: str, fire: str | None = None) -> str:
    """The stored weekly job's entry point (the job store keeps this import path): re-read the
    config, which may have changed since the job was stored, and run once. An error ends as
    one log line; the next run is unaffected."""
    from newsletter.config import load_config, resolve_secrets  # noqa: PLC0415
    from newsletter.schedule import RunOutcome, run_once  # noqa: PLC0415

    try:
        config = load_config(Path(config_path))
        return run_once(
            config,
            secrets=resolve_secrets(config, os.environ),
            clock=now_utc,
            fire=datetime.fromisoformat(fire) if fire else None,
        ).value
    except NewsletterError as err:
        logging.getLogger("newsletter.schedule").error("scheduled run failed: %s", err)
        return RunOutcome.FAILED.value


def cmd_schedule(args: argparse.Namespace) -> int:
    from newsletter.config import resolve_secrets  # noqa: PLC0415
    from newsletter.schedule import run_scheduler, stored_next_run, upcoming  # noqa: PLC0415

    config = _load(args)
    zone = config.schedule.zone
    if args.list is not None:
        stored = stored_next_run(config)
        print(
            f"Schedule: {config.schedule.day_of_week} {config.schedule.time} {config.schedule.timezone}"
        )
        if stored is not None:
            print(f"  Stored job runs next: {stored.astimezone(zone):%a %Y-%m-%d %H:%M %Z}")
        for plan in upcoming(config.schedule, now_utc(), args.list):
            print(f"  {plan.describe(zone)}")
        return 0
    resolve_secrets(config, os.environ)  # a missing secret fails now, not at Friday's run
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    logging.getLogger("newsletter").setLevel(logging.INFO)
    if not args.verbose:
        # APScheduler logs a failed job's traceback; our listener logs the one line that matters.
        logging.getLogger("apscheduler").setLevel(logging.CRITICAL)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())

    def ready(next_run: datetime | None) -> None:
        when = f"{next_run.astimezone(zone):%a %Y-%m-%d %H:%M %Z}" if next_run else "never"
        print(f"Scheduler running; next run {when} (SIGTERM or Ctrl-C stops)", flush=True)

    run_scheduler(config, scheduled_job, stop, now_utc, on_ready=ready)
    print("Scheduler stopped.")
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    from newsletter.errors import ConfigError  # noqa: PLC0415
    from newsletter.preview import DraftPreview, make_preview_server  # noqa: PLC0415

    config = _load(args)
    host = args.host or config.web.host
    port = args.port or config.web.preview_port
    preview = DraftPreview(args.config, _parse_as_of(args.as_of))
    stop = threading.Event()
    try:
        server = make_preview_server(host, port, preview, stop)
    except OSError as err:
        raise ConfigError(
            f"cannot listen on {host}:{port}: {err.strerror} (change web.preview_port or --port)"
        ) from err
    draft = preview.current()
    if draft.error:
        print(f"  The draft does not build yet: {draft.error}", file=sys.stderr)
    watcher = threading.Thread(target=preview.watch, args=(stop,), daemon=True)
    watcher.start()
    print(
        f"Previewing on http://{host}:{server.server_port}/ (reloads when the notes, templates "
        "or config change; Ctrl-C stops)",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("Stopped.")
    finally:
        stop.set()
        server.server_close()
        watcher.join(timeout=5)
    return 0


def cmd_subscribers(args: argparse.Namespace) -> int:
    from newsletter import store  # noqa: PLC0415
    from newsletter.models import Subscriber  # noqa: PLC0415
    from newsletter.pipeline import open_store  # noqa: PLC0415
    from newsletter.subscribers import (  # noqa: PLC0415
        clean_name,
        normalise_address,
        read_subscriber_csv,
        write_subscriber_csv,
    )

    engine = open_store(_load(args))
    action = args.action
    if action == "add":
        subscriber = Subscriber(normalise_address(args.email), clean_name(args.name or ""))
        report = store.import_subscribers(engine, [subscriber], source="cli", now=now_utc())
        if report.kept_inactive:
            print(f"{subscriber.email} unsubscribed or bounced earlier and stays so")
        else:
            print(f"{subscriber.email}: {'added' if report.added else 'already subscribed'}")
        return 0
    if action == "remove":
        address = normalise_address(args.email)
        if not store.set_subscriber_status(engine, address, store.UNSUBSCRIBED, now_utc()):
            print(f"Error: {address} is not a subscriber", file=sys.stderr)
            return 1
        print(f"{address}: unsubscribed")
        return 0
    if action == "list":
        for email, name, status in store.list_subscribers(engine, args.status):
            print(f"{email}\t{name}\t{status}")
        return 0
    if action == "import":
        read = read_subscriber_csv(args.file)
        report = store.import_subscribers(
            engine, read.subscribers, source=str(args.file), now=now_utc()
        )
        for error in read.errors:
            print(error, file=sys.stderr)
        print(
            f"{args.file}: {report.added} added, {report.updated} renamed, {report.unchanged} unchanged, "
            f"{report.kept_inactive} left unsubscribed/bounced, {read.duplicates} duplicate rows, "
            f"{len(read.errors)} bad rows"
        )
        return 1 if read.errors else 0
    count = write_subscriber_csv(args.file, store.list_subscribers(engine))
    print(f"{args.file}: {count} subscribers written")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from newsletter.config import resolve_secrets  # noqa: PLC0415
    from newsletter.errors import ConfigError  # noqa: PLC0415
    from newsletter.pipeline import UnsubscribePages  # noqa: PLC0415
    from newsletter.web import make_server  # noqa: PLC0415

    config = _load(args)
    key = resolve_secrets(config, os.environ).unsubscribe_key
    host = args.host or config.web.host
    port = args.port or config.web.port
    pages = UnsubscribePages(config, key) if key is not None else None
    try:
        server = make_server(host, port, config, pages, now_utc)
    except OSError as err:
        raise ConfigError(
            f"cannot listen on {host}:{port}: {err.strerror} (change web.port or --port)"
        ) from err
    url = f"http://{host}:{server.server_port}"
    print(f"Serving the archive on {url}/ and its feed on {url}/feed.atom (Ctrl-C stops)")
    if pages is None:
        print(
            f"  One-click unsubscribe (/u/<token>) is off: env var "
            f"{config.newsletter.unsubscribe_secret_env} is unset, so no link could be verified",
            file=sys.stderr,
        )
    else:
        print(f"  One-click unsubscribe on {url}/u/<token>")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("Stopped.")
    finally:
        server.server_close()
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    config = _load(args)
    if args.action == "refresh":
        _refresh(config, quiet=args.quiet)
        return 0
    from newsletter.pipeline import price_status  # noqa: PLC0415

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
            f"{age_days:>4}d  {len(missing):>4}  {info.source}{'  gaps: ' + listed if missing else ''}"
        )
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    from newsletter.config import resolve_secrets  # noqa: PLC0415

    config = _load(args)
    secrets = resolve_secrets(config, os.environ)
    print(f"{args.config}: OK")
    print(config.model_dump_json(indent=2, exclude={"source"}))
    print(
        f"SMTP password: {'set' if secrets.smtp_password else 'not needed'}; "
        f"unsubscribe key: {'set' if secrets.unsubscribe_key else 'unset (built-in server only)'}"
    )
    return 0


def _add_subscribers_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    subscribers = commands.add_parser(
        "subscribers",
        parents=[common],
        help="add, remove, list, import or export subscribers",
        description="Manage the subscriber database. Nobody who unsubscribed or bounced is ever re-activated.",
    )
    actions = subscribers.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser(
        "add", parents=[common], help="add one address", description="Add one subscriber."
    )
    add.add_argument("email", help="the address")
    add.add_argument("--name", help="display name")
    remove = actions.add_parser(
        "remove",
        parents=[common],
        help="unsubscribe one address",
        description="Mark one subscriber unsubscribed.",
    )
    remove.add_argument("email", help="the address")
    listing = actions.add_parser(
        "list",
        parents=[common],
        help="print subscribers",
        description="Print email, name and status, tab-separated.",
    )
    listing.add_argument(
        "--status",
        choices=["active", "unsubscribed", "bounced", "complained"],
        help="only this status",
    )
    importing = actions.add_parser(
        "import",
        parents=[common],
        help="import a CSV (email,name)",
        description="Import a CSV with an email column (and optionally name). Each bad row is reported "
        "with its line number and the good rows are imported; exit code 1 if any row was bad.",
    )
    importing.add_argument("file", type=Path, help="CSV file")
    export = actions.add_parser(
        "export",
        parents=[common],
        help="export to a CSV",
        description="Write email,name,status for every subscriber.",
    )
    export.add_argument("file", type=Path, help="CSV file to write")
    subscribers.set_defaults(handler=cmd_subscribers)


def _add_editor_parsers(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    quiet: argparse.ArgumentParser,
    dated: argparse.ArgumentParser,
) -> None:
    """The editor's week beyond building: approve, preview and the schedule."""
    approve = commands.add_parser(
        "approve",
        parents=[common, dated, quiet],
        help="approve the issue as it builds now, for the scheduled send",
        description="Build the issue (with the editor's notes) and record its content as approved. "
        "With schedule.require_approval: true the scheduled run sends only an issue whose content "
        "matches an approval; refused while the issue has lint errors.",
    )
    approve.set_defaults(handler=cmd_approve, subject=None, preheader=None, allow_stale=False)

    preview = commands.add_parser(
        "preview",
        parents=[common, dated],
        help="serve the draft as it will ship, reloading as you edit",
        description="Build the draft and serve it on http://127.0.0.1:PORT (web.preview_port, "
        "default 8081): subject, preheader, headers, the HTML's size against Gmail's 102 KB "
        "clip limit, lint findings, the HTML at desktop or phone width and the text part. The "
        "page rebuilds and reloads itself when the notes file, a template or the config file "
        "changes. Binds web.host (127.0.0.1 by default) unless --host says otherwise.",
    )
    preview.add_argument("--host", help="address to bind (default: web.host)")
    preview.add_argument("--port", type=int, help="port (default: web.preview_port)")
    preview.set_defaults(handler=cmd_preview)

    schedule = commands.add_parser(
        "schedule",
        parents=[common],
        help="run the weekly schedule (or --list its next runs)",
        description="Run until SIGTERM/SIGINT, sending the week's issue at schedule.day_of_week "
        "schedule.time in schedule.timezone (default Friday 17:30 America/New_York). The job is "
        "stored in the project database: a restart replaces it without duplicating it, and a "
        "run missed while the machine was off happens on start within "
        "schedule.misfire_grace_hours. Each run covers the last NYSE session of its week, sends "
        "nothing in a week without sessions, is skipped after the next session's open "
        "(schedule.deadline_after_open_minutes), and with schedule.require_approval sends only "
        "an approved issue, mailing the editor a test copy meanwhile. Logs one line per stage.",
    )
    schedule.add_argument(
        "--list",
        nargs="?",
        type=int,
        const=5,
        metavar="N",
        help="print the next N run times (default 5) in the configured zone and what each covers",
    )
    schedule.set_defaults(handler=cmd_schedule)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; every command has help text (tests check it)."""
    parser = argparse.ArgumentParser(
        prog="newsletter",
        description="Rotation Digest: build the week's US equity rotation digest and mail it.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG,
        metavar="FILE",
        help="configuration file (default: ./config.yaml)",
    )
    common.add_argument(
        "--verbose", action="store_true", help="log each stage and show tracebacks on errors"
    )
    issue = argparse.ArgumentParser(add_help=False)
    issue.add_argument(
        "--as-of",
        metavar="YYYY-MM-DD",
        help="build the issue for the last NYSE session on or before this date "
        "(default: the last session at which every scoreboard ticker has a close)",
    )
    issue.add_argument(
        "--subject", metavar="TEXT", help="the editor's subject line instead of the generated one"
    )
    issue.add_argument(
        "--preheader", metavar="TEXT", help="the editor's preheader instead of the generated one"
    )
    issue.add_argument(
        "--allow-stale",
        action="store_true",
        help="build even when the data-quality gate finds problems (the email then shows them), and "
        "with market.provider: yfinance from the stored prices when the refresh fails",
    )
    quiet = argparse.ArgumentParser(add_help=False)
    quiet.add_argument("--quiet", action="store_true", help="no progress bar")
    dated = argparse.ArgumentParser(add_help=False)
    dated.add_argument(
        "--as-of",
        metavar="YYYY-MM-DD",
        help="the issue's date (the last NYSE session on or before it; default: the latest issue)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        parents=[common, issue, quiet],
        help="build the issue and send it to every subscriber",
        description="Build the week's issue into var/issues/<as-of>/ and send it to every active "
        "subscriber who has not received it yet (running it again sends only what is missing). "
        "With smtp.host: builtin the messages go to a local capture server that files them in the "
        "Maildir var/outbox/. Exit code 1 while any message is undelivered.",
    )
    run.set_defaults(handler=cmd_run)

    build = commands.add_parser(
        "build",
        parents=[common, issue, quiet],
        help="build the issue without sending it",
        description="Build the issue (email.html, preview.html, web.html, email.txt, charts, "
        "stats.json) without sending.",
    )
    build.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="folder for the files (default: var/issues/<as-of>/)",
    )
    build.set_defaults(handler=cmd_build)

    draft = commands.add_parser(
        "draft",
        parents=[common, dated],
        help="start the editor's notes for an issue",
        description="Create issues/<as-of>/notes.md (paths.notes_dir) from a commented template: the "
        "editor's note and curated links in Markdown, and optional Subject:/Preheader: lines that "
        "replace the generated ones. An existing file is never overwritten.",
    )
    draft.set_defaults(handler=cmd_draft)

    lint = commands.add_parser(
        "lint",
        parents=[common, issue, quiet],
        help="build the issue and check it for what breaks or clips in mail clients",
        description="Build the issue and lint it: HTML size against Gmail's 102 KB clip limit, alt text, "
        "cid: images, https/mailto links, List-Unsubscribe headers, leftover template syntax or "
        "nan/None/inf, CSS that Gmail or Outlook drop, and the subject's length. Exit code 1 on any "
        "error; build and send run the same checks, and send refuses an issue with errors.",
    )
    lint.set_defaults(handler=cmd_lint)

    send = commands.add_parser(
        "send",
        parents=[common, issue, quiet],
        help="send the issue (resumable, exactly once per subscriber)",
        description="Send the issue to every active subscriber not yet in its ledger. A killed or "
        "failed send is resumed by running the same command again (or `send --resume`).",
    )
    mode = send.add_mutually_exclusive_group()
    mode.add_argument(
        "--resume", action="store_true", help="continue the newest issue whose send is unfinished"
    )
    mode.add_argument(
        "--dry-run", action="store_true", help="compose every message but send nothing"
    )
    mode.add_argument(
        "--test", metavar="ADDRESS", help="send one copy marked [TEST] to ADDRESS, not recorded"
    )
    send.set_defaults(handler=cmd_send)

    _add_editor_parsers(commands, common, quiet, dated)
    _add_subscribers_parser(commands, common)

    data = commands.add_parser(
        "data",
        parents=[common],
        help="refresh the local price store or show what it holds",
        description="The local price store (var/prices.db) that market.provider: yfinance builds from.",
    )
    data_actions = data.add_subparsers(dest="action", required=True, metavar="ACTION")
    refresh = data_actions.add_parser(
        "refresh",
        parents=[common, quiet],
        help="fetch what the store lacks",
        description="Seed tickers the store never held from the bundled snapshot, then ask the "
        "provider for the sessions the store lacks plus a short overlap; a ticker whose adjusted "
        "history changed in the overlap (a split or dividend re-basing) is fetched and rewritten whole.",
    )
    refresh.set_defaults(handler=cmd_data)
    status = data_actions.add_parser(
        "status",
        parents=[common],
        help="show each ticker's range, rows, age, gaps and source",
        description="Per ticker: first and last session, rows, age in days, sessions the NYSE "
        "calendar has that the store lacks, and where the prices came from.",
    )
    status.set_defaults(handler=cmd_data)

    serve = commands.add_parser(
        "serve",
        parents=[common],
        help="serve the archive of sent issues, its Atom feed and one-click unsubscribe",
        description="Serve the archive (var/archive/): / lists the latest issues, /issues/<as-of>/ "
        "is an issue's web version with its charts (what `images: hosted` and the email's 'view "
        "in browser' link point at), /feed.atom is the Atom feed; /u/<token> is the one-click "
        "unsubscribe (GET shows a confirmation button, POST unsubscribes, RFC 8058), on only when "
        "the unsubscribe secret is set. Binds web.host (127.0.0.1 by default) unless --host says "
        "otherwise.",
    )
    serve.add_argument("--host", help="address to bind (default: web.host)")
    serve.add_argument("--port", type=int, help="port (default: web.port)")
    serve.set_defaults(handler=cmd_serve)

    check = commands.add_parser(
        "check-config",
        parents=[common],
        help="validate the configuration and show it with secrets masked",
        description="Load and validate the configuration, check that the secrets it names are set, "
        "and print the effective settings (secrets are never printed).",
    )
    check.set_defaults(handler=cmd_check_config)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    for chatty in ("mail.log", "matplotlib"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    if not args.verbose:
        # yfinance logs every failed download itself; the one line that matters reaches the user
        # as our FetchError (--verbose shows all of it).
        logging.getLogger("yfinance").setLevel(logging.CRITICAL)
    try:
        return int(args.handler(args))
    except NewsletterError as err:
        if args.verbose:
            traceback.print_exc(file=sys.stderr)
        print(f"Error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(
            "Error: interrupted; run the same command again to resume where it stopped",
            file=sys.stderr,
        )
        return 130
    except Exception as err:
        if args.verbose:
            traceback.print_exc(file=sys.stderr)
        print(
            f"Error: unexpected {type(err).__name__}: {err} (run again with --verbose for the traceback)",
            file=sys.stderr,
        )
        return 1
