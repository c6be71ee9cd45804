"""VERP: a per-message envelope sender `bounces+<token>@domain` that names the message's issue
and subscriber, signed so a bounce maps to exactly one of them and cannot be forged.

The token is 18 bytes in base32 without padding (29 characters): the issue's and the
subscriber's ids (4 bytes each, big-endian) and an 80-bit HMAC-SHA256 over them and the list id,
with the key that signs unsubscribe links (kept apart from those by its own prefix). Base32 has
one case, so an MTA that lower-cases local parts keeps it readable.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct

from newsletter.config.bounces import VERP_TOKEN_CHARS

_IDS = struct.Struct(">II")
MAC_BYTES = 10
_PURPOSE = b"rotation-digest bounce\n"


def _mac(secret: bytes, list_id: str, ids: bytes) -> bytes:
    return hmac.new(secret, _PURPOSE + list_id.encode() + b"\n" + ids, hashlib.sha256).digest()[
        :MAC_BYTES
    ]


def make_bounce_token(secret: bytes, list_id: str, issue_id: int, subscriber_id: int) -> str:
    """The token of one (issue, subscriber) message on the list `list_id`."""
    ids = _IDS.pack(issue_id, subscriber_id)
    raw = ids + _mac(secret, list_id, ids)
    return base64.b32encode(raw).decode("ascii").rstrip("=").lower()


def verify_bounce_token(secret: bytes, list_id: str, token: str) -> tuple[int, int] | None:
    """(issue id, subscriber id) of a genuine token; None for a forged, foreign or bad one."""
    if len(token) != VERP_TOKEN_CHARS:
        return None
    try:
        raw = base64.b32decode(token.upper() + "=" * (-len(token) % 8))
    except (binascii.Error, ValueError):
        return None
    ids, mac = raw[: _IDS.size], raw[_IDS.size :]
    if not hmac.compare_digest(mac, _mac(secret, list_id, ids)):
        return None
    issue_id, subscriber_id = _IDS.unpack(ids)
    return issue_id, subscriber_id


def verp_address(bounce_address: str, token: str) -> str:
    """`local+token@domain` for the bounce address `local@domain`."""
    local, _, domain = bounce_address.rpartition("@")
    return f"{local}+{token}@{domain}"


def verp_token(bounce_address: str, address: str) -> str | None:
    """The token of `address` if it is the bounce address with a `+token` (any case)."""
    local, _, domain = bounce_address.lower().rpartition("@")
    found_local, _, found_domain = address.strip().strip("<>").lower().rpartition("@")
    prefix = f"{local}+"
    if found_domain != domain or not found_local.startswith(prefix):
        return None
    return found_local[len(prefix) :] or None
