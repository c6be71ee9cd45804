"""The commands that make and send an issue: build, lint, draft, run, send, approve."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from newsletter.cli.common import load, now_utc, parse_as_of, progress_bar, refresh_progress
from newsletter.errors import AsOfError
from newsletter.models import LedgerStatus

if TYPE_CHECKING:
    import argparse
    from datetime import date

    from newsletter.app.built import BuiltIssue
    from newsletter.app.data import DataRefresh
    from newsletter.app.send import SendResult
    from newsletter.config import Config, Secrets


def print_refresh(refreshed: DataRefresh) -> None:
    """What a refresh stored, and the tickers whose estimates failed."""
    report = refreshed.prices
    rewritten = f"; history rewritten for {', '.join(report.rewritten)}" if report.rewritten else ""
    print(
        f"  Prices:  {sum(report.written.values()):,} rows stored for {len(report.written)} "
        f"tickers{rewritten}"
    )
    print(f"  Estimates: {refreshed.estimate_rows} snapshot rows stored for today")
    for failure in refreshed.estimate_failures:
        print(f"  Warning: {failure}", file=sys.stderr)


def build(
    args: argparse.Namespace, config: Config, as_of: date | None, *, sending: bool = False
) -> BuiltIssue:
    """Refresh (live provider) and build the issue, saying what was done and found, and (unless
    `sending`: the send says it after) its state. With `sending`, the send's start is recorded
    as soon as the issue's session is known."""
    from newsletter.app.build import BuildOptions, prepare_issue  # noqa: PLC0415

    def record_intent(day: date) -> None:
        if sending:  # a build alone never loads the delivery code
            from newsletter.app.send import intend_send  # noqa: PLC0415

            intend_send(config, day, now_utc())

    options = BuildOptions(
        subject=args.subject, preheader=args.preheader, allow_stale=args.allow_stale
    )
    quiet = getattr(args, "quiet", False) or not config.market.is_live
    with refresh_progress(config, quiet=quiet) as on_progress:
        prepared = prepare_issue(
            config,
            as_of,
            clock=now_utc,
            options=options,
            out_dir=getattr(args, "out", None),
            on_progress=on_progress,
            on_as_of=record_intent,
        )
    if prepared.refreshed is not None:
        print_refresh(prepared.refreshed)
    if prepared.stale_reason:
        print(
            f"  Warning: {prepared.stale_reason}; building from the stored prices (--allow-stale)",
            file=sys.stderr,
        )
    built = prepared.built
    if prepared.default_reason:
        print(
            f"As of {built.stats.as_of.isoformat()}: {prepared.default_reason} "
            "(--as-of picks another)"
        )
    print("\n".join(built.summary()))
    for finding in built.findings:
        print(f"  Lint {finding}", file=sys.stderr)
    if not sending:
        print_state(config, built.stats.as_of, built)
    return built


def print_state(
    config: Config, as_of: date, built: BuiltIssue | None = None, *, warn: bool = True
) -> None:
    """The issue's state in one line and, with `warn`, a warning when readers have it."""
    from newsletter.app.status import issue_status  # noqa: PLC0415

    status = issue_status(config, as_of, now_utc())
    print(f"  State:   {status.line(built)}")
    warning = status.sent_warning(built) if warn else None
    if warning:
        print(f"  Warning: {warning}", file=sys.stderr)


def cmd_build(args: argparse.Namespace) -> int:
    built = build(args, load(args), parse_as_of(args.as_of))
    return 1 if built.lint_errors else 0


def cmd_draft(args: argparse.Namespace) -> int:
    from newsletter.app.drafts import start_draft  # noqa: PLC0415

    config = load(args)
    path, as_of, created = start_draft(config, parse_as_of(args.as_of))
    print(
        f"{'Created' if created else 'Already there'}: {path} (write the note, then "
        "`newsletter build`)"
    )
    print_state(config, as_of)
    return 0


def cmd_lint(args: argparse.Namespace) -> int:
    built = build(args, load(args), parse_as_of(args.as_of))
    errors = len(built.lint_errors)
    print(f"  Lint:    {errors} error(s), {len(built.findings) - errors} warning(s)")
    return 1 if errors else 0


def _send_and_report(
    args: argparse.Namespace,
    config: Config,
    built: BuiltIssue,
    secrets: Secrets,
    *,
    corrected: bool = False,
) -> int:
    from newsletter.app.send import send_issue  # noqa: PLC0415

    with progress_bar("Sending", quiet=args.quiet) as progress:
        task = progress.add_task("send", total=None)
        result = send_issue(
            config,
            built,
            secrets=secrets,
            clock=now_utc,
            on_start=lambda total: progress.update(task, total=total),
            on_progress=lambda done: progress.advance(task, done),
            corrected=corrected,
        )
    _print_summary(result, verbose=args.verbose)
    print_state(config, built.stats.as_of, warn=False)
    return 0 if result.complete else 1


def _print_summary(result: SendResult, *, verbose: bool) -> None:
    """The send in a few lines: one per kind of refusal with its count (every address with
    --verbose), never one per subscriber."""
    report = result.report
    uncertain = f", {report.uncertain} uncertain (reply lost)" if report.uncertain else ""
    print(
        f"  Sent:    {report.sent} now to the {result.destination}; "
        f"{report.retried} retried, {report.bounced} bounced, {report.failed} failed, "
        f"{report.deferred} deferred{uncertain}, {report.skipped} skipped (sent earlier or "
        "unsubscribed)"
    )
    ledger = ", ".join(f"{count} {status}" for status, count in sorted(result.ledger.items()))
    print(f"  Ledger:  {ledger or 'no subscribers'}")
    print(f"  Archive: {result.archive} (`newsletter serve` publishes it)")
    if verbose:
        for address, reply in report.refusals:
            print(f"  Not delivered: {address}: {reply}", file=sys.stderr)
    else:
        for reason, count in report.reasons():
            print(f"  Not delivered: {count} message(s), {reason}", file=sys.stderr)
    for error in result.row_errors:
        print(f"  Skipped row: {error}", file=sys.stderr)
    held = result.ledger.get(LedgerStatus.CLAIMED, 0)  # this run released its own claims
    if report.paused:
        print(f"  Paused:  {report.paused}", file=sys.stderr)
    elif held:
        print(
            f"  Another sender is still working: it holds {held} message(s) of this issue. "
            "Nothing is lost: it sends them, or if it dies the same command run again takes "
            "them over.",
            file=sys.stderr,
        )
    elif not result.complete:
        print(
            "  Some messages are still undelivered; run the same command again to retry them.",
            file=sys.stderr,
        )


def cmd_run(args: argparse.Namespace) -> int:
    from newsletter.config import resolve_secrets  # noqa: PLC0415

    config = load(args)
    secrets = resolve_secrets(config, os.environ)  # before the build: a missing secret fails fast
    built = build(args, config, parse_as_of(args.as_of), sending=True)
    code = _send_and_report(args, config, built, secrets)
    _next_steps(config, built)
    return code


def _next_steps(config: Config, built: BuiltIssue) -> None:
    """Where the quickstart leads: the draft, the archive and unsubscribe, the next issue."""
    as_of = built.stats.as_of.isoformat()
    outbox = f" and {config.outbox_dir}/new/" if config.smtp.is_builtin else ""
    print(
        "\nNext steps:\n"
        f"  Read it:     open {built.folder / 'preview.html'}{outbox}\n"
        f"  Web & links: `newsletter serve`, then http://{config.web.host}:{config.web.port}/ "
        "(the archive, its feed and signup form; a message's unsubscribe link works there)\n"
        f"  Next issue:  {_next_issue(config, built)} (README: The editor's week)\n"
        f"  Where it stands: `newsletter status` (this one: `newsletter status --as-of {as_of}`)"
    )


def _next_issue(config: Config, built: BuiltIssue) -> str:
    """How to start the next issue: with bundled data, which ends here, the week before."""
    if config.market.is_live:
        return (
            "next week, `newsletter draft`, `newsletter preview`, `newsletter send --test "
            "you@example.com`, `newsletter approve`; `newsletter schedule` sends it"
        )
    day = built.stats.prev_close.isoformat()
    return (
        f"`newsletter draft --as-of {day}`, then `preview`, `send --test you@example.com`, "
        f"`approve` and `send`, each with `--as-of {day}` (the bundled data ends here)"
    )


def cmd_send(args: argparse.Namespace) -> int:
    from newsletter.app.send import dry_run, latest_unfinished, send_test  # noqa: PLC0415
    from newsletter.config import resolve_secrets  # noqa: PLC0415

    config = load(args)
    as_of = parse_as_of(args.as_of)
    if args.cancel:  # mails nothing: needs no secret
        return _cancel(config, as_of)
    secrets = resolve_secrets(config, os.environ)
    if args.resume:
        if as_of is not None:
            raise AsOfError("--resume picks the interrupted issue itself; leave out --as-of")
        as_of = latest_unfinished(config)
        if as_of is None:
            print("Nothing to resume: every issue's send is complete.")
            return 0
    built = build(args, config, as_of, sending=not (args.test or args.dry_run))
    if args.test:
        where = send_test(config, built, args.test, secrets=secrets, clock=now_utc)
        print(f"  Test:    one [TEST] copy to {args.test} via the {where} (not recorded as sent)")
        return 0
    if args.dry_run:
        plan = dry_run(config, built, secrets=secrets, clock=now_utc)
        print(
            f"  Dry run: {plan.messages} messages composed, {plan.size / 1024:.0f} KB in all; "
            f"{plan.skipped} readers skipped (their message is done); nothing was sent"
        )
        return 0
    return _send_and_report(args, config, built, secrets, corrected=args.corrected)


def _cancel(config: Config, as_of: date | None) -> int:
    from newsletter.app.send import cancel_send  # noqa: PLC0415

    if as_of is None:
        raise AsOfError("--cancel needs the issue's --as-of YYYY-MM-DD (its exact session)")
    cancelled = cancel_send(config, as_of, now_utc())
    print(f"  Cancelled: {cancelled} message(s) of issue {as_of.isoformat()} will not be sent")
    print_state(config, as_of, warn=False)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from newsletter.app import status as state  # noqa: PLC0415
    from newsletter.app.audience import list_summary  # noqa: PLC0415

    config = load(args)
    as_of = parse_as_of(args.as_of)
    if as_of is not None:
        print("\n".join(state.issue_status(config, as_of, now_utc()).details()))
        bounces = state.issue_bounces(config, as_of)
        if bounces:
            print(bounces)
        return 0
    statuses = state.issue_statuses(config, now_utc())[: max(args.limit, 0)]
    if not statuses:
        print("No issues yet: `newsletter draft` starts one, `newsletter run` makes and sends one.")
    for status in statuses:
        print(f"{status.as_of.isoformat()}  {status.line()}")
    print(f"List: {list_summary(config)}")
    mailbox = state.mailbox_status(config)
    if mailbox:
        print(mailbox)
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    from newsletter.app.review import approve_issue  # noqa: PLC0415

    config = load(args)
    built = build(args, config, parse_as_of(args.as_of))
    approve_issue(config, built, now_utc())
    print(
        f"  Approved: issue {built.stats.as_of.isoformat()} as built now (content "
        f"{built.content_sha256[:12]}); the scheduled run sends it to the readers who do not "
        "have it yet, unless it changes"
    )
    if not config.schedule.require_approval:
        print(
            "  Note: schedule.require_approval is off, so the scheduled run does not wait for "
            "approvals"
        )
    return 0
