"""The last step of every message the product sends: its DKIM signature, when dkim is set.

Make one signer per run with `message_signer(config, secrets)` and pass each message's final
bytes through it, just before they go to SMTP: the issue, its test copy, and any other mail
the product sends. With no `dkim:` domain it returns the bytes unchanged.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from newsletter.errors import ConfigError
from newsletter.mail.dkim import DkimSigner

if TYPE_CHECKING:
    from collections.abc import Callable

    from newsletter.config import Config, Secrets

logger = logging.getLogger(__name__)


def dkim_signer(config: Config, secrets: Secrets) -> DkimSigner | None:
    """The run's DKIM signer (None: dkim is off); its key comes from `secrets`."""
    domain, selector = config.dkim.domain, config.dkim.selector
    if domain is None or selector is None:
        return None
    if secrets.dkim_key is None:
        raise ConfigError(
            f"dkim.domain is {domain} but no DKIM key was read: resolve the secrets of this "
            "config (resolve_secrets) before sending"
        )
    return DkimSigner(domain, selector, secrets.dkim_key)


def _unchanged(message: bytes) -> bytes:
    return message


def message_signer(config: Config, secrets: Secrets) -> Callable[[bytes], bytes]:
    """What turns a composed message into the bytes to send: signed with DKIM when dkim is set,
    else the same bytes."""
    signer = dkim_signer(config, secrets)
    if signer is None:
        return _unchanged
    logger.info("Signing with DKIM as d=%s, s=%s", signer.domain, signer.selector)
    return signer.sign
