"""The list: adding, removing, listing, importing and exporting subscribers, and unsubscribes.

Nobody who unsubscribed or bounced is ever re-activated by an import or an add.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from newsletter.app.wiring import database
from newsletter.db.audience import (
    ImportReport,
    SubscriberRecord,
    consent_rows,
    import_subscribers,
    list_subscribers,
    set_subscriber_status,
    status_counts,
    subscriber_history,
)
from newsletter.db.bounces import event_counts, subscriber_bounces
from newsletter.db.notices import notice_counts
from newsletter.mail.addresses import (
    CsvRead,
    clean_name,
    normalise_address,
    read_subscriber_csv,
    write_subscriber_csv,
)
from newsletter.mail.unsubscribe import verify_token
from newsletter.models import (
    UNFINISHED,
    InboundKind,
    JoinMethod,
    LedgerStatus,
    Subscriber,
    SubscriberStatus,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from datetime import datetime
    from pathlib import Path

    from newsletter.config import Config

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Added:
    """What `add_subscriber` did with one address: the import's counts, and with a
    re-subscribe the status it had before (None: it was not inactive)."""

    email: str
    report: ImportReport
    resubscribed_from: SubscriberStatus | None = None


def add_subscriber(
    config: Config, email: str, name: str, now: datetime, *, resubscribe_by: str | None = None
) -> Added:
    """Add one address (validated) as active. An address that left stays as it is, unless
    `resubscribe_by` names who deliberately brings it back (recorded with the time)."""
    subscriber = Subscriber(normalise_address(email), clean_name(name))
    engine = database(config)
    report = import_subscribers(engine, [subscriber], source="cli", now=now, via=JoinMethod.ADMIN)
    if not (report.kept_inactive and resubscribe_by):
        return Added(subscriber.email, report)
    before = set_subscriber_status(
        engine, subscriber.email, SubscriberStatus.ACTIVE, now, by=resubscribe_by
    )
    return Added(subscriber.email, report, before)


def remove_subscriber(config: Config, email: str, now: datetime, by: str) -> tuple[str, bool]:
    """Unsubscribe one address; (the normalised address, whether it was a subscriber)."""
    address = normalise_address(email)
    before = set_subscriber_status(
        database(config), address, SubscriberStatus.UNSUBSCRIBED, now, by=by
    )
    return address, before is not None


def subscriber_record(config: Config, email: str) -> SubscriberRecord | None:
    """One subscriber's record and status history, for `subscribers show`."""
    return subscriber_history(database(config), normalise_address(email))


def bounce_history(config: Config, email: str) -> list[tuple[datetime, InboundKind, str]]:
    """(when, kind, detail) of what the bounce mailbox said about one subscriber."""
    return subscriber_bounces(database(config), normalise_address(email))


def subscribers(
    config: Config, status: SubscriberStatus | None = None
) -> Iterator[tuple[str, str, SubscriberStatus]]:
    """(email, name, status) of every subscriber (or those with `status`), oldest first."""
    return list_subscribers(database(config), status)


def _listed(counts: dict[str, int]) -> str:
    """ "3 active, 1 bounced": the counts that are not zero, in their order."""
    return ", ".join(f"{n} {label}" for label, n in counts.items() if n)


def list_summary(config: Config) -> str:
    """The list in one line: subscribers by status, what the bounce mailbox said of them, and
    the confirmation and welcome mails waiting or refused (each part only when it has any)."""
    engine = database(config)
    statuses, events, notices = status_counts(engine), event_counts(engine), notice_counts(engine)
    counts = _listed({status: statuses.get(status, 0) for status in SubscriberStatus})
    told = _listed({kind: events.get(kind, 0) for kind in InboundKind})
    refused = (LedgerStatus.BOUNCED, LedgerStatus.FAILED)
    mails = _listed(
        {
            "waiting": sum(n for status, n in notices.items() if status in UNFINISHED),
            "refused": sum(n for status, n in notices.items() if status in refused),
        }
    )
    return (
        f"{sum(statuses.values())} subscriber(s){': ' + counts if counts else ''}"
        f"{'; from the bounce mailbox: ' + told if told else ''}"
        f"{'; confirmation and welcome mails: ' + mails if mails else ''}"
    )


def import_csv(config: Config, path: Path, now: datetime) -> tuple[CsvRead, ImportReport]:
    """Import a CSV: the good rows are imported, each bad row is reported with its line (the
    file is streamed, in batches: a list of millions takes little memory)."""
    read = read_subscriber_csv(path)
    return read, import_subscribers(database(config), read.rows(), source=str(path), now=now)


def export_csv(config: Config, path: Path) -> int:
    """Write every subscriber with their consent record to `path`; returns how many."""
    return write_subscriber_csv(path, consent_rows(database(config)))


def sync_subscribers(config: Config, now: datetime) -> list[str]:
    """Import subscribers.file into the database before a send (new addresses only).

    Returns one message per bad row; the good rows are imported regardless.
    """
    if config.subscribers.file is None:
        return []
    read, _report = import_csv(config, config.subscribers.file, now)
    for error in read.errors:
        logger.warning("%s", error)
    return read.errors


def unsubscribe(config: Config, key: bytes, token: str, now: datetime) -> str | None:
    """Unsubscribe the address a genuine token names (at once, for good); None for a bad one."""
    address = verify_token(key, config.newsletter.list_id, token)
    if address is None:
        return None
    if not set_subscriber_status(
        database(config), address, SubscriberStatus.UNSUBSCRIBED, now, by="their unsubscribe link"
    ):
        logger.info("unsubscribe for an address not in the database")
    return address
