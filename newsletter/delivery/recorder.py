"""The group commit of send results: several connections' results in one transaction."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Sequence

    from newsletter.models import Outcome


class Records(Protocol):
    """Where results are written (the sender's Ledger has this and more)."""

    def record(self, outcomes: Sequence[Outcome]) -> None: ...


class GroupRecorder:
    """Writes the results of several connections in one transaction (a group commit).

    `record` returns once its outcome is written: the first caller writes what every caller
    has handed in meanwhile, the rest wait for that write, so each connection still records
    its message before it sends the next, with fewer transactions when connections finish
    together. Before it writes, the first caller waits up to `patience_s` until `gather`
    results are in: the other connections are a fraction of a message from theirs, and one
    transaction for three costs little more than one for one. A failed write raises in every
    caller whose outcome it held.
    """

    def __init__(self, ledger: Records, *, gather: int = 1, patience_s: float = 0.0) -> None:
        self.ledger = ledger
        self.gather = gather
        self.patience_s = patience_s
        self._waiting: list[Outcome] = []
        lock = threading.Lock()
        self._done = threading.Condition(lock)
        self._arrived = threading.Condition(lock)
        """Where the writer waits while it gathers: a hand-in wakes it alone."""
        self._writing = False
        self._gathering = False
        self._written = 0
        self._handed = 0
        self._failures: dict[int, BaseException] = {}

    def record(self, outcome: Outcome) -> None:
        with self._done:
            self._waiting.append(outcome)
            self._handed += 1
            mine = self._handed
            if self._gathering:
                self._arrived.notify()
            while self._written < mine and self._writing:
                self._done.wait()
            if self._written >= mine:
                self._raise_if_failed(mine)
                return
            self._writing = True
            batch = self._gather()
        error: BaseException | None = None
        try:
            self.ledger.record(batch)
        except BaseException as err:  # whatever it is, every caller it held hears of it
            error = err
        with self._done:
            first = self._written + 1
            self._written += len(batch)
            if error is not None:
                self._failures.update(dict.fromkeys(range(first, self._written + 1), error))
            self._writing = False
            self._done.notify_all()
            self._raise_if_failed(mine)

    def _gather(self) -> list[Outcome]:
        """What the writer writes: the results handed in, once `gather` are or time is up
        (called holding the lock)."""
        deadline = time.monotonic() + self.patience_s
        self._gathering = True
        while len(self._waiting) < self.gather and (left := deadline - time.monotonic()) > 0:
            self._arrived.wait(left)
        self._gathering = False
        batch, self._waiting = self._waiting, []
        return batch

    def _raise_if_failed(self, ticket: int) -> None:
        error = self._failures.pop(ticket, None)
        if error is not None:
            raise error
