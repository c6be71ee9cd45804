"""The config values that go into every message, checked; and URLs with their secrets masked.

A From:, Reply-To: or List-Unsubscribe value that the SMTP server would refuse, or a link base
that mails broken links, is a config error at load time rather than a failed Friday send.
Each check returns the value or raises ValueError with the reason (pydantic adds the key and
the value). `mask_url` is what may be printed or logged of a URL that can carry a password.
"""

from __future__ import annotations

import re
from email.utils import getaddresses, parseaddr
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email

from newsletter.models import CONTROL

MASK = "***"
_USERINFO = re.compile(r"^(?P<user>[^:@/]*):(?P<password>.*)@(?P<rest>[^@]*)$", re.DOTALL)
_SECRET_PARAM = re.compile(
    r"(?P<name>[?&][^=&#]*(?:pass|pwd|secret|token|key)[^=&#]*=)[^&#]*", re.I
)
_MAILTO_UNSAFE = set("?#%&")
_BRACKETED = re.compile(r"<([^<>]*)>$")


def has_control(value: str) -> bool:
    """Whether `value` holds a control character (models.CONTROL)."""
    return CONTROL.search(value) is not None


def _address(addr: str, value: str) -> str:
    """The addr-spec `addr` (of the config value `value`) if email-validator accepts it and it
    is ASCII (no SMTPUTF8 needed)."""
    try:
        valid = validate_email(addr, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as err:
        what = "" if addr == value else f" '{addr}'"
        raise ValueError(f"must be a valid email address{what} ({err})") from None
    if not addr.isascii():
        raise ValueError(
            f"the address must be ASCII: write '{addr}' as '{valid.ascii_email}' (the domain's "
            "xn-- form)"
        )
    return addr


def mailbox(value: str, example: str) -> str:
    """One mailbox, `Display Name <addr>` or a bare `addr`, exactly as a header will carry it."""
    if has_control(value):
        raise ValueError("must be one line without control characters (it goes into a mail header)")
    found = getaddresses([value])
    name, addr = parseaddr(value)
    text = value.strip()
    if len(found) > 1 and ("," in value or ";" in value):
        raise ValueError(
            f"must be one address such as '{example}' (quote a display name with a comma: "
            '"Digest, The" <...>)'
        )
    bracketed = _BRACKETED.search(text)
    if bracketed:
        _address(bracketed[1], value)
    if found != [(name, addr)] or (text != addr and not bracketed) or " " in addr:
        raise ValueError(f"must be 'Name <address>' or a bare address, such as '{example}'")
    _address(addr, value)
    return value


def bare_address(value: str, example: str) -> str:
    """An addr-spec alone (no display name, no <>), as SMTP's RCPT TO and mailto: links take it."""
    if has_control(value):
        raise ValueError("must be one line without control characters (it goes into a mail header)")
    if value != value.strip() or "<" in value or ">" in value:
        raise ValueError(f"must be a bare address such as {example} (no display name, no <>)")
    return _address(value, value)


def mailto_address(value: str, example: str) -> str:
    """A bare address that can stand in a mailto: link without escaping."""
    bare_address(value, example)
    unsafe = sorted(_MAILTO_UNSAFE & set(value))
    if unsafe:
        raise ValueError(
            f"must not contain {' or '.join(unsafe)}: it would break the mailto: link of "
            f"List-Unsubscribe; use an address such as {example}"
        )
    return value


def https_url(value: str) -> str:
    """An absolute https:// URL with a host, to which paths are appended; no trailing slash."""
    if any(char.isspace() for char in value) or has_control(value):
        raise ValueError("must be a URL without spaces or control characters")
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises ValueError for a port that is not a number
    except ValueError as err:
        raise ValueError(f"must be an absolute https:// URL ({err})") from None
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(
            "must be an absolute https:// URL with a host, such as https://digest.example.com"
        )
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry a user or password (every email would show it)")
    if parts.query or parts.fragment or value.endswith(("?", "#")):
        raise ValueError(
            "must not have a ?query or #fragment (the links' paths are appended to it)"
        )
    return value.rstrip("/")


def dmarc_aligned(signing_domain: str, from_domain: str) -> bool:
    """Whether a DKIM signature by `signing_domain` passes DMARC for mail From `from_domain`:
    relaxed alignment (RFC 7489 3.1.1) takes names of one organisational domain; without the
    public-suffix list this accepts the same name, or one a subdomain of the other."""
    signing, sender = signing_domain.lower().rstrip("."), from_domain.lower().rstrip(".")
    return signing == sender or sender.endswith("." + signing) or signing.endswith("." + sender)


def mask_url(url: str) -> str:
    """`url` with its password (user:PASSWORD@host) and password-like query values as ***.

    Everything up to the last '@' after the user name counts as the password, so a password with
    an unescaped '@', ':' or '/' is hidden whole; a value that is not a URL is masked the same way.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    match = _USERINFO.match(rest)
    if match:
        rest = f"{match['user']}:{MASK}@{match['rest']}"
    masked = f"{scheme}{sep}{rest}"
    return _SECRET_PARAM.sub(lambda found: found["name"] + MASK, masked)
