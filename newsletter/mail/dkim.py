"""DKIM signatures (RFC 6376) over the exact bytes that go out, made with dkimpy.

A message is signed last, when it is complete: the DKIM-Signature header goes in front of the
bytes and nothing changes them afterwards (compose already folded and encoded every header, with
CRLF line endings as SMTP sends them), so a receiver hashes what was signed. relaxed/relaxed
canonicalisation survives what relays commonly do (re-folding headers, changing whitespace).
dkimpy folds the signature with continuation lines that start with a space, so compose's
promise holds: no line starts with '.', and SMTP sends the bytes without dot-stuffing.

The signature covers each of SIGNED_HEADERS that the message has, in that order; a header the
message lacks (Reply-To when none is set) is left out of h=. RFC 8058 asks for List-Unsubscribe
and List-Unsubscribe-Post to be signed, or receivers do not offer one-click unsubscribe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import dkim

if TYPE_CHECKING:
    from newsletter.config import DkimKey

SIGNED_HEADERS = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Reply-To",
    "MIME-Version",
    "Content-Type",
)
"""The issue's list (RFC 8058's two included), then the headers that would let a relay send
replies elsewhere or read the body as other parts if changed unsigned."""
CANONICALIZATION = (b"relaxed", b"relaxed")
TXT_STRING = 255
"""The longest character-string in a TXT record (RFC 1035 3.3); longer values are split."""


def header_names(message: bytes) -> set[str]:
    """The lower-case names of the header fields in `message`'s header block."""
    end = message.find(b"\r\n\r\n")
    head = message if end < 0 else message[:end]
    return {
        line.split(b":", 1)[0].strip().decode("ascii", "replace").lower()
        for line in head.split(b"\r\n")
        if line and line[:1] not in (b" ", b"\t")
    }


@dataclass(frozen=True, slots=True)
class DkimSigner:
    """Signs messages as `domain` (d=) with the key published under `selector` (s=); made once
    per run and used for every message the run sends."""

    domain: str
    selector: str
    key: DkimKey

    def sign(self, message: bytes) -> bytes:
        """`message` (complete, CRLF line endings) with its DKIM-Signature header in front."""
        present = header_names(message)
        signed = [name.lower().encode() for name in SIGNED_HEADERS if name.lower() in present]
        signature: bytes = dkim.sign(
            message,
            self.selector.encode(),
            self.domain.encode(),
            self.key.private_pem,
            canonicalize=CANONICALIZATION,
            include_headers=signed,
            linesep=b"\r\n",
        )
        return signature + message

    @property
    def record_name(self) -> str:
        """Where receivers look the public key up."""
        return f"{self.selector}._domainkey.{self.domain}"

    @property
    def record_value(self) -> str:
        """The TXT record's value: the public key, as RFC 6376 3.6.1 tags it."""
        return f"v=DKIM1; k=rsa; p={self.key.public_key_b64}"

    def dns_record(self) -> str:
        """The TXT record to publish, in zone-file form, its value split into quoted strings of
        at most 255 characters (receivers join them)."""
        value = self.record_value
        strings = [value[start : start + TXT_STRING] for start in range(0, len(value), TXT_STRING)]
        return f"{self.record_name} TXT " + " ".join(f'"{part}"' for part in strings)
