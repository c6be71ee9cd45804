"""The editor's review of each issue: the content approved, and the content last mailed to the
editor for review (so a waiting scheduled run mails each version once)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from newsletter.db.schema import reader, reviews, upsert


@dataclass(frozen=True, slots=True)
class Review:
    """The editor's review of one issue; each digest identifies the content it applies to."""

    approved_sha256: str | None = None
    test_sent_sha256: str | None = None


def _set_review(engine: Engine, as_of: date, **values: object) -> None:
    with engine.begin() as conn:
        conn.execute(upsert(conn, reviews, ["as_of"], {"as_of": as_of, **values}))


def approve(engine: Engine, as_of: date, content_sha256: str, now: datetime) -> None:
    """Mark this content of the issue approved (a later approval replaces an earlier one)."""
    _set_review(engine, as_of, approved_sha256=content_sha256, approved_at=now)


def note_test_sent(engine: Engine, as_of: date, content_sha256: str, now: datetime) -> None:
    """Remember that this content went to the editor for review."""
    _set_review(engine, as_of, test_sent_sha256=content_sha256, test_sent_at=now)


def review(engine: Engine, as_of: date) -> Review:
    with reader(engine) as conn:
        row = conn.execute(sa.select(reviews).where(reviews.c.as_of == as_of)).first()
    if row is None:
        return Review()
    return Review(row.approved_sha256, row.test_sent_sha256)
