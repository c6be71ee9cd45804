"""Signup with double opt-in: the form's post, the confirmation link, and forgetting a person.

The answer to a signup is the same whether the address is new, waiting for its confirmation,
subscribed already or gone (nobody can learn from it who is on the list); a filled-in honeypot
field is answered the same and does nothing. Only a client over its hourly limit is told so.
The confirmation link's GET shows a button (mail scanners follow links) and its POST confirms.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from secrets import token_urlsafe
from typing import TYPE_CHECKING

from newsletter.app.wiring import database
from newsletter.db import signup as signups
from newsletter.errors import SubscriberError
from newsletter.mail.addresses import clean_name, normalise_address
from newsletter.mail.confirm import make_confirm_token, read_confirm_token
from newsletter.models import NoticeKind

if TYPE_CHECKING:
    from datetime import datetime

    from newsletter.config import Config

SIGNUP_PATH = "/signup"
_PAGE = re.compile(r"^/[A-Za-z0-9/_.\-]{0,199}$")


@dataclass(frozen=True, slots=True)
class SignupForm:
    """What the form posted: the address, an optional name, the page it was on, and the
    honeypot field a person never sees (a bot fills it in)."""

    email: str
    name: str = ""
    page: str = SIGNUP_PATH
    honeypot: str = ""


class SignupAnswer(StrEnum):
    """What the signup page says next."""

    FORM = "form"
    """The empty form (nothing was posted yet)."""
    SENT = "sent"
    """"Check your inbox" (for every acceptable signup, whatever it did)."""
    LIMITED = "limited"
    """Too many signups from this client: try later (HTTP 429)."""
    INVALID = "invalid"
    """The address is not one: the form again, with the reason (HTTP 400)."""


@dataclass(frozen=True, slots=True)
class SignupResult:
    answer: SignupAnswer
    problem: str = ""


def client_key(key: bytes, client: str) -> str:
    """A keyed hash of the client's network (its IPv4 address, or its IPv6 /64, which one
    household holds), so the rate limit needs no IP address stored."""
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        network = client
    else:
        prefix = 64 if address.version == 6 else 32
        network = str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))
    return hmac.new(key, f"client\n{network}".encode(), hashlib.sha256).hexdigest()


def notice_message_id(config: Config, kind: NoticeKind) -> str:
    """A notice's Message-ID, fixed when it is queued (a resent copy carries the same)."""
    return f"<{kind}.{token_urlsafe(12)}@{config.newsletter.list_id}>"


def sign_up(
    config: Config, key: bytes, form: SignupForm, client: str, now: datetime
) -> SignupResult:
    """Take one signup: queue a confirmation mail when it is due (see the module docstring)."""
    try:
        email = normalise_address(form.email)
        name = clean_name(form.name)
    except SubscriberError as err:
        return SignupResult(SignupAnswer.INVALID, str(err))
    if form.honeypot:
        return SignupResult(SignupAnswer.SENT)
    page = form.page if _PAGE.match(form.page) else SIGNUP_PATH
    request = signups.SignupRequest(
        email,
        name,
        page,
        client_key(key, client),
        notice_message_id(config, NoticeKind.CONFIRM),
    )
    limits = signups.Limits(config.signup.per_client_per_hour, config.signup.per_address_per_day)
    outcome = signups.sign_up(database(config), request, limits, now)
    if outcome is signups.SignupOutcome.LIMITED:
        return SignupResult(SignupAnswer.LIMITED)
    return SignupResult(SignupAnswer.SENT)


def confirm_link(config: Config, key: bytes, notice_id: int, made: datetime) -> str:
    """The URL in a confirmation mail: good for signup.confirm_days after it was queued."""
    expires = int((made + timedelta(days=config.signup.confirm_days)).timestamp())
    token = make_confirm_token(key, config.newsletter.list_id, notice_id, expires)
    return f"{config.newsletter.base_url}/confirm/{token}"


class ConfirmState(StrEnum):
    """What a confirmation link's page shows."""

    ASK = "ask"
    """A button that confirms."""
    DONE = "done"
    ALREADY = "already"
    STALE = "stale"
    EXPIRED = "expired"
    INVALID = "invalid"


_STATES = {
    signups.Confirmation.CONFIRMED: ConfirmState.ASK,
    signups.Confirmation.ALREADY: ConfirmState.ALREADY,
    signups.Confirmation.STALE: ConfirmState.STALE,
    signups.Confirmation.INVALID: ConfirmState.INVALID,
}


def _pending(
    config: Config, key: bytes, token: str, now: datetime
) -> tuple[ConfirmState, int | None]:
    link = read_confirm_token(key, config.newsletter.list_id, token)
    if link is None:
        return ConfirmState.INVALID, None
    if link.expired(now.timestamp()):
        return ConfirmState.EXPIRED, None
    return ConfirmState.ASK, link.notice_id


def confirm_state(config: Config, key: bytes, token: str, now: datetime) -> ConfirmState:
    """What the link's GET shows; nothing changes."""
    state, notice_id = _pending(config, key, token, now)
    if notice_id is None:
        return state
    found = signups.peek(database(config), notice_id)
    return ConfirmState.INVALID if found is None else _STATES[found.state]


def confirm(config: Config, key: bytes, token: str, now: datetime) -> ConfirmState:
    """Use the link (its POST): the subscriber is active from now and gets a welcome mail."""
    state, notice_id = _pending(config, key, token, now)
    if notice_id is None:
        return state
    welcome = notice_message_id(config, NoticeKind.WELCOME)
    found = signups.confirm(database(config), notice_id, welcome, now)
    if found is None:
        return ConfirmState.INVALID
    if found.state is signups.Confirmation.CONFIRMED:
        return ConfirmState.DONE
    return _STATES[found.state]


def expire_signups(config: Config, now: datetime) -> int:
    """Erase signups never confirmed within signup.confirm_days; returns how many."""
    before = now - timedelta(days=config.signup.confirm_days)
    return signups.expire_unconfirmed(database(config), before)


def forget_subscriber(config: Config, email: str, now: datetime) -> tuple[str, bool]:
    """Erase a person from the list (a hash stays, so no import adds them again); (the
    normalised address, whether they were on the list)."""
    address = normalise_address(email)
    return address, signups.forget(database(config), address, now)
