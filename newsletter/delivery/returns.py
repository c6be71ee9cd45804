"""The jobs a sender has handed to its connections, and the results they hand back.

The thread that claims only needs to act when few enough jobs are left out to claim more, or
when none are: waking it for every result, as a queue would, costs a thread switch a message.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from newsletter.models import Delivery, Outcome


class Returns:
    """Counts the jobs out and holds the results back; `take` waits until at most `low` jobs
    are out (and something came back) or the timeout passes."""

    def __init__(self, low: int) -> None:
        self.low = low
        self._back: list[tuple[Delivery, Outcome]] = []
        self._out = 0
        self._changed = threading.Condition()

    @property
    def out(self) -> int:
        """Jobs handed out whose result has not been taken yet."""
        with self._changed:
            return self._out + len(self._back)

    def hand_out(self, count: int) -> None:
        with self._changed:
            self._out += count

    def put(self, job: Delivery, outcome: Outcome) -> None:
        """A connection is done with `job`; the claiming thread wakes only at the low mark."""
        with self._changed:
            self._back.append((job, outcome))
            self._out -= 1
            if self._out <= self.low:
                self._changed.notify()

    def take(self, timeout: float | None = None) -> list[tuple[Delivery, Outcome]]:
        """The results back so far, after waiting for the low mark (at most `timeout` s;
        None takes what is there without waiting)."""
        with self._changed:
            if timeout is not None:
                self._changed.wait_for(lambda: self._back and self._out <= self.low, timeout)
            back, self._back = self._back, []
            return back
