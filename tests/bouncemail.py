"""Bounce-mailbox helpers for tests: the fixtures in tests/fixtures/bounces/ (shaped like what
Postfix, Exim, Gmail, Microsoft 365 and Yahoo send), their VERP address filled in, and a real
Maildir on disk to deliver them to with a chosen arrival time.

The VERP token is computed here from its specification (README: Bounces and complaints), not
by the code under test: 4-byte issue id, 4-byte subscriber id, the first 10 bytes of
HMAC-SHA256(key, "rotation-digest bounce\\n" + list id + "\\n" + the ids), base32, lower case.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import mailbox
import os
import struct
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from newsletter.app.audience import subscribers, sync_subscribers
from newsletter.app.bounces import MailboxReport, process_mailbox
from newsletter.app.wiring import database
from newsletter.config import Config, Secrets, load_config
from newsletter.db import ledger
from newsletter.db.schema import subscribers as subscriber_table

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "bounces"
PLACEHOLDER = b"VERPTOKEN"
LIST_ID = "rotation-digest.example.com"
BOUNCES = "bounces@example.com"
KEY = b"a-test-key-that-signs-links-0123"
SECRETS = Secrets(unsubscribe_key=KEY)
NOW = datetime(2024, 8, 30, 12, 0, tzinfo=UTC)
ISSUES = (date(2024, 7, 5), date(2024, 7, 12), date(2024, 7, 16), date(2024, 7, 19))
DAY = date(2024, 7, 16)


def token(key: bytes, issue_id: int, subscriber_id: int, list_id: str = LIST_ID) -> str:
    ids = struct.pack(">II", issue_id, subscriber_id)
    mac = hmac.new(key, b"rotation-digest bounce\n" + list_id.encode() + b"\n" + ids, "sha256")
    return base64.b32encode(ids + mac.digest()[:10]).decode().rstrip("=").lower()


def fixture(name: str, verp_token: str = "", **replace: str) -> bytes:
    """A fixture's bytes with its VERP token (and any other text) filled in."""
    data = (FIXTURES / name).read_bytes().replace(PLACEHOLDER, verp_token.encode())
    for old, new in replace.items():
        data = data.replace(old.encode(), new.encode())
    return data


def deliver(folder: Path, data: bytes, arrived: datetime | None = None) -> str:
    """File `data` into the Maildir `folder` (made if missing) as an MTA would, arriving at
    `arrived` (the file's time, which is a Maildir's delivery time); returns its key."""
    box = mailbox.Maildir(folder, create=True)
    key = box.add(data)
    if arrived is not None:
        stamp = arrived.timestamp()
        (path,) = folder.glob(f"new/{key}*")
        os.utime(path, (stamp, stamp))
    return key


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Project:
    """A project whose five sample readers were each sent the issues of ISSUES (per the
    ledger, with no message built), reading its bounce mailbox."""

    config: Config
    path: Path
    maildir: Path
    issues: dict[date, int]
    ids: dict[str, int]
    secrets: Secrets = SECRETS

    def token(self, address: str, as_of: date = DAY) -> str:
        return token(KEY, self.issues[as_of], self.ids[address])

    def deliver(self, data: bytes, arrived: datetime | None = None) -> str:
        return deliver(self.maildir, data, arrived)

    def process(self) -> MailboxReport:
        return process_mailbox(self.config, secrets=self.secrets, clock=lambda: NOW)

    def statuses(self) -> dict[str, str]:
        return {address: str(status) for address, _, status in subscribers(self.config)}

    def rows(self, table: sa.Table) -> int:
        with database(self.config).connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def make_project(
    write_config: Any, folder: Path, database_url: str | None, **bounces: Any
) -> Project:
    """The Project, with its mailbox the Maildir `folder` unless `bounces` names another."""
    path = write_config(
        newsletter={"bounce_address": BOUNCES},
        bounces={"maildir": str(folder), "soft_limit": 3, "soft_days": 30, **bounces},
        database={"url": database_url},
    )
    config = load_config(path)
    mailbox.Maildir(folder, create=True)
    engine = database(config)
    sync_subscribers(config, NOW - timedelta(days=90))
    issues = {}
    for as_of in ISSUES:
        issues[as_of] = ledger.record_issue(engine, as_of, "s", f"sha-{as_of}", NOW)
        ledger.enqueue_audience(engine, issues[as_of], lambda e, d=as_of: f"<{d}.{e}>", NOW)
    with engine.connect() as conn:
        ids = dict(conn.execute(sa.select(subscriber_table.c.email, subscriber_table.c.id)).all())
    return Project(config, path, folder, issues, ids)
