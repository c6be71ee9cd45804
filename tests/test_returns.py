"""The claiming thread sleeps until few enough jobs are out to claim more, not for each result."""

from __future__ import annotations

import threading

from newsletter.delivery.returns import Returns
from newsletter.models import Delivery, LedgerStatus, Outcome


def _job(n: int) -> tuple[Delivery, Outcome]:
    return (
        Delivery(n, f"r{n}@example.com", "", f"<{n}@example.com>", 1),
        Outcome(n, LedgerStatus.SENT, "250 accepted"),
    )


def test_a_result_above_the_low_mark_does_not_wake_the_taker_and_the_one_at_it_does():
    returns = Returns(low=2)
    returns.hand_out(4)
    taken: list[list[int]] = []
    taker = threading.Thread(
        target=lambda: taken.append([job.subscriber_id for job, _ in returns.take(timeout=30)])
    )
    taker.start()
    returns.put(*_job(1))  # three still out: above the mark
    taker.join(0.2)
    assert taker.is_alive()
    assert returns.out == 4  # handed back but not yet taken: still counted as out
    returns.put(*_job(2))  # two out: the mark
    taker.join(30)
    assert not taker.is_alive()
    assert taken == [[1, 2]]
    assert returns.out == 2


def test_take_without_a_timeout_empties_what_came_back_at_once():
    returns = Returns(low=0)
    returns.hand_out(3)
    returns.put(*_job(7))
    assert [job.subscriber_id for job, _ in returns.take()] == [7]
    assert returns.take() == []
    assert returns.out == 2


def test_a_timeout_hands_over_what_came_back_even_above_the_mark():
    returns = Returns(low=0)
    returns.hand_out(2)
    returns.put(*_job(5))
    assert [job.subscriber_id for job, _ in returns.take(timeout=0.05)] == [5]
