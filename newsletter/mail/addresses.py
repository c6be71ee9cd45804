"""Subscriber addresses: validation (email-validator, no DNS) and the CSV import/export format.

A CSV has an `email` column and optionally `name`. Reading never stops at a bad row: each bad
row is reported with its line number and reason, and the good rows are yielded one at a time.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from email_validator import EmailNotValidError, validate_email

from newsletter.errors import SubscriberError
from newsletter.models import CONTROL, Subscriber, SubscriberStatus, address_key

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
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


def _compact_key(address: str) -> int:
    """An address's key in 8 bytes, to tell repeats apart in a list of millions: a set of these
    takes about 70 bytes an address (two different addresses share one with a chance of about
    n^2 / 2^65: 3e-8 in a million)."""
    digest = hashlib.blake2b(address_key(address).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


@dataclass
class CsvRead:
    """A subscriber CSV, read a row at a time so that a list of any length takes little memory.

    `rows()` yields the good rows, each address once; as it goes, each bad row adds one message
    (file:line: reason) to `errors` and each repeat of an address counts in `duplicates`.
    """

    path: Path
    errors: list[str] = field(default_factory=list)
    duplicates: int = 0

    def rows(self) -> Iterator[Subscriber]:
        """The good rows, each address once, read as they are asked for (reading again starts
        the counts anew)."""
        self.errors.clear()
        self.duplicates = 0
        seen: set[int] = set()
        for line, row in _records(self.path):
            try:
                address = normalise_address(row.get("email") or "")
                name = clean_name(row.get("name") or "")
                status = _status(row.get("status"))
            except SubscriberError as err:
                self.errors.append(f"{self.path}: line {line}: {err}")
                continue
            key = _compact_key(address)
            if key in seen:
                self.duplicates += 1
                continue
            seen.add(key)
            yield Subscriber(email=address, name=name, status=status)


def read_subscriber_csv(path: Path) -> CsvRead:
    """The CSV at `path`, read through once first without judging its rows: a missing file or
    header, text that is not UTF-8 or broken CSV is a SubscriberError before any row is used
    (so a broken file imports nothing); a bad row is reported by `rows()` and skipped."""
    for _record in _records(path):
        pass
    return CsvRead(path)


def _records(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) of each row after the header; the file unreadable: SubscriberError."""
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as err:
        raise SubscriberError(f"cannot read subscriber list {path}: {err.strerror}") from err
    with handle:
        reader = csv.DictReader(handle)
        try:
            if reader.fieldnames is None or "email" not in reader.fieldnames:
                raise SubscriberError(
                    f"{path}: line 1: the header must name an 'email' column (and optionally "
                    "'name' and 'status')"
                )
            for row in reader:
                yield reader.line_num, row
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
