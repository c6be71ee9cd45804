"""Where replies come back: the bounce mailbox, a Maildir or an IMAP folder, read only.

Both readers answer the same two questions: which messages are there now (their keys: a
Maildir's unique names, an IMAP folder's UIDVALIDITY:UID), and one message's bytes with the
time it arrived (the file's delivery time, the server's INTERNALDATE). Nothing in the mailbox is
changed, flags included: the database remembers what was read. IMAP goes over TLS (implicit,
or STARTTLS) with the certificate verified; a failure is one MailboxError naming the mailbox.
"""

from __future__ import annotations

import contextlib
import imaplib
import mailbox
import re
import ssl
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from imap_tools import MailBox, MailBoxStartTls
from imap_tools.errors import ImapToolsError, MailboxFolderSelectError, MailboxLoginError

from newsletter.errors import MailboxError

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from imap_tools import BaseMailBox

    from newsletter.config import BouncesSection

_INTERNALDATE = re.compile(rb'INTERNALDATE "([^"]+)"')


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One message as the mailbox holds it."""

    key: str
    data: bytes
    received_at: datetime | None


class Inbox(Protocol):
    """A mailbox to read: its name, the keys of its messages, and one message."""

    name: str

    def keys(self) -> list[str]: ...

    def read(self, key: str) -> InboundMessage | None:
        """The message, or None when it went away since `keys` (moved or deleted)."""


class MaildirInbox:
    """A Maildir on this machine (the stdlib's reader; new/ and cur/ alike)."""

    def __init__(self, path: Path, name: str) -> None:
        self.name = name
        """What the database remembers this mailbox's messages by (mailbox_name)."""
        self.path = path
        if not path.is_dir():
            raise MailboxError(
                f"the Maildir {path} (bounces.maildir) does not exist or is not a folder: point "
                "it at the Maildir that receives the bounce address's mail"
            )
        missing = [sub for sub in ("cur", "new", "tmp") if not (path / sub).is_dir()]
        if missing:
            raise MailboxError(
                f"{path} (bounces.maildir) is not a Maildir: it has no {', '.join(missing)} "
                "folder(s); point it at the Maildir that receives the bounce address's mail"
            )
        self._box = mailbox.Maildir(path, factory=None, create=False)

    def keys(self) -> list[str]:
        try:
            return sorted(self._box.keys())
        except OSError as err:
            raise MailboxError(f"cannot read the Maildir {self.path}: {err.strerror}") from err

    def read(self, key: str) -> InboundMessage | None:
        try:
            data = self._box.get_bytes(key)
            arrived = self._box.get_message(key).get_date()
        except KeyError:
            return None
        except OSError as err:
            raise MailboxError(
                f"cannot read message {key} of the Maildir {self.path}: {err.strerror}"
            ) from err
        return InboundMessage(key, data, datetime.fromtimestamp(arrived, UTC))


def _arrival(response: bytes) -> datetime | None:
    found = _INTERNALDATE.search(response)
    if found is None:
        return None
    try:
        return datetime.strptime(found.group(1).decode().strip(), "%d-%b-%Y %H:%M:%S %z")
    except ValueError:
        return None


class ImapInbox:
    """An IMAP folder, through imap-tools' logged-in client; messages are fetched with PEEK,
    so their \\Seen flag stays as it was."""

    def __init__(self, section: BouncesSection, box: BaseMailBox) -> None:
        self.name = section.mailbox_name
        self._box = box
        self._folder = section.imap_folder
        self._validity = ""

    def keys(self) -> list[str]:
        try:
            status = self._box.folder.status(self._folder, ["UIDVALIDITY"])
            self._validity = str(status.get("UIDVALIDITY", ""))
            return [f"{self._validity}:{uid}" for uid in self._box.uids("ALL")]
        except (ImapToolsError, imaplib.IMAP4.error, OSError) as err:
            raise MailboxError(f"cannot list the messages of {self.name}: {err}") from err

    def read(self, key: str) -> InboundMessage | None:
        validity, _, uid = key.partition(":")
        if validity != self._validity:
            return None
        try:
            kind, data = self._box.client.uid("FETCH", uid, "(INTERNALDATE BODY.PEEK[])")
        except (imaplib.IMAP4.error, OSError) as err:
            raise MailboxError(f"cannot read message {uid} of {self.name}: {err}") from err
        found = [item for item in data if isinstance(item, tuple)] if kind == "OK" else []
        if not found:
            return None
        response, body = found[0]
        return InboundMessage(key, bytes(body), _arrival(bytes(response)))


def _connect(section: BouncesSection) -> BaseMailBox:
    """A TLS connection to the IMAP server, its certificate verified."""
    host, port = section.imap_host or "", section.imap_port
    where = f"the IMAP server {host}:{port} (bounces.imap_host)"
    context = ssl.create_default_context(
        cafile=str(section.imap_ca_file) if section.imap_ca_file else None
    )
    timeout = section.imap_timeout_s
    try:
        if section.imap_security == "starttls":
            return MailBoxStartTls(host, port, timeout=timeout, ssl_context=context)
        return MailBox(host, port, timeout=timeout, ssl_context=context)
    except ssl.SSLCertVerificationError as err:
        raise MailboxError(
            f"{where} has a TLS certificate that does not verify ({err.verify_message}): check "
            "bounces.imap_host, and for a private CA bounces.imap_ca_file"
        ) from err
    except (OSError, ValueError, ImapToolsError, imaplib.IMAP4.error) as err:
        raise MailboxError(
            f"cannot reach {where} over {section.imap_security.upper()} ({err}): check "
            "bounces.imap_host, imap_port and imap_security"
        ) from err


def _log_in(box: BaseMailBox, section: BouncesSection, password: str) -> None:
    where = f"the IMAP server {section.imap_host}:{section.imap_port}"
    try:
        box.login(section.imap_username or "", password, initial_folder=section.imap_folder)
    except MailboxFolderSelectError as err:
        raise MailboxError(
            f"{where} has no folder {section.imap_folder!r} for {section.imap_username} (check "
            "bounces.imap_folder)"
        ) from err
    except (MailboxLoginError, imaplib.IMAP4.error) as err:
        reply = err.command_result[1] if isinstance(err, MailboxLoginError) else err
        raise MailboxError(
            f"{where} refused the login of {section.imap_username} ({reply!s}): check "
            f"bounces.imap_username and the password in env var {section.imap_password_env}"
        ) from err


@contextmanager
def open_inbox(section: BouncesSection, password: str | None) -> Iterator[Inbox]:
    """The configured mailbox, open for reading until the block ends."""
    if section.maildir is not None:
        yield MaildirInbox(section.maildir, section.mailbox_name)
        return
    box = _connect(section)
    try:
        _log_in(box, section, password or "")
        yield ImapInbox(section, box)
    finally:
        with contextlib.suppress(ImapToolsError, imaplib.IMAP4.error, OSError):
            box.logout()  # a connection that is gone is closed either way
