"""Signup with double opt-in: the consent record, suppressions, notices and signup attempts.

Subscribers gain joined_via (every earlier one came by import or an admin's add, recorded as
import) and confirmed_at; a send run may have no issue (it sends notices).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

WHEN = sa.DateTime(timezone=True)
UNFINISHED = sa.text("status IN ('pending', 'claimed', 'deferred')")


def upgrade() -> None:
    with op.batch_alter_table("subscribers") as table:
        table.add_column(
            sa.Column("joined_via", sa.String(16), nullable=False, server_default="import")
        )
        table.add_column(sa.Column("confirmed_at", WHEN))
    with op.batch_alter_table("send_runs") as table:
        table.alter_column("issue_id", existing_type=sa.Integer, nullable=True)
    op.create_table(
        "suppressions",
        sa.Column("address_sha256", sa.String(64), primary_key=True),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("at", WHEN, nullable=False),
    )
    _notices()
    op.create_table(
        "signup_attempts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("client_sha256", sa.String(64), nullable=False),
        sa.Column("address_sha256", sa.String(64), nullable=False),
        sa.Column("at", WHEN, nullable=False),
    )
    op.create_index("ix_signup_attempts_client", "signup_attempts", ["client_sha256", "at"])
    op.create_index("ix_signup_attempts_address", "signup_attempts", ["address_sha256", "at"])


def _notices() -> None:
    op.create_table(
        "notices",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("message_id", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_reply", sa.Text),
        sa.Column("claimed_by", sa.Integer, sa.ForeignKey("send_runs.id")),
        sa.Column("next_attempt_at", WHEN),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.Column("sent_at", WHEN),
        sa.Column("used_at", WHEN),
    )
    op.create_index("ix_notices_status_id", "notices", ["status", "id"])
    op.create_index(
        "ux_notices_one_unfinished",
        "notices",
        ["subscriber_id"],
        unique=True,
        sqlite_where=UNFINISHED,
        postgresql_where=UNFINISHED,
    )


def downgrade() -> None:
    op.drop_table("signup_attempts")
    op.drop_table("notices")
    op.drop_table("suppressions")
    with op.batch_alter_table("send_runs") as table:
        table.alter_column("issue_id", existing_type=sa.Integer, nullable=False)
    with op.batch_alter_table("subscribers") as table:
        table.drop_column("confirmed_at")
        table.drop_column("joined_via")
