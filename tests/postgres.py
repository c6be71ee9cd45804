"""A throwaway PostgreSQL server on 127.0.0.1 for the tests: Debian's binaries (`.ci/run`
installs the `postgresql` package), a data folder under the test session's temporary folder,
one server per test worker, one new database per test.

Where the binaries are missing, the PostgreSQL half of the parametrised tests is skipped and
says why. As root, the server runs as the `postgres` user the package creates (initdb refuses
root).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from newsletter.delivery.capture import free_loopback_port

MISSING = (
    "PostgreSQL is not installed (Debian: apt-get install postgresql, which .ci/run does): "
    "the PostgreSQL half of this test is skipped"
)


def binaries() -> Path | None:
    """The folder of initdb and pg_ctl, or None (also as root without the postgres user the
    package creates, which the server must run as)."""
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return None
    found = shutil.which("pg_ctl")
    if found:
        return Path(os.path.realpath(found)).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return versions[-1].parent if versions else None


def _as_server_user() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


@contextmanager
def server() -> Iterator[str]:
    """Start a server with its data in a new folder under /tmp (pytest's own are private to
    root, and the server runs as postgres); yields the URL of its maintenance database."""
    folder = binaries()
    assert folder is not None, MISSING
    root = Path(tempfile.mkdtemp(prefix="newsletter-pg-"))
    data, log = root / "data", root / "server.log"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    user = _as_server_user()
    subprocess.run(
        [
            *user,
            str(folder / "initdb"),
            *("-D", str(data), "-A", "trust", "-U", "newsletter", "-E", "UTF8"),
            *("--no-sync", "--no-instructions"),
        ],
        check=True,
        capture_output=True,
    )
    port = free_loopback_port()
    options = (
        f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    start = [*user, str(folder / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options]
    subprocess.run([*start, "-w", "start"], check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://newsletter@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*user, str(folder / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            check=False,
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


def new_database(maintenance_url: str) -> str:
    """A new, empty database on the server; its URL."""
    import psycopg  # noqa: PLC0415

    name = f"t_{uuid.uuid4().hex[:12]}"
    conninfo = maintenance_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return maintenance_url.rsplit("/", 1)[0] + f"/{name}"
