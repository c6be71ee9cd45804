"""Signed unsubscribe tokens: HMAC-SHA256 over (list id, address) with a secret from the env.

A token is `<address, base64url>.<signature, base64url>`, so the endpoint that receives it can
tell who asks without a lookup and can refuse a token that was tampered with or made for
another list.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

SIGNATURE_BYTES = 16


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: bytes, list_id: str, address: str) -> bytes:
    message = f"{list_id}\n{address.lower()}".encode()
    return hmac.new(secret, message, hashlib.sha256).digest()[:SIGNATURE_BYTES]


def make_token(secret: bytes, list_id: str, address: str) -> str:
    """The unsubscribe token of `address` on the list `list_id`."""
    return f"{b64(address.encode())}.{b64(_signature(secret, list_id, address))}"


def verify_token(secret: bytes, list_id: str, token: str) -> str | None:
    """The address a genuine token was made for, or None for a forged or foreign token."""
    try:
        encoded_address, encoded_signature = token.split(".")
        address = unb64(encoded_address).decode()
        signature = unb64(encoded_signature)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    if hmac.compare_digest(signature, _signature(secret, list_id, address)):
        return address
    return None
