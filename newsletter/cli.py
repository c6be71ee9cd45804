"""The `newsletter` command: parses arguments, calls the pipeline, turns errors into one line.

Heavy libraries are imported only inside commands, so `newsletter --help` is instant. This is
the one module that reads the environment, the clock, and prints.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from newsletter import __version__
from newsletter.errors import AsOfError, NewsletterError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from newsletter.config import Config
    from newsletter.pipeline import BuiltIssue

DEFAULT_CONFIG = Path("config.yaml")


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
    since = (
        f"largest since {spread.largest_since.isoformat()}"
        if spread.largest_since
        else f"largest since the data starts ({spread.history_start.isoformat()})"
    )
    return [
        f"Issue {stats.as_of.isoformat()} (week since the close of {stats.prev_close.isoformat()})",
        f"  Subject: {built.rendered.subject}",
        f"  {display_name(spread.long)} - {display_name(spread.short)}, 5 sessions: "
        f"{signed_pp(spread.value)} (rank {spread.rank:,} of {spread.of:,}; {since})",
        f"  Draft:   {built.folder / 'preview.html'}",
    ]


def cmd_build(args: argparse.Namespace) -> int:
    from newsletter.pipeline import build_issue  # noqa: PLC0415

    config = _load(args)
    built = build_issue(
        config, _parse_as_of(args.as_of), args.out, subject=args.subject, preheader=args.preheader
    )
    print("\n".join(_describe_built(built)))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from rich.console import Console  # noqa: PLC0415
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn  # noqa: PLC0415

    from newsletter.config import resolve_secrets  # noqa: PLC0415
    from newsletter.pipeline import build_issue, send_issue  # noqa: PLC0415

    config = _load(args)
    secrets = resolve_secrets(config, os.environ)
    built = build_issue(
        config, _parse_as_of(args.as_of), subject=args.subject, preheader=args.preheader
    )
    print("\n".join(_describe_built(built)))
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
            now=datetime.now(UTC),
            on_start=lambda total: progress.update(task, total=total),
            on_progress=lambda: progress.advance(task),
        )
    report = result.report
    print(
        f"  Sent:    {len(report.sent)} of {result.recipients} messages "
        f"({len(report.skipped)} already sent earlier, {len(report.refused)} refused) "
        f"to the {result.destination}"
    )
    for address, reply in report.refused.items():
        print(f"  Refused: {address}: {reply}", file=sys.stderr)
    return 0 if report.ok else 1


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
    as_of = argparse.ArgumentParser(add_help=False)
    as_of.add_argument(
        "--as-of",
        metavar="YYYY-MM-DD",
        help="build the issue for the last NYSE session on or before this date "
        "(default: the last session at which every scoreboard ticker has a close)",
    )
    as_of.add_argument(
        "--subject", metavar="TEXT", help="the editor's subject line instead of the generated one"
    )
    as_of.add_argument(
        "--preheader", metavar="TEXT", help="the editor's preheader instead of the generated one"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        parents=[common, as_of],
        help="build the issue and send it to every subscriber",
        description="Build the week's issue into var/issues/<as-of>/ and send it to every subscriber "
        "who has not received it yet. With smtp.host: builtin the messages go to a local capture "
        "server that files them in the Maildir var/outbox/.",
    )
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(handler=cmd_run)

    build = commands.add_parser(
        "build",
        parents=[common, as_of],
        help="build the issue without sending it",
        description="Build the issue (email.html, preview.html, email.txt, charts, stats.json) without sending.",
    )
    build.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="folder for the files (default: var/issues/<as-of>/)",
    )
    build.set_defaults(handler=cmd_build)

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
