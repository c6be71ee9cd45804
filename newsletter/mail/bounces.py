"""What one message in the bounce mailbox is: a bounce, a complaint, a mail to the unsubscribe
address, or nothing to act on. Pure: bytes in, a typed result out.

Bounces are detected with flufl.bounce (GNU Mailman's detectors: RFC 3464 reports and the
common non-standard formats). flufl tells a delay from a failure but not a full mailbox from a
missing one, so an RFC 3464 report's own Status and Action fields decide, read per recipient
with the stdlib email package; a non-standard bounce counts as hard only when its text says the
mailbox does not exist:

| the report says                                          | severity | what it does          |
|----------------------------------------------------------|----------|-----------------------|
| Action: failed, Status 5.1.x (no such mailbox or domain) | hard     | the subscriber bounced|
| Action: failed, Status 5.7.x (policy, spam, DMARC)       | policy   | recorded: the sender's|
|                                                          |          | problem, as at SMTP   |
| Action: failed, any other 5.x.x (5.2.2 full, 5.4.x ...)  | soft     | counted               |
| Action: failed, Status 4.x.x (the MTA gave up retrying)  | soft     | counted               |
| Status missing or X.0.0: the Diagnostic-Code's own code; | hard if  | as above              |
| none there: "user unknown", "does not exist" ...         | so, else |                       |
|                                                          | soft     |                       |
| Action: delayed, delivered, relayed, expanded            | -        | recorded, nothing done|
| non-standard, flufl says temporary                       | soft     | counted               |
| non-standard, flufl says permanent: the notice's first   | as for a | as above              |
| enhanced code, or (none) the words above                 | Status   |                       |

Counted soft bounces bounce a subscriber at `bounces.soft_limit` within `bounces.soft_days`
(app/bounces.py). A feedback report (ARF, RFC 5965) of type abuse is a complaint; other types
are recorded. A message to `newsletter.unsubscribe_mailto` that is neither is an unsubscribe
by its From address. Which subscriber and issue a bounce or complaint is about comes only from
the VERP token (mail/verp.py) in the address it came back to; the token is returned as found
and verified by the caller.
"""

from __future__ import annotations

import email
import re
from dataclasses import dataclass
from email.message import Message
from enum import StrEnum

from flufl.bounce import all_failures

from newsletter.mail import reports
from newsletter.mail.reports import addresses, one_line
from newsletter.mail.verp import verp_token


class Severity(StrEnum):
    """How a failure weighs (the table in the module docstring)."""

    HARD = "hard"
    SOFT = "soft"
    POLICY = "policy"


@dataclass(frozen=True, slots=True)
class Failure:
    """One recipient's failure in a bounce."""

    recipients: tuple[str, ...]
    severity: Severity
    status: str
    detail: str


@dataclass(frozen=True, slots=True)
class Bounce:
    """A bounce: each failed recipient it reports, and the token of the address it came to."""

    failures: tuple[Failure, ...]
    token: str | None
    report: str
    """What kind of report it was: "RFC 3464" or the non-standard format flufl found."""

    def failure_for(self, address: str) -> Failure | None:
        """The failure reported for `address` (None: the bounce is about someone else)."""
        key = address.lower()
        return next((found for found in self.failures if key in found.recipients), None)


@dataclass(frozen=True, slots=True)
class Complaint:
    """An ARF report of type abuse: the reader marked our message as spam."""

    token: str | None
    recipient: str
    """Original-Rcpt-To as reported ('' when the provider leaves it out or redacts it)."""
    detail: str


@dataclass(frozen=True, slots=True)
class MailtoUnsubscribe:
    """A mail to the unsubscribe address; `address` is its one From address, as written."""

    address: str


@dataclass(frozen=True, slots=True)
class Unrecognised:
    """Nothing to act on, and why."""

    reason: str


Inbound = Bounce | Complaint | MailtoUnsubscribe | Unrecognised

_ENHANCED = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
_GONE = re.compile(
    r"user unknown|unknown user|no such (?:user|recipient|mailbox|address)|unknown recipient|"
    r"(?:recipient|mailbox|user|address) (?:not found|unknown)|invalid recipient|does ?n[o']t "
    r"exist|unrouteable address|RecipientNotFound",
    re.IGNORECASE,
)
"""The words of a notice that says the mailbox is not there."""
ENVELOPE_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To", "Cc")
"""Where a delivered message names the address it came to, most reliable first."""


def severity(status: str, text: str) -> Severity:
    """How a failure with enhanced `status` (maybe '') and the words `text` weighs."""
    klass, subject, detail = [*status.split("."), "", "", ""][:3]
    if klass == "5" and subject == "1":
        return Severity.HARD
    if klass == "5" and subject == "7":
        return Severity.POLICY
    if klass == "5" and (subject, detail) != ("0", "0"):
        return Severity.SOFT
    if klass in ("", "5") and _GONE.search(text):
        return Severity.HARD
    return Severity.SOFT


def _code(text: str) -> str:
    """The first RFC 3463 enhanced status code of class 4 or 5 in `text` ('' if none)."""
    found = next((m for m in _ENHANCED.finditer(text) if m.group(1) in "45"), None)
    return ".".join(found.groups()) if found else ""


def _dsn_failure(block: reports.RecipientStatus) -> Failure:
    status = _code(block.status)
    if not status or status.endswith(".0.0"):
        status = _code(block.diagnostic) or status
    weight = severity(status, block.diagnostic)
    return Failure(block.recipients, weight, status, one_line(f"{status} {block.diagnostic}"))


def _from_dsn(blocks: list[reports.RecipientStatus], token: str | None) -> Inbound:
    failures = tuple(
        _dsn_failure(block) for block in blocks if block.action.startswith(("failed", "error"))
    )
    if failures:
        return Bounce(failures, token, "RFC 3464")
    actions = ", ".join(sorted({block.action for block in blocks})) or "none"
    return Unrecognised(f"a delivery report without a failure (Action: {actions}): nothing to do")


def _line_with(text: str, needle: str) -> str:
    for line in text.splitlines():
        if needle and needle.lower() in line.lower():
            return one_line(line)
    return ""


def _from_notice(msg: Message, token: str | None) -> Inbound | None:
    """A non-standard bounce flufl.bounce recognises, or None. Every bounce has a From (its
    MAILER-DAEMON), and some of flufl's detectors fail on a message without one."""
    if not addresses([str(value) for value in msg.get_all("From", [])]):
        return None
    temporary, permanent = all_failures(msg)
    if not (temporary or permanent):
        return None
    text = reports.notice_text(msg)
    status = _code(text)
    gone = _GONE.search(text)
    detail = _line_with(text, status) or _line_with(text, gone.group(0) if gone else "")
    failures = [
        Failure(
            (one_line(address.decode("ascii", "replace")).lower(),),
            severity(status, text) if address in permanent else Severity.SOFT,
            status,
            detail,
        )
        for address in sorted(permanent | temporary)
    ]
    return Bounce(tuple(failures), token, "non-standard (flufl.bounce)")


def _token(msg: Message, bounce_address: str | None, extra: list[str]) -> str | None:
    """The VERP token of the first address (envelope headers, then `extra`) that carries one."""
    if bounce_address is None:
        return None
    values = [str(value) for name in ENVELOPE_HEADERS for value in msg.get_all(name, [])]
    for address in addresses(values + extra):
        token = verp_token(bounce_address, address)
        if token:
            return token
    return None


def _returned_sender(msg: Message) -> list[str]:
    returned = reports.returned_headers(msg)
    return [str(value) for value in returned.get_all("Return-Path", [])] if returned else []


def _complaint(fields: Message, msg: Message, bounce_address: str | None) -> Inbound:
    kind = one_line(fields.get("Feedback-Type", ""), 40).lower()
    if kind != "abuse":
        return Unrecognised(f"a feedback report of type '{kind or 'none'}', not a complaint")
    extra = [str(value) for value in fields.get_all("Original-Mail-From", [])]
    token = _token(msg, bounce_address, extra + _returned_sender(msg))
    recipient = reports.typed_address(str(fields.get("Original-Rcpt-To", "")))
    agent = one_line(fields.get("User-Agent", ""), 80)
    return Complaint(token, recipient, one_line(f"abuse report by {agent or 'a provider'}"))


def _mailto(msg: Message, mailto: str) -> Inbound | None:
    values = [str(value) for name in ENVELOPE_HEADERS for value in msg.get_all(name, [])]
    if mailto.lower() not in addresses(values):
        return None
    senders = addresses([str(value) for value in msg.get_all("From", [])])
    if len(senders) != 1:
        return Unrecognised(f"a mail to {mailto} without exactly one From address")
    return MailtoUnsubscribe(senders[0])


def _classify(msg: Message, bounce_address: str | None, mailto: str) -> Inbound:
    fields = reports.feedback_fields(msg)
    if fields is not None:
        return _complaint(fields, msg, bounce_address)
    blocks = reports.delivery_statuses(msg)
    if blocks is not None:
        return _from_dsn(blocks, _token(msg, bounce_address, _returned_sender(msg)))
    unsubscribe = _mailto(msg, mailto)
    if unsubscribe is not None:
        return unsubscribe
    notice = _from_notice(msg, _token(msg, bounce_address, _returned_sender(msg)))
    if notice is not None:
        return notice
    return Unrecognised("not a bounce, a complaint or a mail to the unsubscribe address")


def classify(data: bytes, *, bounce_address: str | None, unsubscribe_mailto: str) -> Inbound:
    """What the message `data` is (the table in the module docstring). The caller verifies
    the token; a message that does not parse is Unrecognised, never an exception."""
    try:
        msg = email.message_from_bytes(data)
        if not msg.keys():
            return Unrecognised("no mail headers: not a mail message")
        return _classify(msg, bounce_address, unsubscribe_mailto)
    except Exception as err:  # hostile input must not stop the mailbox; the reason is kept
        return Unrecognised(f"cannot be parsed ({type(err).__name__}: {one_line(err, 120)})")
