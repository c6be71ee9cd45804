"""The database's schema is versioned: a new database is created at this version's revision,
matching the tables the code queries exactly; an older one (a revision behind, or made by the
first release before migrations existed) is refused with one line until `newsletter db
upgrade`, which keeps its rows; a newer one is refused; on SQLite and on PostgreSQL."""

from __future__ import annotations

import sys

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from newsletter.cli import main
from newsletter.db import migrate
from newsletter.db.schema import make_engine, metadata, open_database
from newsletter.errors import DatabaseError
from tests.conftest import both_databases

HEAD = "0005"


@pytest.fixture
def url(database_url, tmp_path):
    return database_url or f"sqlite:///{tmp_path / 'var' / 'newsletter.db'}"


@pytest.fixture
def config(url, tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(f"paths:\n  var_dir: {tmp_path / 'var'}\ndatabase:\n  url: {url}\n")
    return str(path)


@pytest.fixture
def opened():
    """Open databases through this, so that each is closed after the test."""
    engines = []

    def open_(url):
        engine = open_database(url)
        engines.append(engine)
        return engine

    yield open_
    for engine in engines:
        engine.dispose()


def _differences(engine):
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"include_name": lambda n, t, p: t != "table" or n in metadata.tables}
        )
        return compare_metadata(context, metadata)


def _first_release(url, *, stamped: bool):
    """A database as the first release left it: revision 0001's tables, with a subscriber;
    stamped (at revision 0001) or not (made before migrations)."""
    engine, _ = make_engine(url)
    with engine.begin() as conn:
        command.upgrade(migrate._config(conn), "0001")
        conn.execute(
            sa.text(
                "INSERT INTO subscribers (email, email_key, name, status, source, created_at, "
                "updated_at) VALUES ('a@example.com', 'a@example.com', 'A', 'unsubscribed', "
                "'cli', '2025-01-01 00:00:00', '2025-01-01 00:00:00')"
            )
        )
        if not stamped:
            conn.execute(sa.text("DROP TABLE alembic_version"))
    engine.dispose()


@both_databases
def test_a_new_database_is_created_at_this_versions_schema(url, opened):
    engine = opened(url)
    assert _differences(engine) == []
    with engine.connect() as conn:
        assert migrate.version(conn).current == HEAD
    opened(url)  # opening it again changes nothing


@pytest.mark.parametrize("stamped", [False, True], ids=["before-migrations", "revision-0001"])
@both_databases
def test_an_older_database_is_refused_until_db_upgrade_which_keeps_its_rows(
    url, config, capsys, stamped, opened
):
    _first_release(url, stamped=stamped)
    expected = (
        "was made by a version before schema migrations: back it up, then run `newsletter db "
        "upgrade`"
        if not stamped
        else f"is at schema revision 0001, this version needs {HEAD}: back it up, then run "
        "`newsletter db upgrade`"
    )
    with pytest.raises(DatabaseError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        opened(url)
    assert main(["subscribers", "list", "--config", config]) == 1
    assert capsys.readouterr().err.count("\n") == 1  # one line
    assert main(["db", "status", "--config", config]) == 1
    assert "run `newsletter db upgrade`" in capsys.readouterr().out
    assert main(["db", "upgrade", "--config", config]) == 0
    before = "0001" if stamped else "none (new or pre-migration)"
    assert capsys.readouterr().out.endswith(f": schema revision {before} -> {HEAD}\n")
    assert _differences(opened(url)) == []
    assert main(["subscribers", "list", "--config", config]) == 0
    assert capsys.readouterr().out == "a@example.com\tA\tunsubscribed\n"
    assert main(["db", "upgrade", "--config", config]) == 0
    assert "already this version's" in capsys.readouterr().out
    assert main(["db", "status", "--config", config]) == 0


@both_databases
def test_a_database_a_newer_version_upgraded_is_refused(url, opened):
    engine = opened(url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0099'"))
    with pytest.raises(DatabaseError, match="is at schema revision 0099, which this version does"):
        migrate.ensure_current(engine, "db")
    with pytest.raises(DatabaseError, match="newer than this version knows"):
        migrate.upgrade(engine, "db")


def test_upgrade_refuses_tables_that_are_not_the_first_releases(tmp_path):
    path = tmp_path / "odd.db"
    engine, _ = make_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE estimate_snapshots (ticker TEXT, taken_on DATE)"))
    with pytest.raises(DatabaseError, match="has some of this project's tables but not issues"):
        migrate.upgrade(engine, "odd.db")
    _first_release(f"sqlite:///{tmp_path / 'short.db'}", stamped=False)
    short, _ = make_engine(f"sqlite:///{tmp_path / 'short.db'}")
    with short.begin() as conn:
        conn.execute(sa.text("ALTER TABLE send_ledger DROP COLUMN sent_at"))
    with pytest.raises(DatabaseError, match=r"table send_ledger lacks column\(s\) sent_at"):
        migrate.upgrade(short, "short.db")
    with short.connect() as conn:
        assert migrate.version(conn).current is None  # nothing was changed


def test_a_postgresql_url_without_its_driver_says_which_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(DatabaseError) as refused:
        open_database("postgresql://newsletter:secret@db.example.com/newsletter")
    message = str(refused.value)
    assert 'pip install -e ".[postgres]"' in message and "psycopg" in message
    assert "secret" not in message  # the password stays masked


def test_the_head_every_open_checks_is_alembics():
    """Opening a current database reads its stamp and compares it with HEAD, without Alembic:
    a new migration must move HEAD too."""
    from alembic.script import ScriptDirectory  # noqa: PLC0415

    from newsletter.db.migrate import HEAD, MIGRATIONS  # noqa: PLC0415

    assert ScriptDirectory(str(MIGRATIONS)).get_current_head() == HEAD


def test_a_claim_reads_the_next_pending_rows_in_order_without_sorting(tmp_path):
    """SQLite's plan for the claim's query: the (issue, status, subscriber) index, and no
    temporary B-tree for the ORDER BY (which sorted every pending row on each claim)."""
    from datetime import UTC, datetime  # noqa: PLC0415

    import sqlalchemy as sa  # noqa: PLC0415

    from newsletter.db import ledger  # noqa: PLC0415

    engine = open_database(f"sqlite:///{tmp_path / 'plan.db'}")
    seen: list[tuple[str, object]] = []

    def keep(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and "send_ledger" in statement:
            seen.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", keep)
    ledger.claim(engine, issue_id=1, run_id=1, limit=64, now=datetime.now(UTC))
    statement, parameters = seen[0]
    with engine.connect() as conn:
        plan = " | ".join(
            str(row[-1])
            for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
        )
    assert "ix_send_ledger_issue_status_subscriber" in plan, plan
    assert "TEMP B-TREE" not in plan, plan


def test_a_write_lock_held_past_the_busy_timeout_is_sqlalchemys_error_and_passes(tmp_path):
    """The driver runs a writer's BEGIN IMMEDIATE itself: a lock another process holds past the
    busy timeout must still raise as every other statement's error does (callers catch
    SQLAlchemyError), and the connection must write once the lock is gone."""
    import sqlite3  # noqa: PLC0415

    path = tmp_path / "locked.db"
    engine = open_database(f"sqlite:///{path}")
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        with engine.connect() as conn:
            conn.connection.driver_connection.execute("PRAGMA busy_timeout=50")
            holder.execute("BEGIN IMMEDIATE")
            with pytest.raises(sa.exc.OperationalError, match="database is locked"), conn.begin():
                pass
            holder.execute("ROLLBACK")
            with conn.begin():
                conn.execute(sa.text("CREATE TABLE after_the_lock (x INTEGER)"))
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM after_the_lock")).scalar_one() == 0
    finally:
        holder.close()
        engine.dispose()
