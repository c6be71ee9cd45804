"""MIME messages, one per subscriber, assembled from parts encoded once per issue; no network.

Structure: multipart/alternative [ text/plain, multipart/related [ text/html, image/png ... ] ].
The images are base64-encoded once and the list-wide headers folded once; per subscriber only
To, Message-ID, List-Unsubscribe and the two bodies (which carry the unsubscribe link) are
encoded. The text is quoted-printable, the HTML and images base64, so the boundaries (which
start with '==') never occur inside a part, and no line of a message starts with '.' (a leading
dot in the text is written as =2E): the bytes go out over SMTP without dot-stuffing. Header
values are checked for CR/LF, folded, and RFC 2047-encoded where needed, so content cannot inject
a header.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from email.utils import format_datetime, formataddr, parseaddr
from typing import TYPE_CHECKING
from urllib.parse import quote

from newsletter.models import UNSUBSCRIBE_MARKER

if TYPE_CHECKING:
    from datetime import datetime

    from newsletter.config import NewsletterSection
    from newsletter.models import RenderedIssue, Subscriber

CRLF = "\r\n"
_LEADING_DOT = re.compile(rb"^\.", re.MULTILINE)
TEST_PREFIX = "[TEST] "
BASE64_CHUNK = 57
_MARKER = UNSUBSCRIBE_MARKER.encode()
"""Bytes that base64 encodes into one 76-character line."""


def message_id(list_id: str, as_of: str, address: str) -> str:
    """A Message-ID fixed by (list, issue, subscriber), so a resent copy can be de-duplicated."""
    digest = hashlib.sha256(f"{list_id}\n{as_of}\n{address.lower()}".encode()).hexdigest()[:24]
    return f"<{as_of}.{digest}@{list_id}>"


def unsubscribe_url(info: NewsletterSection, token: str) -> str:
    """The one-click unsubscribe URL for a subscriber's token."""
    return f"{info.base_url}/u/{quote(token, safe='.')}"


MAX_LINE = 78
ENCODED_WORD_BYTES = 45
"""UTF-8 bytes per RFC 2047 encoded word: 45 bytes make 60 base64 characters, within 75."""


def _check(name: str, value: str) -> None:
    if "\r" in value or "\n" in value:
        raise ValueError(f"{name} header values may not contain CR or LF: {value!r}")


def _encoded_words(text: str) -> str:
    """Non-ASCII text as RFC 2047 base64 encoded words, never splitting a character."""
    words, chunk = [], ""
    for char in text:
        if len((chunk + char).encode()) > ENCODED_WORD_BYTES:
            words.append(chunk)
            chunk = ""
        chunk += char
    words.append(chunk)
    return " ".join(f"=?utf-8?b?{base64.b64encode(word.encode()).decode()}?=" for word in words)


def _fold(line: str) -> str:
    """Fold an ASCII header line at spaces to at most 78 characters where it can (RFC 5322).

    The value's first word stays beside the field name: a value that starts on a continuation
    line is read with a leading space by some parsers.
    """
    lines, current = [], ""
    for index, word in enumerate(line.split(" ")):
        if index > 1 and len(current) + 1 + len(word) > MAX_LINE:
            lines.append(current)
            current = " " + word
        else:
            current = f"{current} {word}" if current else word
    lines.append(current)
    return CRLF.join(lines) + CRLF


def _header(name: str, value: str) -> str:
    """An unstructured header (Subject and the like), encoded where needed and folded."""
    _check(name, value)
    return _fold(f"{name}: {value if value.isascii() else _encoded_words(value)}")


def _address_header(name: str, display_name: str, address: str) -> str:
    """A mailbox header such as To: or From:, the display name quoted or encoded as needed."""
    _check(name, display_name)
    _check(name, address)
    if display_name and not display_name.isascii():
        return _fold(f"{name}: {_encoded_words(display_name)} <{address}>")
    return _fold(f"{name}: {formataddr((display_name, address))}")


def _list_unsubscribe(info: NewsletterSection, url: str) -> str:
    """RFC 2369's header: the one-click URL, then the mailto alternative."""
    return _header(
        "List-Unsubscribe", f"<{url}>, <mailto:{info.unsubscribe_mailto}?subject=unsubscribe>"
    )


def _quoted_printable(text: str) -> bytes:
    """QP of CRLF-ended text, with a line-leading '.' encoded so SMTP needs no dot-stuffing."""
    return _LEADING_DOT.sub(b"=2E", binascii.b2a_qp(text.encode(), istext=True))


def _base64_lines(data: bytes) -> bytes:
    """Base64 in 76-character lines ending in CRLF."""
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


class MessageFactory:
    """Builds each subscriber's message as bytes ready for SMTP, sharing what all have in common."""

    def __init__(
        self,
        rendered: RenderedIssue,
        info: NewsletterSection,
        now: datetime,
        *,
        test: bool = False,
    ) -> None:
        self.info = info
        text = rendered.text.replace("\r\n", "\n").replace("\n", CRLF)
        html = rendered.html.replace("\r\n", "\n").replace("\n", CRLF).encode()
        # Only the unsubscribe link differs between subscribers, near the end of each part:
        # everything before it is encoded once here (QP is line by line, base64 57 bytes to a
        # line), and build() encodes only the rest.
        marker = text.find(UNSUBSCRIBE_MARKER)
        cut = len(text) if marker < 0 else text.rfind("\n", 0, marker) + 1  # its line's start
        self._text_head, self._text_rest = _quoted_printable(text[:cut]), text[cut:]
        marker = html.find(_MARKER)
        cut = (len(html) if marker < 0 else marker) // BASE64_CHUNK * BASE64_CHUNK
        self._html_head, self._html_rest = _base64_lines(html[:cut]), html[cut:]
        subject = (TEST_PREFIX if test else "") + rendered.subject
        digest = hashlib.sha256(rendered.html.encode()).hexdigest()[:16]
        self._alternative = f"==rd-alt-{digest}"
        self._related = f"==rd-rel-{digest}"
        shared = [
            _address_header("From", *parseaddr(info.from_address)),
            _header("Subject", subject),
            _header("Date", format_datetime(now)),
            _address_header("List-Id", info.name, info.list_id),
            _header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ]
        if info.reply_to:
            shared.append(_address_header("Reply-To", *parseaddr(info.reply_to)))
        shared += [
            "MIME-Version: 1.0\r\n",
            f'Content-Type: multipart/alternative; boundary="{self._alternative}"\r\n',
        ]
        self._shared_headers = "".join(shared).encode()
        images = b"".join(
            (
                f"--{self._related}\r\n"
                "Content-Type: image/png\r\n"
                "Content-Transfer-Encoding: base64\r\n"
                f"Content-ID: <{chart.content_id}>\r\n"
                f'Content-Disposition: inline; filename="{chart.filename}"\r\n\r\n'
            ).encode()
            + _base64_lines(chart.png)
            for chart in rendered.images
        )
        self._tail = images + f"--{self._related}--\r\n\r\n--{self._alternative}--\r\n".encode()

    def build(self, subscriber: Subscriber, msgid: str, token: str) -> bytes:
        """The complete message for one subscriber, CRLF line endings throughout."""
        url = unsubscribe_url(self.info, token)
        headers = (
            _address_header("To", subscriber.name, subscriber.email)
            + _header("Message-ID", msgid)
            + _list_unsubscribe(self.info, url)
        ).encode()
        text = self._text_head + _quoted_printable(self._text_rest.replace(UNSUBSCRIBE_MARKER, url))
        html = self._html_head + _base64_lines(self._html_rest.replace(_MARKER, url.encode()))
        return b"".join(
            (
                headers,
                self._shared_headers,
                b"\r\n",
                f"--{self._alternative}\r\n".encode(),
                b'Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n',
                text,
                b"\r\n",
                f"--{self._alternative}\r\n".encode(),
                f'Content-Type: multipart/related; boundary="{self._related}"; type="text/html"\r\n\r\n'.encode(),
                f"--{self._related}\r\n".encode(),
                b'Content-Type: text/html; charset="utf-8"\r\nContent-Transfer-Encoding: base64\r\n\r\n',
                html,
                self._tail,
            )
        )


def compose_notice(
    info: NewsletterSection,
    subscriber: Subscriber,
    *,
    subject: str,
    text: str,
    html: str,
    msgid: str,
    now: datetime,
    unsubscribe: str | None = None,
) -> bytes:
    """A message to one person about their subscription (a confirmation, a welcome): text and
    HTML alternatives; with `unsubscribe` (a URL) the list's unsubscribe headers too.
    Auto-Submitted keeps auto-responders from answering it (RFC 3834)."""
    headers = [
        _address_header("From", *parseaddr(info.from_address)),
        _address_header("To", subscriber.name, subscriber.email),
        _header("Subject", subject),
        _header("Date", format_datetime(now)),
        _header("Message-ID", msgid),
        _header("Auto-Submitted", "auto-generated"),
    ]
    if info.reply_to:
        headers.append(_address_header("Reply-To", *parseaddr(info.reply_to)))
    if unsubscribe:
        headers += [
            _address_header("List-Id", info.name, info.list_id),
            _list_unsubscribe(info, unsubscribe),
            _header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ]
    boundary = "==rd-notice-" + hashlib.sha256(msgid.encode()).hexdigest()[:16]
    body = CRLF.join(
        (
            "MIME-Version: 1.0",
            f'Content-Type: multipart/alternative; boundary="{boundary}"',
            "",
            f"--{boundary}",
            'Content-Type: text/plain; charset="utf-8"',
            "Content-Transfer-Encoding: quoted-printable",
            "",
            "",
        )
    ).encode()
    text_part = _quoted_printable(text.replace("\r\n", "\n").replace("\n", CRLF))
    html_head = CRLF.join(
        (
            "",
            f"--{boundary}",
            'Content-Type: text/html; charset="utf-8"',
            "Content-Transfer-Encoding: base64",
            "",
            "",
        )
    ).encode()
    html_part = _base64_lines(html.replace("\r\n", "\n").replace("\n", CRLF).encode())
    end = f"--{boundary}--\r\n".encode()
    return "".join(headers).encode() + body + text_part + html_head + html_part + end
