"""The `bounces` section: the mailbox that receives bounces, complaints and mail to the
unsubscribe address, and the soft-bounce rule.

The mailbox is a Maildir on this machine or an IMAP folder reached over TLS (certificates
verified), never both; its password comes from the environment variable `imap_password_env`
names. `soft_limit` soft bounces within `soft_days` days bounce a subscriber.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

VERP_TOKEN_CHARS = 29
"""The length of the token VERP puts after `+` (mail/verp.py: 18 bytes in base32)."""
MAX_LOCAL_PART = 64
"""RFC 5321's limit on a local part, which `<bounce local part>+<token>` must keep to."""
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def bounce_local_part(value: str) -> str:
    """The bounce address's local part, checked to leave room for `+<token>` and to carry no
    `+` of its own (the token's separator)."""
    local = value.rpartition("@")[0]
    if "+" in local:
        raise ValueError(
            "must not contain '+': each message's envelope sender is <local part>+<token>@<domain>"
        )
    room = MAX_LOCAL_PART - 1 - VERP_TOKEN_CHARS
    if len(local) > room:
        raise ValueError(
            f"its local part must be at most {room} characters, so that <local part>+<token> "
            f"stays within {MAX_LOCAL_PART}"
        )
    return value


class BouncesSection(BaseModel):
    """Where bounces come back, and when soft bounces count as a bounce."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    maildir: Path | None = None
    imap_host: str | None = None
    imap_port: int = Field(default=993, ge=1, le=65535)
    imap_security: Literal["tls", "starttls"] = "tls"
    imap_username: str | None = None
    imap_password_env: str | None = None
    imap_folder: str = "INBOX"
    imap_ca_file: Path | None = None
    imap_timeout_s: float = Field(default=30.0, gt=0, le=600)
    soft_limit: int = Field(default=3, ge=1, le=100)
    soft_days: int = Field(default=30, ge=1, le=366)

    @field_validator("imap_password_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.match(value):
            raise ValueError("must be the name of an environment variable, such as IMAP_PASSWORD")
        return value

    @model_validator(mode="after")
    def _one_mailbox(self) -> Self:
        if self.maildir is not None and self.imap_host:
            raise ValueError("maildir and imap_host are both set: name one mailbox")
        if self.imap_host and not (self.imap_username and self.imap_password_env):
            raise ValueError(
                "imap_host needs imap_username and imap_password_env (the name of the "
                "environment variable that holds the password)"
            )
        return self

    @property
    def enabled(self) -> bool:
        """Whether a mailbox is configured (`newsletter bounces` and the schedule read it)."""
        return self.maildir is not None or bool(self.imap_host)

    @property
    def mailbox_name(self) -> str:
        """The mailbox as messages name it (and as the database remembers what it read)."""
        if self.maildir is not None:
            return f"Maildir {self.maildir}"
        return f"IMAP {self.imap_username}@{self.imap_host}:{self.imap_port}/{self.imap_folder}"
