"""`newsletter bounces`: read the bounce mailbox once (bounces, complaints, mail to the
unsubscribe address) and say what it did."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from newsletter.cli.common import load, now_utc, progress_bar

if TYPE_CHECKING:
    from typing import TypeAlias

    Commands: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]


def cmd_bounces(args: argparse.Namespace) -> int:
    from newsletter.app.bounces import process_mailbox  # noqa: PLC0415
    from newsletter.config import resolve_secrets  # noqa: PLC0415

    config = load(args)
    secrets = resolve_secrets(config, os.environ)
    with progress_bar("Reading the mailbox", quiet=args.quiet) as progress:
        task = progress.add_task("", total=None)
        report = process_mailbox(
            config,
            secrets=secrets,
            clock=now_utc,
            on_start=lambda total: progress.update(task, total=total),
            on_progress=lambda done: progress.advance(task, done),
        )
    print(report.summary())
    for email, status, why in report.changes:
        print(f"  {email}: {status}, by {why}")
    section = config.bounces
    for email, count in report.soft:
        print(
            f"  {email}: soft bounce, {count} of {section.soft_limit} within "
            f"{section.soft_days} days"
        )
    for key, why in report.ignored:
        print(f"  Not acted on: {key}: {why}")
    return 0


def add_bounces_parser(
    commands: Commands, common: argparse.ArgumentParser, quiet: argparse.ArgumentParser
) -> None:
    """`newsletter bounces`, for the parser's table."""
    bounces = commands.add_parser(
        "bounces",
        parents=[common, quiet],
        help="read the bounce mailbox: bounces, complaints and mail to the unsubscribe address",
        description="Read every message of the bounce mailbox (bounces.maildir, or the IMAP "
        "folder bounces.imap_folder on bounces.imap_host over TLS) not read before, and act on "
        "each once: a hard bounce (the mailbox does not exist) marks its subscriber bounced, "
        "bounces.soft_limit soft bounces within bounces.soft_days days do too, a complaint "
        "(ARF feedback report) marks them complained, and a mail to "
        "newsletter.unsubscribe_mailto unsubscribes its From address if it is a subscriber. A "
        "bounce or complaint counts only through the signed VERP address of one sent message "
        "(newsletter.bounce_address); anything else is listed as not acted on. The mailbox is "
        "only read, never changed; the schedule runs this before each send.",
    )
    bounces.set_defaults(handler=cmd_bounces)
