"""The key that signs this list's links (unsubscribe, confirmation, VERP tokens): one place, so
what signs a link and what verifies it always agree. Light to import: `newsletter bounces` and
`serve` need it without the build's pandas and matplotlib."""

from __future__ import annotations

import logging
import os
from secrets import token_urlsafe
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from newsletter.config import Config, Secrets

logger = logging.getLogger(__name__)

LOCAL_KEY_FILE = "unsubscribe.key"


def local_unsubscribe_key(config: Config) -> bytes:
    """The key this project signs unsubscribe links with when nothing leaves the machine (the
    built-in server, no key in the environment): made once, kept in var/ readable by its owner
    only, so the links in the outbox work against `newsletter serve`."""
    path = config.paths.var_dir / LOCAL_KEY_FILE
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = token_urlsafe(32).encode()
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return path.read_bytes().strip()
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(key + b"\n")
    return key


def unsubscribe_key(config: Config, secrets: Secrets, *, warn: bool = True) -> bytes:
    """The key that signs unsubscribe links: from the environment, or (with the built-in
    server only, which resolve_secrets enforces) the project's local key, said so unless
    `warn` is off (a reader of links, not a sender of them)."""
    if secrets.unsubscribe_key is not None:
        return secrets.unsubscribe_key
    key = local_unsubscribe_key(config)
    if not warn:
        return key
    logger.warning(
        "%s is unset: unsubscribe links are signed with the local key %s (fine for the built-in "
        "server and newsletter serve; a real SMTP server needs the variable)",
        config.newsletter.unsubscribe_secret_env,
        config.paths.var_dir / LOCAL_KEY_FILE,
    )
    return key
