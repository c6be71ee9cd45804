"""Signed, expiring confirmation links: HMAC-SHA256 over (list id, notice id, expiry).

A token is `<notice id>.<expiry, Unix seconds>.<signature, base64url>`: the address is not in
it (a link in a log names nobody), and a token cannot be stretched past its expiry or moved to
another notice or list without the key.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

from newsletter.mail.unsubscribe import SIGNATURE_BYTES, b64, unb64

_TOKEN = re.compile(r"^([0-9]{1,12})\.([0-9]{1,12})\.([A-Za-z0-9_\-]{1,64})$")


@dataclass(frozen=True, slots=True)
class ConfirmLink:
    """What a genuine confirmation token says."""

    notice_id: int
    expires: int
    """Unix seconds."""

    def expired(self, now: float) -> bool:
        return now >= self.expires


def _signature(secret: bytes, list_id: str, notice_id: int, expires: int) -> bytes:
    message = f"confirm\n{list_id}\n{notice_id}\n{expires}".encode()
    return hmac.new(secret, message, hashlib.sha256).digest()[:SIGNATURE_BYTES]


def make_confirm_token(secret: bytes, list_id: str, notice_id: int, expires: int) -> str:
    """The token of the confirmation notice `notice_id`, good until `expires` (Unix seconds)."""
    return f"{notice_id}.{expires}.{b64(_signature(secret, list_id, notice_id, expires))}"


def read_confirm_token(secret: bytes, list_id: str, token: str) -> ConfirmLink | None:
    """What a genuine token says (expired or not), or None for a forged or foreign one."""
    match = _TOKEN.match(token)
    if match is None:
        return None
    notice_id, expires = int(match.group(1)), int(match.group(2))
    try:
        signature = unb64(match.group(3))
    except ValueError:
        return None
    if hmac.compare_digest(signature, _signature(secret, list_id, notice_id, expires)):
        return ConfirmLink(notice_id, expires)
    return None
