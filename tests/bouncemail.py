"""Bounce-mailbox helpers for tests: the fixtures in tests/fixtures/bounces/ (shaped like what
Postfix, Exim, Gmail, Microsoft 365 and Yahoo send), their VERP address filled in, and a real
Maildir on disk to deliver them to with a chosen arrival time.

The VERP token is computed here from its specification (README: Bounces and complaints), not
by the code under test: 4-byte issue id, 4-byte subscriber id, the first 10 bytes of
HMAC-SHA256(key, "rotation-digest bounce\\n" + list id + "\\n" + the ids), base32, lower case.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import mailbox
import os
import struct
from datetime import datetime
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "bounces"
PLACEHOLDER = b"VERPTOKEN"
LIST_ID = "rotation-digest.example.com"
BOUNCES = "bounces@example.com"


def token(key: bytes, issue_id: int, subscriber_id: int, list_id: str = LIST_ID) -> str:
    ids = struct.pack(">II", issue_id, subscriber_id)
    mac = hmac.new(key, b"rotation-digest bounce\n" + list_id.encode() + b"\n" + ids, "sha256")
    return base64.b32encode(ids + mac.digest()[:10]).decode().rstrip("=").lower()


def fixture(name: str, verp_token: str = "", **replace: str) -> bytes:
    """A fixture's bytes with its VERP token (and any other text) filled in."""
    data = (FIXTURES / name).read_bytes().replace(PLACEHOLDER, verp_token.encode())
    for old, new in replace.items():
        data = data.replace(old.encode(), new.encode())
    return data


def deliver(folder: Path, data: bytes, arrived: datetime | None = None) -> str:
    """File `data` into the Maildir `folder` (made if missing) as an MTA would, arriving at
    `arrived` (the file's time, which is a Maildir's delivery time); returns its key."""
    box = mailbox.Maildir(folder, create=True)
    key = box.add(data)
    if arrived is not None:
        stamp = arrived.timestamp()
        (path,) = folder.glob(f"new/{key}*")
        os.utime(path, (stamp, stamp))
    return key


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
