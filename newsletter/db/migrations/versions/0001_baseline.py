"""The schema of the first release (0.1.0): subscribers, issues, send runs, the send ledger,
reviews and estimate snapshots.

A database made by that release before migrations existed has exactly these tables; `newsletter
db upgrade` checks them and records this revision without running it.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    _people_and_issues()
    _sending()
    _review_and_estimates()


def _people_and_issues() -> None:
    op.create_table(
        "subscribers",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("email_key", sa.String(320), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
    )
    op.create_table(
        "issues",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("as_of", sa.Date, nullable=False, unique=True),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
    )


def _sending() -> None:
    op.create_table(
        "send_runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("issue_id", sa.Integer, sa.ForeignKey("issues.id"), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("started_at", WHEN, nullable=False),
        sa.Column("heartbeat_at", WHEN, nullable=False),
        sa.Column("finished_at", WHEN),
    )
    op.create_table(
        "send_ledger",
        sa.Column("issue_id", sa.Integer, sa.ForeignKey("issues.id"), primary_key=True),
        sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id"), primary_key=True),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("message_id", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_reply", sa.Text),
        sa.Column("claimed_by", sa.Integer, sa.ForeignKey("send_runs.id")),
        sa.Column("next_attempt_at", WHEN),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.Column("sent_at", WHEN),
    )
    op.create_index("ix_send_ledger_issue_status", "send_ledger", ["issue_id", "status"])


def _review_and_estimates() -> None:
    op.create_table(
        "reviews",
        sa.Column("as_of", sa.Date, primary_key=True),
        sa.Column("approved_sha256", sa.String(64)),
        sa.Column("approved_at", WHEN),
        sa.Column("test_sent_sha256", sa.String(64)),
        sa.Column("test_sent_at", WHEN),
    )
    op.create_table(
        "estimate_snapshots",
        sa.Column("ticker", sa.String(16), primary_key=True),
        sa.Column("taken_on", sa.Date, primary_key=True),
        sa.Column("period", sa.String(8), primary_key=True),
        sa.Column("revenue_avg", sa.Float, nullable=False),
        sa.Column("analysts", sa.Integer, nullable=False),
        sa.Column("next_earnings", sa.Date),
        sa.Column("shares_outstanding", sa.Float),
    )


def downgrade() -> None:
    for table in ("estimate_snapshots", "reviews", "send_ledger", "send_runs", "issues"):
        op.drop_table(table)
    op.drop_table("subscribers")
