"""When a run should stop early: a pattern across messages says the fault is not the readers'.

One refusal is about its recipient; a pattern is about the server, the sender or the message:
- `delivery.max_transient_failures` transient failures in a row across connections (a 421
  storm, a stalled server): pause the run, everything stays pending for the next one;
- `delivery.max_lost_replies` lost replies in a row (the server takes whole messages and never
  answers, so it may be storing mail it does not acknowledge): stop, and say so;
- `delivery.max_same_refusals` different recipients in a row refused with the same permanent
  reply (their addresses aside; bounces, which name a missing mailbox, do not count): stop, and
  undo those refusals, since nobody's mailbox can be blamed for what every mailbox is told;
- `delivery.max_run_minutes`: a run never goes on longer than that.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from newsletter.delivery.smtp import Verdict
from newsletter.models import without_addresses

if TYPE_CHECKING:
    from newsletter.config import DeliverySection
    from newsletter.delivery.smtp import SmtpFailure
    from newsletter.models import Delivery

AGAIN = "then run the same command again"


@dataclass(frozen=True, slots=True)
class Stop:
    """Why a run stopped early and what to do. A `fatal` stop ends the run with an error (a
    `local` one is this machine's, not the server's); `reopen` names the subscribers whose
    refusals in this run are undone."""

    reason: str
    advice: str
    fatal: bool
    local: bool = False
    reopen: tuple[int, ...] = ()


def _same_reply(failure: SmtpFailure) -> tuple[str, int | None, str]:
    """A refusal with the recipient's address taken out, so two recipients' replies compare."""
    return failure.stage, failure.code, without_addresses(failure.text)


class RunGuard:
    """Watches every outcome of one run (from all connections) for a pattern that stops it."""

    def __init__(self, policy: DeliverySection) -> None:
        self.policy = policy
        self._lock = threading.Lock()
        self._deadline = time.monotonic() + policy.max_run_minutes * 60
        self._transient = 0
        self._lost = 0
        self._refusal: tuple[str, int | None, str] | None = None
        self._refused: list[int] = []

    def sent(self) -> None:
        """A message went through: every streak ends."""
        with self._lock:
            self._transient = self._lost = 0
            self._refusal, self._refused = None, []

    def failed(self, job: Delivery, failure: SmtpFailure, verdict: Verdict) -> Stop | None:
        """Count one failure; the Stop it completes, if any."""
        with self._lock:
            if verdict in (Verdict.RETRY, Verdict.UNCERTAIN):
                self._refusal, self._refused = None, []
                self._transient += 1
                self._lost = self._lost + 1 if verdict is Verdict.UNCERTAIN else 0
                return self._transient_stop(failure)
            self._transient = self._lost = 0
            if verdict is Verdict.PERMANENT:
                return self._refusal_stop(job, failure)
            # A bounce (the mailbox does not exist) is the recipient's by definition: ten dead
            # addresses at one provider answer alike and must not stop the issue for everyone.
            self._refusal, self._refused = None, []
            return None

    def _transient_stop(self, failure: SmtpFailure) -> Stop | None:
        p = self.policy
        if self._lost >= p.max_lost_replies:
            return Stop(
                f"the server lost its reply to {self._lost} messages in a row after each was "
                f"sent whole ({failure}): it may be storing mail it does not acknowledge",
                f"Those go again on the next run with the same Message-ID; check the server, {AGAIN}",
                fatal=True,
            )
        if self._transient >= p.max_transient_failures:
            return Stop(
                f"paused after {self._transient} transient failures in a row, the last: {failure}",
                f"Every unsent message stays pending; when the server recovers, {AGAIN}",
                fatal=False,
            )
        return None

    def _refusal_stop(self, job: Delivery, failure: SmtpFailure) -> Stop | None:
        key = _same_reply(failure)
        if key != self._refusal:
            self._refusal, self._refused = key, []
        if job.subscriber_id not in self._refused:
            self._refused.append(job.subscriber_id)
        if len(self._refused) < self.policy.max_same_refusals:
            return None
        return Stop(
            f"{len(self._refused)} different recipients in a row were refused with the same "
            f"reply ({failure}): that is the server's or the message's doing, not theirs",
            f"None of them is marked; fix the cause (or raise delivery.max_same_refusals if "
            f"these readers really refuse it), {AGAIN}",
            fatal=True,
            reopen=tuple(self._refused),
        )

    def overdue(self) -> Stop | None:
        """The Stop of a run that reached delivery.max_run_minutes."""
        if time.monotonic() < self._deadline:
            return None
        return Stop(
            f"stopped after delivery.max_run_minutes ({self.policy.max_run_minutes:g})",
            f"Every unsent message stays pending; {AGAIN}",
            fatal=False,
        )
