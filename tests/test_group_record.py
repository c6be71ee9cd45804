"""The sender's group commit: each connection's result is written before it returns, once,
and results handed in while a write is under way share the next transaction."""

from __future__ import annotations

import threading

import pytest

from newsletter.delivery.recorder import GroupRecorder
from newsletter.models import LedgerStatus, Outcome


class SlowLedger:
    """Records batches; the first write waits until `release` is set, so others pile up."""

    def __init__(self, fail_batch: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.release = threading.Event()
        self.entered = threading.Event()
        self.fail_batch = fail_batch

    def record(self, outcomes):
        if not self.batches:
            self.entered.set()
            assert self.release.wait(30)
        self.batches.append([outcome.subscriber_id for outcome in outcomes])
        if len(self.batches) == self.fail_batch:
            raise OSError("disk full")


def outcome(n: int) -> Outcome:
    return Outcome(n, LedgerStatus.SENT, "250 accepted")


def run_callers(recorder: GroupRecorder, ledger: SlowLedger, ids: range) -> dict[int, str]:
    """The first id writes alone (and waits); the rest arrive during its write."""
    errors: dict[int, str] = {}

    def call(n: int) -> None:
        try:
            recorder.record(outcome(n))
        except OSError as err:
            errors[n] = str(err)

    first = threading.Thread(target=call, args=(ids[0],))
    first.start()
    assert ledger.entered.wait(30)
    rest = [threading.Thread(target=call, args=(n,)) for n in ids[1:]]
    for thread in rest:
        thread.start()
    while len(recorder._waiting) < len(rest):  # every later result handed in
        threading.Event().wait(0.001)
    ledger.release.set()
    for thread in [first, *rest]:
        thread.join(30)
    return errors


def test_results_handed_in_during_a_write_go_in_the_next_transaction_once_each():
    ledger = SlowLedger()
    recorder = GroupRecorder(ledger)
    assert run_callers(recorder, ledger, range(1, 5)) == {}
    assert ledger.batches[0] == [1]
    assert sorted(ledger.batches[1]) == [2, 3, 4]  # one transaction for three connections
    assert len(ledger.batches) == 2
    recorder.record(outcome(5))  # alone again: its own write, at once
    assert ledger.batches[2] == [5]


@pytest.mark.parametrize(("failing", "failed"), [(1, {1}), (2, {2, 3, 4})])
def test_a_failed_write_raises_in_every_caller_it_held_and_no_other(failing, failed):
    ledger = SlowLedger(fail_batch=failing)
    errors = run_callers(GroupRecorder(ledger), ledger, range(1, 5))
    assert set(errors) == failed
    assert set(errors.values()) == {"disk full"}


class Batches:
    """Records each batch's ids, at once."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def record(self, outcomes):
        self.batches.append(sorted(outcome.subscriber_id for outcome in outcomes))


def test_the_writer_waits_for_the_other_connections_results_to_share_its_transaction():
    ledger = Batches()
    recorder = GroupRecorder(ledger, gather=3, patience_s=30)
    first = threading.Thread(target=recorder.record, args=(outcome(1),))
    first.start()
    first.join(0.2)
    assert first.is_alive()  # gathering: one of three
    assert ledger.batches == []
    others = [threading.Thread(target=recorder.record, args=(outcome(n),)) for n in (2, 3)]
    for thread in others:
        thread.start()
    for thread in [first, *others]:
        thread.join(30)
    assert ledger.batches == [[1, 2, 3]]


def test_a_lone_result_is_written_once_the_patience_is_spent():
    ledger = Batches()
    recorder = GroupRecorder(ledger, gather=3, patience_s=0.05)
    recorder.record(outcome(7))  # no other connection finishes: written alone, not lost
    assert ledger.batches == [[7]]
