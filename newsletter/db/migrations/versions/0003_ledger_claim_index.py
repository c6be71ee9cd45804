"""The ledger's claim index: (issue, status, subscriber) in place of (issue, status).

A claim takes the next pending rows of an issue in subscriber order; with the status index
alone the database had to sort every pending row of the issue for each claim, so a whole send
cost in proportion to the list's size squared. With the subscriber id in the index the claim
reads the next rows in order and stops. Counting an issue's rows by status uses the same
index's first two columns.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_send_ledger_issue_status_subscriber",
        "send_ledger",
        ["issue_id", "status", "subscriber_id"],
    )
    op.drop_index("ix_send_ledger_issue_status", table_name="send_ledger")


def downgrade() -> None:
    op.create_index("ix_send_ledger_issue_status", "send_ledger", ["issue_id", "status"])
    op.drop_index("ix_send_ledger_issue_status_subscriber", table_name="send_ledger")
