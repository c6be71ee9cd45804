"""The `newsletter` argument parser: a declarative table of commands, options and help.

Every command has help text (tests check it); each names its handler in cli/issues.py,
cli/admin.py, cli/subscribers.py or cli/bounces.py.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from newsletter import __version__
from newsletter.cli.admin import (
    cmd_check_config,
    cmd_data,
    cmd_db,
    cmd_schedule,
)
from newsletter.cli.bounces import add_bounces_parser
from newsletter.cli.issues import (
    cmd_approve,
    cmd_build,
    cmd_draft,
    cmd_lint,
    cmd_run,
    cmd_send,
    cmd_status,
)
from newsletter.cli.subscribers import add_subscribers_parser
from newsletter.cli.web import cmd_preview, cmd_serve

DEFAULT_CONFIG = Path("config.yaml")

if TYPE_CHECKING:
    from typing import TypeAlias

    Commands: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]


def _at_least_one(text: str) -> int:
    """--workers: a whole number of at least 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got '{text}'")
    return int(text)


class Parents:
    """The option groups commands share."""

    def __init__(self) -> None:
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
            "(default: the last session at which IWM, SPY and ^GSPC have closes)",
        )
        issue.add_argument(
            "--subject",
            metavar="TEXT",
            help="the editor's subject line instead of the generated one (one line, at most 250 "
            "characters)",
        )
        issue.add_argument(
            "--preheader",
            metavar="TEXT",
            help="the editor's preheader instead of the generated one (one line, at most 250 "
            "characters)",
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
        self.parser, self.common, self.issue, self.quiet, self.dated = (
            parser,
            common,
            issue,
            quiet,
            dated,
        )


def _add_editor_parsers(
    commands: Commands,
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
        "changes. Binds web.host (127.0.0.1 by default) unless --host says otherwise, and answers "
        "only requests addressed to that host (421 for any other Host header).",
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


def _add_issue_parsers(commands: Commands, parents: Parents) -> None:
    """The commands that build and send an issue."""
    common, issue, quiet, dated = parents.common, parents.issue, parents.quiet, parents.dated
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
        "--dry-run",
        action="store_true",
        help="compose every message a send would send now (and count who it skips); send nothing",
    )
    mode.add_argument(
        "--test", metavar="ADDRESS", help="send one copy marked [TEST] to ADDRESS, not recorded"
    )
    mode.add_argument(
        "--corrected",
        action="store_true",
        help="the issue changed after some readers got it: send this content, as a corrected "
        "edition, to those who have not (nobody gets the issue twice)",
    )
    mode.add_argument(
        "--cancel",
        action="store_true",
        help="mail nobody else this issue: what is still to be sent is skipped, and no resume "
        "picks it up (nothing is built)",
    )
    send.set_defaults(handler=cmd_send)

    status = commands.add_parser(
        "status",
        parents=[common],
        help="where each issue stands: drafted, built, approved, sending, sent",
        description="List the recent issues, newest first, each with its state (drafted, built, "
        "approved, sending n of N, partly sent, not delivered, sent to N at T by which run), or "
        "with --as-of one issue in detail: notes, build, approval, test copy, ledger counts, "
        "runs, corrections and why messages were not delivered. Builds nothing.",
    )
    status.add_argument(
        "--as-of", metavar="YYYY-MM-DD", help="show this issue in detail (its exact date)"
    )
    status.add_argument(
        "--limit", type=int, default=10, metavar="N", help="list at most N issues (default 10)"
    )
    status.set_defaults(handler=cmd_status)


def _add_admin_parsers(
    commands: Commands, common: argparse.ArgumentParser, quiet: argparse.ArgumentParser
) -> None:
    """The price store, the public site and the configuration check."""
    data = commands.add_parser(
        "data",
        parents=[common],
        help="refresh the local price store or show what it holds",
        description="The prices builds read: the bundled snapshot, or with market.provider: yfinance the local price store (var/prices.db).",
    )
    data_actions = data.add_subparsers(dest="action", required=True, metavar="ACTION")
    refresh = data_actions.add_parser(
        "refresh",
        parents=[common, quiet],
        help="fetch what the store lacks (market.provider: yfinance)",
        description="With market.provider: yfinance, seed tickers the store never held from the "
        "bundled snapshot, then ask the provider for the sessions the store lacks plus a short "
        "overlap; a ticker whose adjusted history changed in the overlap (a split or dividend "
        "re-basing) is fetched and rewritten whole. With the snapshot provider there is nothing "
        "to refresh.",
    )
    refresh.set_defaults(handler=cmd_data)
    status = data_actions.add_parser(
        "status",
        parents=[common],
        help="show each ticker's range, rows, age, gaps and source",
        description="Per ticker of the prices a build reads (the bundled snapshot, or the local "
        "store with market.provider: yfinance): first and last session, rows, age in days, "
        "sessions the NYSE calendar has that the prices lack, and where they came from.",
    )
    status.set_defaults(handler=cmd_data)

    db = commands.add_parser(
        "db",
        parents=[common],
        help="the project database's schema: upgrade it, or show where it stands",
        description="The project database (database.url) has a versioned schema (Alembic). A new "
        "database is created by the first command that uses it; one made by an older version "
        "is refused until `newsletter db upgrade` moves it on (back it up first), and one "
        "upgraded by a newer version is refused.",
    )
    db_actions = db.add_subparsers(dest="action", required=True, metavar="ACTION")
    db_actions.add_parser(
        "upgrade",
        parents=[common],
        help="apply the migrations the database lacks",
        description="Apply every migration the database lacks, in one transaction; a database "
        "made before migrations existed is checked against the first release's tables first.",
    ).set_defaults(handler=cmd_db)
    db_actions.add_parser(
        "status",
        parents=[common],
        help="show the database's schema revision and this version's (exit 1 if it is behind)",
        description="Print the database's schema revision and the one this version needs; exit "
        "code 1 when `newsletter db upgrade` is needed.",
    ).set_defaults(handler=cmd_db)

    serve = commands.add_parser(
        "serve",
        parents=[common],
        help="serve the archive of sent issues, its Atom feed and one-click unsubscribe",
        description="Serve the archive (var/archive/): / lists the latest issues, /issues/<as-of>/ "
        "is an issue's web version with its charts (what `images: hosted` and the email's 'view "
        "in browser' link point at), /feed.atom is the Atom feed; /u/<token> is the one-click "
        "unsubscribe (GET shows a confirmation button, POST unsubscribes, RFC 8058), on only when "
        "the unsubscribe secret is set. Binds web.host (127.0.0.1 by default) unless --host says "
        "otherwise; meant to run behind an HTTPS reverse proxy (README: Deploying serve). "
        "--verbose logs one line per request, tokens redacted.",
    )
    serve.add_argument("--host", help="address to bind (default: web.host)")
    serve.add_argument("--port", type=int, help="port (default: web.port)")
    serve.add_argument(
        "--workers",
        type=_at_least_one,
        default=1,
        metavar="N",
        help="serve from N processes sharing the port (default: 1); a worker that dies is replaced",
    )
    serve.set_defaults(handler=cmd_serve)

    check = commands.add_parser(
        "check-config",
        parents=[common],
        help="validate the configuration and show it with secrets masked",
        description="Load and validate the configuration, check that the secrets it names are set, "
        "and print the effective settings (secrets are never printed); with dkim set, also the "
        "DNS TXT record that publishes the signing key.",
    )
    check.set_defaults(handler=cmd_check_config)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; every command has help text (tests check it)."""
    parents = Parents()
    commands = parents.parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_issue_parsers(commands, parents)
    _add_editor_parsers(commands, parents.common, parents.quiet, parents.dated)
    add_subscribers_parser(commands, parents.common)
    add_bounces_parser(commands, parents.common, parents.quiet)
    _add_admin_parsers(commands, parents.common, parents.quiet)
    return parents.parser
