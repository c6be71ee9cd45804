"""MIME messages: one per subscriber, built from the shared rendered issue; no network.

Structure: multipart/alternative [ text/plain, multipart/related [ text/html, image/png ... ] ].
Only the To: header, the Message-ID and the unsubscribe links differ per subscriber. The
clock and the Message-ID come in as arguments so that output is reproducible. Header values
go through the stdlib's email policy, which refuses CR/LF, so content cannot inject headers.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import TYPE_CHECKING
from urllib.parse import quote

from newsletter.models import UNSUBSCRIBE_MARKER

if TYPE_CHECKING:
    from datetime import datetime

    from newsletter.models import RenderedIssue, Subscriber


@dataclass(frozen=True, slots=True)
class ListInfo:
    """The list-wide header values every message of an issue carries."""

    sender: str
    list_id: str
    list_name: str
    base_url: str
    unsubscribe_mailto: str
    reply_to: str | None = None

    @property
    def envelope_sender(self) -> str:
        """The bare address of the From: header, for SMTP's MAIL FROM."""
        return parseaddr(self.sender)[1]


def message_id(list_id: str, as_of: str, address: str) -> str:
    """A Message-ID fixed by (list, issue, subscriber), so a resent copy can be de-duplicated."""
    digest = hashlib.sha256(f"{list_id}\n{as_of}\n{address.lower()}".encode()).hexdigest()[:24]
    return f"<{as_of}.{digest}@{list_id}>"


def unsubscribe_url(info: ListInfo, token: str) -> str:
    """The one-click unsubscribe URL for a subscriber's token."""
    return f"{info.base_url}/u/{quote(token, safe='.')}"


def compose_message(
    rendered: RenderedIssue,
    subscriber: Subscriber,
    info: ListInfo,
    *,
    token: str,
    now: datetime,
) -> EmailMessage:
    """The complete message for one subscriber."""
    url = unsubscribe_url(info, token)
    msg = EmailMessage()
    msg["Subject"] = rendered.subject
    msg["From"] = info.sender
    msg["To"] = Address(display_name=subscriber.name, addr_spec=subscriber.email)
    if info.reply_to:
        msg["Reply-To"] = info.reply_to
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = message_id(info.list_id, rendered.as_of.isoformat(), subscriber.email)
    msg["List-Id"] = f"{info.list_name} <{info.list_id}>"
    msg["List-Unsubscribe"] = f"<{url}>, <mailto:{info.unsubscribe_mailto}?subject=unsubscribe>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg.set_content(rendered.text.replace(UNSUBSCRIBE_MARKER, url))
    msg.add_alternative(rendered.html.replace(UNSUBSCRIBE_MARKER, url), subtype="html")
    html_part = next(part for part in msg.iter_parts() if part.get_content_type() == "text/html")
    for chart in rendered.images:
        html_part.add_related(
            chart.png,
            maintype="image",
            subtype="png",
            cid=f"<{chart.content_id}>",
            filename=chart.filename,
            disposition="inline",
        )
    return msg
