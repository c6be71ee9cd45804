"""The bounce mailbox: every message read from it, once, and what it said about subscribers
(hard and soft bounces and complaints per issue, unsubscribes by mail).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "mailbox_messages",
        sa.Column("mailbox", sa.String(255), primary_key=True),
        sa.Column("message_key", sa.String(255), primary_key=True),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("received_at", WHEN),
        sa.Column("processed_at", WHEN, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_index("ix_mailbox_messages_digest", "mailbox_messages", ["digest"])
    op.create_table(
        "bounce_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id"), nullable=False),
        sa.Column("issue_id", sa.Integer, sa.ForeignKey("issues.id")),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("at", WHEN, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("mailbox", sa.String(255), nullable=False),
        sa.Column("message_key", sa.String(255), nullable=False),
    )
    op.create_index(
        "ix_bounce_events_subscriber_kind_at", "bounce_events", ["subscriber_id", "kind", "at"]
    )
    op.create_index("ix_bounce_events_issue", "bounce_events", ["issue_id"])


def downgrade() -> None:
    op.drop_table("bounce_events")
    op.drop_table("mailbox_messages")
