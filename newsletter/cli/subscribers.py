"""`newsletter subscribers`: add (or deliberately re-subscribe), show, remove, list, import and
export the list."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from newsletter.cli.common import load, now_utc
from newsletter.models import SubscriberStatus

if TYPE_CHECKING:
    from typing import TypeAlias

    from newsletter.config import Config

    Commands: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]


def _actor() -> str:
    """Who changes a subscriber by hand, for their record."""
    return f"{getpass.getuser()} at the command line"


def _add(args: argparse.Namespace, config: Config) -> int:
    from newsletter.app import audience  # noqa: PLC0415

    resubscribe_by = _actor() if args.resubscribe else None
    added = audience.add_subscriber(
        config, args.email, args.name or "", now_utc(), resubscribe_by=resubscribe_by
    )
    if added.resubscribed_from is not None:
        print(f"{added.email}: active again (was {added.resubscribed_from}; recorded as yours)")
    elif added.report.kept_inactive:
        print(
            f"{added.email} unsubscribed or bounced earlier and stays so (`--resubscribe` if "
            "they asked to come back)"
        )
    else:
        print(f"{added.email}: {'added' if added.report.added else 'already subscribed'}")
    return 0


def _show(args: argparse.Namespace, config: Config) -> int:
    from newsletter.app import audience  # noqa: PLC0415

    record = audience.subscriber_record(config, args.email)
    if record is None:
        print(f"Error: {args.email} is not a subscriber", file=sys.stderr)
        return 1
    print(f"{record.email}\t{record.name}\t{record.status}")
    print(
        f"  Joined:  {record.joined:%Y-%m-%d %H:%M} UTC by {record.joined_via} from {record.source}"
    )
    if record.confirmed is not None:
        print(f"  Confirmed: {record.confirmed:%Y-%m-%d %H:%M} UTC (their confirmation link)")
    for at, status, by in record.events:
        print(f"  {at:%Y-%m-%d %H:%M} UTC: {status}, by {by}")
    for at, kind, detail in audience.bounce_history(config, args.email):
        print(f"  {at:%Y-%m-%d %H:%M} UTC: mailbox: {kind}: {detail}")
    return 0


def _remove(args: argparse.Namespace, config: Config) -> int:
    from newsletter.app import audience  # noqa: PLC0415

    address, found = audience.remove_subscriber(config, args.email, now_utc(), by=_actor())
    if not found:
        print(f"Error: {address} is not a subscriber", file=sys.stderr)
        return 1
    print(f"{address}: unsubscribed")
    return 0


def _forget(args: argparse.Namespace, config: Config) -> int:
    from newsletter.app import signup  # noqa: PLC0415

    address, found = signup.forget_subscriber(config, args.email, now_utc())
    what = "erased" if found else "was not on the list"
    print(f"{address}: {what}; a hash of the address is kept so that no import adds it again")
    return 0


def _list(args: argparse.Namespace, config: Config) -> int:
    from newsletter.app import audience  # noqa: PLC0415

    status = SubscriberStatus(args.status) if args.status else None
    for email, name, state in audience.subscribers(config, status):
        print(f"{email}\t{name}\t{state}")
    print(audience.list_summary(config), file=sys.stderr)
    return 0


def _import(args: argparse.Namespace, config: Config) -> int:
    from newsletter.app import audience  # noqa: PLC0415

    read, report = audience.import_csv(config, args.file, now_utc())
    for error in read.errors:
        print(error, file=sys.stderr)
    print(
        f"{args.file}: {report.added} added, {report.updated} renamed, {report.unchanged} "
        f"unchanged, {report.marked_inactive} marked as left (their row says so), "
        f"{report.kept_inactive} left earlier and stay so, "
        + (f"{report.suppressed} erased earlier and not added, " if report.suppressed else "")
        + f"{read.duplicates} duplicate rows, {len(read.errors)} bad rows"
    )
    return 1 if read.errors else 0


def _export(args: argparse.Namespace, config: Config) -> int:
    from newsletter.app import audience  # noqa: PLC0415

    count = audience.export_csv(config, args.file)
    print(f"{args.file}: {count} subscribers written (email, name, status)")
    return 0


ACTIONS = {
    "add": _add,
    "show": _show,
    "remove": _remove,
    "forget": _forget,
    "list": _list,
    "import": _import,
    "export": _export,
}


def cmd_subscribers(args: argparse.Namespace) -> int:
    return ACTIONS[args.action](args, load(args))


def add_subscribers_parser(commands: Commands, common: argparse.ArgumentParser) -> None:
    """`newsletter subscribers` and its actions, for the parser's table."""
    subscribers = commands.add_parser(
        "subscribers",
        parents=[common],
        help="add, remove, forget, list, import or export subscribers",
        description="Manage the subscriber database. Nobody who unsubscribed or bounced is ever "
        "re-activated, except by a deliberate `add --resubscribe`.",
    )
    actions = subscribers.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser(
        "add", parents=[common], help="add one address", description="Add one subscriber."
    )
    add.add_argument("email", help="the address")
    add.add_argument("--name", help="display name")
    add.add_argument(
        "--resubscribe",
        action="store_true",
        help="make an address that unsubscribed, bounced or complained active again, because "
        "they asked to come back (recorded with your user name and the time)",
    )
    show = actions.add_parser(
        "show",
        parents=[common],
        help="one subscriber's record and status history",
        description="Print one subscriber's address, name, status, when and from where they "
        "joined, and every deliberate status change: who made it and when.",
    )
    show.add_argument("email", help="the address")
    remove = actions.add_parser(
        "remove",
        parents=[common],
        help="unsubscribe one address",
        description="Mark one subscriber unsubscribed.",
    )
    remove.add_argument("email", help="the address")
    forget = actions.add_parser(
        "forget",
        parents=[common],
        help="erase one person from the list",
        description="Erase one person: their subscriber record, status history, notices, "
        "bounce events and delivery rows, and what the bounce mailbox noted of them. Only a "
        "SHA-256 hash of the address is kept, on a suppression list, so that no import adds "
        "them again (their own confirmed signup lifts it).",
    )
    forget.add_argument("email", help="the address")
    listing = actions.add_parser(
        "list",
        parents=[common],
        help="print subscribers",
        description="Print email, name and status, tab-separated.",
    )
    listing.add_argument(
        "--status",
        choices=[status.value for status in SubscriberStatus],
        help="only this status",
    )
    _add_file_actions(actions, common)
    subscribers.set_defaults(handler=cmd_subscribers)


def _add_file_actions(actions: Commands, common: argparse.ArgumentParser) -> None:
    """`subscribers import` and `subscribers export`."""
    importing = actions.add_parser(
        "import",
        parents=[common],
        help="import a CSV (email,name[,status])",
        description="Import a CSV with an email column (and optionally name and status, as export "
        "writes them). New addresses take their row's status (active by default); a row saying "
        "unsubscribed, bounced or complained marks an active subscriber so; nobody who left is "
        "ever re-activated. Each bad row is reported with its line number and the good rows are "
        "imported; exit code 1 if any row was bad.",
    )
    importing.add_argument("file", type=Path, help="CSV file")
    export = actions.add_parser(
        "export",
        parents=[common],
        help="export to a CSV, with each subscriber's consent record",
        description="Write email, name, status, joined_at, joined_via (import, signup or "
        "admin), source (the file or page) and confirmed_at for every subscriber; `import` "
        "reads such a file back (its first three columns).",
    )
    export.add_argument("file", type=Path, help="CSV file to write")
