"""Alembic's environment for the project database: migrations run on the connection that
`newsletter.db.migrate` hands over (inside its transaction), never from a URL of their own."""

from __future__ import annotations

from alembic import context

from newsletter.db.schema import metadata


def _ours(name: str | None, type_: str, parent_names: object) -> bool:
    """Only the project's tables: the scheduler's job store shares the database."""
    return type_ != "table" or name in metadata.tables


context.configure(
    connection=context.config.attributes["connection"],
    target_metadata=metadata,
    include_name=_ours,
    render_as_batch=True,  # SQLite alters a table by copying it
)
with context.begin_transaction():
    context.run_migrations()
