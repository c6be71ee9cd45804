"""Forked processes that draw an issue's charts, started before the prices load.

Importing matplotlib costs a third of a second; a pool forked at the start of a build pays it
in its workers while the parent loads the prices and computes the week, so the charts are
drawn as soon as the numbers are known. This module imports no drawing code itself: only a
worker (or `draw_here`) does.

The prices and the week go to the workers once each, pickled once; the workers then take the
charts one at a time from a shared counter, so a worker still starting up draws fewer. The
bytes are the same as one process draws: each worker is a fresh matplotlib with the same style.
"""

from __future__ import annotations

import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor
from itertools import chain
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from types import TracebackType

    from newsletter.models import Chart, Prices
    from newsletter.weekstats import WeekStats

_NEXT: Any = None
"""A worker's handle on the pool's shared counter: the index of the next chart to draw."""


def _start_worker(counter: Any) -> None:
    """Each worker's start: keep the counter, import the drawing code (matplotlib) now."""
    global _NEXT  # noqa: PLW0603 (one per worker process, set once at its start)
    _NEXT = counter
    import newsletter.issue.charts  # noqa: F401, PLC0415


def _started() -> None:
    """A task that does nothing: submitting it forks the workers."""


def _draw_share(payload: bytes) -> list[tuple[int, Chart | None]]:
    """Draw charts until none is left to take; each with its index in the email's order."""
    from newsletter.issue.charts import chart_drawings  # noqa: PLC0415

    prices, stats, ratio_sessions = pickle.loads(payload)  # our own parent's bytes
    drawings = chart_drawings(prices, stats, ratio_sessions)
    drawn: list[tuple[int, Chart | None]] = []
    while True:
        with _NEXT.get_lock():
            index = _NEXT.value
            _NEXT.value += 1
        if index >= len(drawings):
            return drawn
        drawn.append((index, drawings[index]()))


def draw_here(prices: Prices, stats: WeekStats, ratio_sessions: int) -> tuple[Chart, ...]:
    """Every chart the data supports, drawn in this process, in the email's order."""
    from newsletter.issue.charts import chart_drawings  # noqa: PLC0415

    drawn = [draw() for draw in chart_drawings(prices, stats, ratio_sessions)]
    return tuple(chart for chart in drawn if chart is not None)


class ChartPool:
    """`workers` forked processes that draw charts; forked when made, so make it early.

    The caller decides that forking is safe (one thread, a platform that forks)."""

    def __init__(self, workers: int) -> None:
        context = multiprocessing.get_context("fork")
        self._next = context.Value("i", 0)
        self._workers = workers
        self._executor = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=context,
            initializer=_start_worker,
            initargs=(self._next,),
        )
        self._executor.submit(_started)  # forks every worker now (the fork start method)

    def draw(self, prices: Prices, stats: WeekStats, ratio_sessions: int) -> tuple[Chart, ...]:
        """Every chart the data supports, in the email's order, drawn by the workers."""
        with self._next.get_lock():
            self._next.value = 0
        payload = pickle.dumps((prices, stats, ratio_sessions), protocol=pickle.HIGHEST_PROTOCOL)
        shares = [self._executor.submit(_draw_share, payload) for _ in range(self._workers)]
        drawn = sorted(chain.from_iterable(share.result() for share in shares), key=_index)
        return tuple(chart for _, chart in drawn if chart is not None)

    def close(self) -> None:
        self._executor.shutdown(cancel_futures=True)

    def __enter__(self) -> ChartPool:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


def _index(drawn: tuple[int, Chart | None]) -> int:
    return drawn[0]
