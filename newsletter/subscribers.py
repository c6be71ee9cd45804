"""The subscriber list: a CSV file with `email,name` columns, validated row by row.

Addresses are checked strictly enough that nothing reaching a To: header can inject another
header (no whitespace, control characters, commas or angle brackets) and normalised (trimmed,
domain lower-cased) so the same person is not mailed twice.
"""

from __future__ import annotations

import csv
import logging
import re
from typing import TYPE_CHECKING

from newsletter.errors import SubscriberError
from newsletter.models import Subscriber

if TYPE_CHECKING:
    from pathlib import Path

logger = logging.getLogger(__name__)

_LOCAL = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+"
_DOMAIN = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
_ADDRESS = re.compile(rf"^{_LOCAL}@{_DOMAIN}$")
_NAME_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f]")
MAX_ADDRESS_LENGTH = 254


def normalise_address(raw: str) -> str | None:
    """The address trimmed with its domain lower-cased, or None if it is not a plain address."""
    address = raw.strip()
    if len(address) > MAX_ADDRESS_LENGTH or not _ADDRESS.match(address):
        return None
    local, domain = address.rsplit("@", 1)
    if local.startswith(".") or local.endswith(".") or ".." in local:
        return None
    return f"{local}@{domain.lower()}"


def load_subscribers(path: Path) -> list[Subscriber]:
    """Every subscriber in `path`; a bad row raises SubscriberError naming file and line."""
    try:
        handle = path.open(encoding="utf-8", newline="")
    except OSError as err:
        raise SubscriberError(
            f"cannot read subscriber list {path}: {err.strerror} (check subscribers.file in config.yaml)"
        ) from err
    subscribers: list[Subscriber] = []
    seen: set[str] = set()
    with handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or "email" not in reader.fieldnames:
            raise SubscriberError(
                f"{path}: line 1: header must name an 'email' column (and optionally 'name')"
            )
        for row in reader:
            line = reader.line_num
            raw_email = row.get("email") or ""
            address = normalise_address(raw_email)
            if address is None:
                raise SubscriberError(
                    f"{path}: line {line}: '{raw_email}' is not a valid email address"
                )
            name = (row.get("name") or "").strip()
            if _NAME_FORBIDDEN.search(name):
                raise SubscriberError(f"{path}: line {line}: the name contains control characters")
            key = address.lower()
            if key in seen:
                logger.warning("%s: line %d: duplicate address skipped", path, line)
                continue
            seen.add(key)
            subscribers.append(Subscriber(email=address, name=name))
    return subscribers
