"""The parts of a returned message that classification reads, with the stdlib email package:
the delivery-status fields of an RFC 3464 report, the fields of an ARF feedback report (RFC
5965), the human-readable notice, and the headers of the message that came back.

Everything here takes what the sender of the report wrote and never trusts it beyond reading:
values are unfolded to one line, addresses lower-cased, and a part that does not parse is left
out rather than guessed at.
"""

from __future__ import annotations

import email
import re
from dataclasses import dataclass
from email.message import Message
from email.utils import getaddresses
from typing import TYPE_CHECKING

from newsletter.models import CONTROL

if TYPE_CHECKING:
    from collections.abc import Iterator

DSN_TYPES = ("message/delivery-status", "message/global-delivery-status")
RETURNED_TYPES = ("message/rfc822", "message/global")
RETURNED_HEADER_TYPES = ("text/rfc822-headers", "text/global-headers")
FEEDBACK_TYPE = "message/feedback-report"
_COPY = re.compile(
    r"^[ \t]*-{3,}.*\b(?:copy of|original|returned|below)\b.*message.*$", re.IGNORECASE | re.M
)
"""The line where a plain-text notice (Exim's, say) starts quoting the message it returns."""
MAX_DETAIL = 300


def one_line(value: object, limit: int = MAX_DETAIL) -> str:
    """A header value or text as one line without control characters, at most `limit` long."""
    return " ".join(CONTROL.sub(" ", str(value or "")).split())[:limit]


def addresses(values: list[str]) -> tuple[str, ...]:
    """The addr-specs in header values, lower-cased, in order, without repeats (and without
    control characters, which could reach a terminal)."""
    found = [one_line(address).lower() for _, address in getaddresses(values) if "@" in address]
    return tuple(dict.fromkeys(found))


def typed_address(value: str) -> str:
    """The address of a DSN/ARF field `type; address` (`rfc822; a@b`, or a bare `<a@b>`)."""
    _, _, address = value.rpartition(";")
    return one_line(address.strip().strip("<>").strip()).lower()


@dataclass(frozen=True, slots=True)
class RecipientStatus:
    """One per-recipient block of a delivery report."""

    recipients: tuple[str, ...]
    """Original-Recipient (when given) and Final-Recipient."""
    action: str
    status: str
    diagnostic: str


def _blocks(part: Message) -> list[Message]:
    """The header blocks of a delivery-status part (the email package parses them as a list;
    a part it left as text is split at its blank lines)."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [block for block in payload if isinstance(block, Message)]
    text = decoded_text(part)
    return [email.message_from_string(chunk) for chunk in re.split(r"\r?\n[ \t]*\r?\n", text)]


def delivery_statuses(msg: Message) -> list[RecipientStatus] | None:
    """Every per-recipient block of the message's delivery-status parts; None: it has none."""
    parts = [part for part in msg.walk() if part.get_content_type() in DSN_TYPES]
    if not parts:
        return None
    found = []
    for part in parts:
        for block in _blocks(part):
            action = one_line(block.get("Action", "")).lower()
            if not action:
                continue  # the per-message block (Reporting-MTA, Arrival-Date)
            recipients = [
                typed_address(str(value))
                for name in ("Original-Recipient", "X-Actual-Recipient", "Final-Recipient")
                for value in block.get_all(name, [])
            ]
            found.append(
                RecipientStatus(
                    tuple(dict.fromkeys(address for address in recipients if "@" in address)),
                    action.split()[0] if action else "",
                    one_line(block.get("Status", ""), 40),
                    one_line(block.get("Diagnostic-Code", "")),
                )
            )
    return found


def feedback_fields(msg: Message) -> Message | None:
    """The fields of an ARF feedback report (Feedback-Type, Original-Mail-From, ...); None
    unless the message is one (multipart/report; report-type=feedback-report)."""
    report_type = str(msg.get_param("report-type", "") or "").lower()
    if msg.get_content_type() != "multipart/report" or report_type != "feedback-report":
        return None
    for part in msg.walk():
        if part.get_content_type() == FEEDBACK_TYPE:
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
            return email.message_from_string(decoded_text(part))
    return Message()


def decoded_text(part: Message) -> str:
    """A leaf part's text, its transfer encoding and charset undone (bad bytes replaced)."""
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        return str(part.get_payload() or "")
    try:
        return data.decode(part.get_content_charset() or "utf-8", "replace")
    except LookupError:
        return data.decode("utf-8", "replace")


def _notices(part: Message) -> Iterator[str]:
    """The text/plain parts of the report itself, not of any message it carries."""
    if part.get_content_maintype() == "message":
        return
    if part.is_multipart():
        for sub in part.get_payload():
            if isinstance(sub, Message):
                yield from _notices(sub)
    elif part.get_content_type() == "text/plain":
        yield decoded_text(part)


def notice_text(msg: Message) -> str:
    """What the report says to a person, without the copy of our message it returns."""
    return "\n".join(_COPY.split(text, maxsplit=1)[0] for text in _notices(msg))


def returned_headers(msg: Message) -> Message | None:
    """The headers of the message that came back: a message/rfc822 or text/rfc822-headers
    part, or the copy a plain-text notice quotes after its separator line."""
    for part in msg.walk():
        kind = part.get_content_type()
        if kind in RETURNED_TYPES and part.is_multipart():
            inner = part.get_payload(0)
            return inner if isinstance(inner, Message) else None
        if kind in RETURNED_HEADER_TYPES:
            return email.message_from_string(decoded_text(part).lstrip())
    if msg.is_multipart() or msg.get_content_type() != "text/plain":
        return None
    quoted = _COPY.split(decoded_text(msg), maxsplit=1)
    return email.message_from_string(quoted[-1].lstrip()) if len(quoted) > 1 else None
