"""Send runs: each sender process registers a run, beats a heartbeat, and finishes it; claims of
a run that is provably dead go back to pending for any live sender.

A run works one queue: an issue's ledger rows, or (a run without an issue) the notices, the
confirmation and welcome mails; both tables claim the same way (status, claimed_by).

A run on this host is alive while its process is (the same process: its start time is checked,
not just its pid); a run on another host while its heartbeat is within RUN_LEASE.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from newsletter.db.schema import ledger, naive, new_id, notices, runs
from newsletter.models import LedgerStatus

RUN_LEASE = timedelta(minutes=5)
"""A run on another host whose heartbeat is older than this is taken for dead."""
START_SLACK = timedelta(seconds=5)
"""How much later than its run's start a process may seem to have started (clock rounding)."""
_UNKNOWN_START = datetime.fromtimestamp(0, UTC).replace(tzinfo=None)
"""The start of a process that exists but whose start time cannot be read: trusted as alive."""
CLAIMING = (ledger, notices)
"""The tables whose rows runs claim."""


@dataclass(frozen=True, slots=True)
class Queue:
    """The rows one run sends: `table`'s rows where `scope` holds."""

    table: sa.Table
    scope: sa.ColumnElement[bool]
    issue_id: int | None


def issue_queue(issue_id: int) -> Queue:
    """An issue's messages in the send ledger."""
    return Queue(ledger, ledger.c.issue_id == issue_id, issue_id)


NOTICE_QUEUE = Queue(notices, sa.true(), None)
"""Every notice (confirmation and welcome mails)."""


def _process_started(pid: int) -> datetime | None:
    """When process `pid` of this host started (naive UTC), from /proc; None if it is gone.

    Without /proc the answer is only whether the pid exists (then _UNKNOWN_START).
    """
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[19])  # field 22 of stat, counted after the command's closing ")"
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
    except (OSError, IndexError, StopIteration, ValueError):
        return _UNKNOWN_START if _pid_exists(pid) else None
    if fields[0] in ("Z", "X"):  # exited, not yet reaped by its parent: it sends nothing
        return None
    seconds = boot + ticks / os.sysconf("SC_CLK_TCK")
    return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def alive(run: Any, host: str, now: datetime) -> bool:
    """Whether an open run's process still works: on this host, the same process (a pid that
    now names a process started after the run did is another one, as PID 1 is in every new
    container); elsewhere, a heartbeat within the lease."""
    if run.host != host:
        return naive(run.heartbeat_at) >= naive(now - RUN_LEASE)
    if run.pid == os.getpid():  # a process sends one run at a time: an older one of ours is over
        return False
    started = _process_started(run.pid)
    return started is not None and started <= naive(run.started_at) + START_SLACK


def start_run(engine: Engine, queue: Queue, now: datetime) -> int:
    """Register this process as a sender of `queue`, release the claims of senders that died,
    and give an issue's messages an earlier run deferred a fresh set of attempts."""
    host = socket.gethostname()
    with engine.begin() as conn:
        _end_dead(conn, host, now)
        if queue.issue_id is not None:
            conn.execute(
                ledger.update()
                .where(queue.scope, ledger.c.status == LedgerStatus.DEFERRED)
                .values(
                    status=LedgerStatus.PENDING, attempts=0, next_attempt_at=None, updated_at=now
                )
            )
        return new_id(
            conn.execute(
                runs.insert().values(
                    issue_id=queue.issue_id,
                    host=host,
                    pid=os.getpid(),
                    started_at=now,
                    heartbeat_at=now,
                )
            )
        )


def _end_dead(conn: Any, host: str, now: datetime) -> int:
    """Finish the open runs that are dead and release their claims; returns how many."""
    open_runs = conn.execute(sa.select(runs).where(runs.c.finished_at.is_(None))).all()
    dead = [run.id for run in open_runs if not alive(run, host, now)]
    if dead:
        conn.execute(runs.update().where(runs.c.id.in_(dead)).values(finished_at=now))
        for table in CLAIMING:
            _release(conn, table, table.c.claimed_by.in_(dead), now)
    return len(dead)


def end_dead_runs(engine: Engine, now: datetime) -> int:
    """Finish the runs that died and hand their claims back; returns how many."""
    with engine.begin() as conn:
        return _end_dead(conn, socket.gethostname(), now)


def _release(conn: Any, table: sa.Table, which: sa.ColumnElement[bool], now: datetime) -> None:
    """Claimed rows of `table` where `which` holds are pending again."""
    conn.execute(
        table.update()
        .where(which, table.c.status == LedgerStatus.CLAIMED)
        .values(status=LedgerStatus.PENDING, claimed_by=None, updated_at=now)
    )


def heartbeat(engine: Engine, run_id: int, now: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(runs.update().where(runs.c.id == run_id).values(heartbeat_at=now))


def finish_run(engine: Engine, run_id: int, now: datetime) -> None:
    """Mark the run finished and hand back any claim it still holds."""
    with engine.begin() as conn:
        for table in CLAIMING:
            _release(conn, table, table.c.claimed_by == run_id, now)
        conn.execute(runs.update().where(runs.c.id == run_id).values(finished_at=now))


def take_over(engine: Engine, queue: Queue, run_id: int, now: datetime) -> tuple[int, int]:
    """Release the queue's claims held by dead runs; (messages claimable now, still held by
    live runs). Claimable counts what a peer released a moment ago too, so a sender never
    stops while work it could do waits."""
    host = socket.gethostname()
    table = queue.table
    with engine.begin() as conn:
        holders = conn.execute(
            sa.select(runs)
            .join(table, table.c.claimed_by == runs.c.id)
            .where(queue.scope, table.c.status == LedgerStatus.CLAIMED, runs.c.id != run_id)
            .distinct()
        ).all()
        dead = [run.id for run in holders if run.finished_at or not alive(run, host, now)]
        if dead:
            _release(conn, table, table.c.claimed_by.in_(dead), now)
        # Both counts in one statement, so one snapshot: under PostgreSQL's READ COMMITTED two
        # statements could miss a message a peer claimed between them (pending in neither).
        held, claimable = conn.execute(
            sa.select(
                _count_where(
                    sa.and_(table.c.status == LedgerStatus.CLAIMED, table.c.claimed_by != run_id)
                ),
                _count_where(
                    sa.and_(
                        table.c.status == LedgerStatus.PENDING,
                        sa.or_(table.c.next_attempt_at.is_(None), table.c.next_attempt_at <= now),
                    )
                ),
            ).where(queue.scope)
        ).one()
    return int(claimable), int(held)  # released claims are pending now: among the claimable


def _count_where(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
    return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)
