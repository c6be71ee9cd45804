"""STARTTLS and implicit TLS with AUTH, certificates made by trustme; verification stays on."""

from __future__ import annotations

import ssl
from contextlib import contextmanager

import pytest
import trustme
import yaml
from aiosmtpd.smtp import AuthResult, LoginPassword

from newsletter.app.send import send_issue
from newsletter.config import Secrets, load_config
from newsletter.errors import DeliveryError

from .conftest import REPO, now_utc, serving
from .smtpfaults import ScriptedHandler

USER, PASSWORD = "digest", "correct horse battery staple"


@pytest.fixture(scope="module")
def built(build_day):
    return build_day("2024-07-16")


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


def authenticate(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False)


@contextmanager
def tls_server(ca, handler, implicit: bool):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    # aiosmtpd offers AUTH only after STARTTLS, not on implicit TLS.
    options = (
        {"ssl_context": context}
        if implicit
        else {
            "tls_context": context,
            "require_starttls": True,
            "authenticator": authenticate,
            "auth_required": True,
        }
    )
    with serving(handler, **options) as port:
        yield port


def configure(tmp_path, port, security, ca_file=None, *, auth=True):
    smtp = {"host": "127.0.0.1", "port": port, "security": security, "timeout_s": 5}
    if auth:
        smtp |= {"username": USER, "password_env": "NL_TEST_SMTP_PASSWORD"}
    if ca_file:
        smtp["ca_file"] = str(ca_file)
    path = tmp_path / "config.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "templates": {"dir": str(REPO / "templates")},
                "paths": {"var_dir": str(tmp_path / "var")},
                "smtp": smtp,
                "delivery": {"connections": 2, "retry_backoff_s": 0},
            }
        )
    )
    return load_config(path)


@pytest.mark.parametrize(("security", "implicit"), [("starttls", False), ("tls", True)])
def test_tls_and_auth_deliver(built, ca, tmp_path, security, implicit):
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    handler = ScriptedHandler()
    with tls_server(ca, handler, implicit) as port:
        config = configure(tmp_path, port, security, ca_file, auth=not implicit)
        result = send_issue(
            config,
            built,
            secrets=Secrets(smtp_password=PASSWORD, unsubscribe_key=b"k" * 32),
            clock=now_utc,
        )
    assert result.ledger == {"sent": 5}
    assert len(handler.stored) == 5


def test_a_wrong_password_stops_the_run(built, ca, tmp_path):
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with tls_server(ca, ScriptedHandler(), implicit=False) as port:
        config = configure(tmp_path, port, "starttls", ca_file)
        with pytest.raises(DeliveryError, match=r"refused the run at auth: 535"):
            send_issue(
                config,
                built,
                secrets=Secrets(smtp_password="wrong", unsubscribe_key=b"k" * 32),
                clock=now_utc,
            )


def test_an_unverifiable_certificate_is_refused(built, ca, tmp_path):
    handler = ScriptedHandler()
    with tls_server(ca, handler, implicit=False) as port:
        config = configure(tmp_path, port, "starttls")  # the system's CAs do not know trustme's
        with pytest.raises(
            DeliveryError, match=r"refused the run at tls: TLS failed: CERTIFICATE_VERIFY_FAILED"
        ):
            send_issue(
                config,
                built,
                secrets=Secrets(smtp_password=PASSWORD, unsubscribe_key=b"k" * 32),
                clock=now_utc,
            )
    assert handler.stored == []
