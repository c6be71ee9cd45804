"""The project database's schema version (Alembic): checked on every open, moved on by
`newsletter db upgrade`.

A new, empty database is brought to the current schema at once (that is creating it, not
migrating it). A database at an older revision, or one made before migrations existed, is
refused with one line that says to run `newsletter db upgrade`; one at a revision this version
does not know (made by a newer version) is refused too. Every change runs in one transaction
that holds the database's write lock (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory lock),
so two processes opening a new database at once create it once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from newsletter.errors import DatabaseError

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory
    from sqlalchemy.engine import Connection, Engine

MIGRATIONS = Path(__file__).with_name("migrations")
BASELINE = "0001"
HEAD = "0005"
"""The newest revision in migrations/versions (a test checks it is Alembic's head): a database
stamped with it is current, which every open checks without importing Alembic."""
"""The revision of the schema the first release made without migrations."""
_ADDED_COLUMNS = {"subscribers": {"joined_via", "confirmed_at"}}
"""Columns later migrations added to the baseline's tables: a first-release database lacks them."""
_LOCK_KEY = 7_141_722_019
"""The PostgreSQL advisory lock every schema change of this project takes."""
_BASELINE_TABLES = {
    "subscribers",
    "issues",
    "send_runs",
    "send_ledger",
    "reviews",
    "estimate_snapshots",
}


@dataclass(frozen=True, slots=True)
class SchemaVersion:
    """Where a database's schema stands against the code's."""

    current: str | None
    head: str
    tables: frozenset[str]

    @property
    def empty(self) -> bool:
        return self.current is None and not (self.tables & _BASELINE_TABLES)


def _config(connection: Connection) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig  # noqa: PLC0415 (only to change a schema)

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _scripts() -> ScriptDirectory:
    from alembic.script import ScriptDirectory  # noqa: PLC0415

    return ScriptDirectory(str(MIGRATIONS))


def _lock(connection: Connection) -> None:
    """Serialise schema changes (SQLite's BEGIN IMMEDIATE already does)."""
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})


def version(connection: Connection) -> SchemaVersion:
    """The database's revision (None: never stamped), the code's head, and its tables."""
    from alembic.runtime.migration import MigrationContext  # noqa: PLC0415

    current = MigrationContext.configure(connection).get_current_revision()
    tables = frozenset(sa.inspect(connection).get_table_names())
    head = _scripts().get_current_head()
    if head is None:
        raise DatabaseError(f"no migrations found in {MIGRATIONS}: the installation is broken")
    return SchemaVersion(current, head, tables)


def _stamped(connection: Connection) -> str | None:
    """The revision the database records, read with one query (Alembic's own table)."""
    if not sa.inspect(connection).has_table("alembic_version"):
        return None
    found = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    return None if found is None else str(found)


def _command() -> Any:
    from alembic import command  # noqa: PLC0415

    return command


def _known(revision: str) -> bool:
    try:
        return _scripts().get_revision(revision) is not None
    except Exception:  # alembic raises its own errors for unknown or malformed ids
        return False


def ensure_current(engine: Engine, where: str) -> None:
    """Create a new database's schema; refuse one whose schema is older or newer than the code."""
    with engine.begin() as connection:
        _lock(connection)
        if _stamped(connection) == HEAD:
            return
        found = version(connection)
        if found.current == found.head:
            return
        if found.empty:
            _command().upgrade(_config(connection), "head")
            return
    if found.current is None:
        raise DatabaseError(
            f"database {where} was made by a version before schema migrations: back it up, then "
            "run `newsletter db upgrade`"
        )
    if not _known(found.current):
        raise DatabaseError(
            f"database {where} is at schema revision {found.current}, which this version does "
            f"not know (its newest is {found.head}): it was upgraded by a newer Rotation Digest; "
            "use that version"
        )
    raise DatabaseError(
        f"database {where} is at schema revision {found.current}, this version needs "
        f"{found.head}: back it up, then run `newsletter db upgrade`"
    )


def upgrade(engine: Engine, where: str) -> tuple[str | None, str]:
    """Bring the database to the code's schema; (the revision before, the revision now).

    A database from before migrations is first checked to hold the first release's tables and
    columns, then recorded as that revision.
    """
    try:
        return _upgrade(engine, where)
    except sa.exc.SQLAlchemyError as err:
        raise DatabaseError(f"cannot upgrade database {where}: {err}; nothing was changed") from err


def schema_state(engine: Engine, where: str) -> SchemaVersion:
    """Where the database's schema stands, for `newsletter db status`."""
    try:
        with engine.connect() as connection:
            return version(connection)
    except sa.exc.SQLAlchemyError as err:
        raise DatabaseError(f"cannot read database {where}: {err}") from err


def _upgrade(engine: Engine, where: str) -> tuple[str | None, str]:
    with engine.begin() as connection:
        _lock(connection)
        found = version(connection)
        if found.current is not None and not _known(found.current):
            raise DatabaseError(
                f"database {where} is at schema revision {found.current}, newer than this "
                f"version knows ({found.head}); nothing was changed"
            )
        config = _config(connection)
        if found.current is None and not found.empty:
            _check_baseline(connection, where)
            _command().stamp(config, BASELINE)
        _command().upgrade(config, "head")
    return found.current, found.head


def _check_baseline(connection: Connection, where: str) -> None:
    """Refuse to stamp a database whose tables are not the first release's."""
    from newsletter.db.schema import metadata  # noqa: PLC0415 (the model the baseline matches)

    inspector = sa.inspect(connection)
    missing_tables = sorted(_BASELINE_TABLES - set(inspector.get_table_names()))
    if missing_tables:
        raise DatabaseError(
            f"database {where} has some of this project's tables but not "
            f"{', '.join(missing_tables)}: it is not one this project made; nothing was changed"
        )
    for name in sorted(_BASELINE_TABLES):
        present = {column["name"] for column in inspector.get_columns(name)}
        expected = {column.name for column in metadata.tables[name].columns}
        missing = expected - _ADDED_COLUMNS.get(name, set()) - present
        if missing:
            raise DatabaseError(
                f"database {where}: table {name} lacks column(s) {', '.join(sorted(missing))}; "
                "nothing was changed"
            )
