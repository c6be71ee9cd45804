"""Subscriber addresses: validation (email-validator, no DNS) and the CSV import/export format.

A CSV has an `email` column and optionally `name`. Reading never stops at a bad row: each bad
row is reported with its line number and reason, and the good rows are returned.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from email_validator import EmailNotValidError, validate_email

from newsletter.errors import SubscriberError
from newsletter.models import CONTROL, Subscriber, SubscriberStatus, address_key

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

MAX_NAME_LENGTH = 200


def normalise_address(raw: str) -> str:
    """The address in normal form (domain lower-cased, IDNA-encoded), or SubscriberError.

    Addresses that need SMTPUTF8 (a non-ASCII local part) are refused: many relays still
    reject them, and a digest that silently fails for some readers is worse than a clear error.
    """
    try:
        valid = validate_email(raw.strip(), check_deliverability=False, allow_smtputf8=False)
        return str(valid.ascii_email or valid.normalized)
    except EmailNotValidError as err:
        raise SubscriberError(f"'{raw}' is not a valid email address ({err})") from err


def clean_name(raw: str) -> str:
    """A display name safe for a header: trimmed, without control characters."""
    name = raw.strip()
    if CONTROL.search(name):
        raise SubscriberError("the name contains control characters")
    if len(name) > MAX_NAME_LENGTH:
        raise SubscriberError(f"the name is longer than {MAX_NAME_LENGTH} characters")
    return name


@dataclass
class CsvRead:
    """The good rows of a subscriber CSV and one message per bad row (file:line: reason)."""

    subscribers: list[Subscriber] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    duplicates: int = 0


def read_subscriber_csv(path: Path) -> CsvRead:
    """Read `path`; a missing file or header is an error, a bad row is reported and skipped."""
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as err:
        raise SubscriberError(f"cannot read subscriber list {path}: {err.strerror}") from err
    with handle:
        reader = csv.DictReader(handle)
        try:
            return _read_rows(path, reader)
        except UnicodeDecodeError as err:
            raise SubscriberError(
                f"{path}: line {_first_bad_line(path)}: not UTF-8 text ({_encoding_hint(path)}); "
                'save it as UTF-8 ("CSV UTF-8" in a spreadsheet) and import again'
            ) from err
        except csv.Error as err:  # the row being read when it failed is the next line
            raise SubscriberError(f"{path}: line {reader.line_num + 1}: {err}") from err


def _first_bad_line(path: Path) -> int:
    """The number of the first line that is not UTF-8 (text is decoded in blocks, so the
    error itself cannot say)."""
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            return number
    return 1


def _encoding_hint(path: Path) -> str:
    """What the file looks like instead: UTF-16 has a byte-order mark, Latin-1 does not."""
    with path.open("rb") as raw:
        start = raw.read(2)
    if start in (b"\xff\xfe", b"\xfe\xff"):
        return "it looks like UTF-16"
    return "perhaps Latin-1 or Windows-1252"


def _read_rows(path: Path, reader: csv.DictReader[str]) -> CsvRead:
    """The good rows and one message per bad row (file:line: reason)."""
    result = CsvRead()
    seen: set[str] = set()
    if reader.fieldnames is None or "email" not in reader.fieldnames:
        raise SubscriberError(
            f"{path}: line 1: the header must name an 'email' column (and optionally 'name' "
            "and 'status')"
        )
    for row in reader:
        try:
            address = normalise_address(row.get("email") or "")
            name = clean_name(row.get("name") or "")
            status = _status(row.get("status"))
        except SubscriberError as err:
            result.errors.append(f"{path}: line {reader.line_num}: {err}")
            continue
        if address_key(address) in seen:
            result.duplicates += 1
            continue
        seen.add(address_key(address))
        result.subscribers.append(Subscriber(email=address, name=name, status=status))
    return result


def _status(text: str | None) -> SubscriberStatus:
    """A row's status column (what `subscribers export` writes); empty or absent: active."""
    value = (text or "").strip().lower()
    if not value:
        return SubscriberStatus.ACTIVE
    try:
        return SubscriberStatus(value)
    except ValueError:
        known = ", ".join(status.value for status in SubscriberStatus)
        raise SubscriberError(f"status {text!r} is not one of {known}") from None


EXPORT_COLUMNS = ("email", "name", "status", "joined_at", "joined_via", "source", "confirmed_at")
"""What `subscribers export` writes: the list and each subscriber's consent record (an import
reads the first three and ignores the rest)."""


def write_subscriber_csv(path: Path, rows: Iterable[tuple[str, ...]]) -> int:
    """Write EXPORT_COLUMNS rows to `path`; returns how many were written."""
    count = 0
    try:
        handle = path.open("w", encoding="utf-8", newline="")
    except FileNotFoundError as err:
        raise SubscriberError(
            f"cannot write {path}: the folder {path.parent} does not exist (create it, or name "
            "another file)"
        ) from err
    except OSError as err:
        raise SubscriberError(f"cannot write {path}: {err.strerror}") from err
    with handle:
        writer = csv.writer(handle)
        writer.writerow(EXPORT_COLUMNS)
        for row in rows:
            writer.writerow(row)
            count += 1
    return count
