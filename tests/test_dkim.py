"""DKIM: every message of a real send verifies with dkimpy against the key check-config tells
you to publish; a tampered header fails; without `dkim:` nothing changes; a bad key or setting
is one line; the key never shows.

The expected public key is DER-encoded here by hand from the key's numbers, and every expected
header list is written out, so nothing expected is read back from the code under test.
"""

from __future__ import annotations

import base64
import csv
import email
import logging
import mailbox
import re
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from pathlib import Path
from typing import TYPE_CHECKING

import dkim
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from newsletter.app.send import dry_run, send_issue, send_test
from newsletter.app.signing import message_signer
from newsletter.app.wiring import close_databases
from newsletter.cli import main
from newsletter.config import BUILTIN_SUBSCRIBERS, Config, Secrets, load_config, resolve_secrets
from newsletter.config.checks import dmarc_aligned
from newsletter.config.dkim import parse_dkim_key
from newsletter.mail.compose import MessageFactory, message_id
from newsletter.mail.unsubscribe import make_token
from newsletter.models import Subscriber

from .conftest import REPO
from .test_cli import one_line_error

if TYPE_CHECKING:
    from collections.abc import Callable

    from newsletter.app.built import BuiltIssue
    from newsletter.app.send import DryRun

DOMAIN, SELECTOR = "example.com", "rd2025"
RECORD_NAME = f"{SELECTOR}._domainkey.{DOMAIN}"
NOW = datetime(2024, 7, 16, 21, 5, tzinfo=UTC)
AS_OF = "2024-07-16"
UNSUBSCRIBE_SECRET = "test-secret-test-secret"
KEY_ENV = "NL_TEST_DKIM_KEY"
PKCS8 = serialization.PrivateFormat.PKCS8  # what OpenSSL 3's genrsa writes
PKCS1 = serialization.PrivateFormat.TraditionalOpenSSL  # what OpenSSL 1.x's genrsa wrote
ISSUE_HEADERS = (
    "from:to:subject:date:message-id:list-id:list-unsubscribe:list-unsubscribe-post:reply-to:"
    "mime-version:content-type"
)
MAKE_KEY = "make one with `openssl genrsa -out dkim.pem 2048`"


def _der(tag: int, body: bytes) -> bytes:
    size = len(body)
    if size < 0x80:
        return bytes([tag, size]) + body
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + body


def _der_integer(value: int) -> bytes:
    return _der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


RSA_ENCRYPTION = bytes.fromhex("06092a864886f70d010101") + bytes.fromhex("0500")
"""The algorithm identifier of an RSA key: OID 1.2.840.113549.1.1.1 and NULL parameters."""


def published_key(key: rsa.RSAPrivateKey) -> str:
    """The p= tag: the SubjectPublicKeyInfo of the key's modulus and exponent, in base64."""
    numbers = key.public_key().public_numbers()
    rsa_public = _der(0x30, _der_integer(numbers.n) + _der_integer(numbers.e))
    spki = _der(0x30, _der(0x30, RSA_ENCRYPTION) + _der(0x03, b"\x00" + rsa_public))
    return base64.b64encode(spki).decode()


def answering(key: rsa.RSAPrivateKey) -> Callable[..., bytes | None]:
    """A dkimpy dnsfunc that knows one TXT record: the test key's, at RECORD_NAME."""
    record = f"v=DKIM1; k=rsa; p={published_key(key)}".encode()

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return record if name == f"{RECORD_NAME}.".encode() else None

    return lookup


def pem(key: rsa.RSAPrivateKey, form: serialization.PrivateFormat = PKCS8) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, form, serialization.NoEncryption())


def secret_texts(key: rsa.RSAPrivateKey) -> list[str]:
    """What would give the private key away: its PEM lines in either form (but those that only
    encode the public modulus, which the DNS record shows too), its secret numbers."""
    public = published_key(key)
    lines = {
        line
        for form in (PKCS8, PKCS1)
        for line in pem(key, form).decode().splitlines()
        if not line.startswith("-----") and line not in public
    }
    numbers = key.private_numbers()
    return [*lines, str(numbers.d), str(numbers.p), f"{numbers.d:x}"]


def tags(raw: bytes) -> dict[str, str]:
    """The DKIM-Signature's tags, whitespace removed."""
    value = str(email.message_from_bytes(raw, policy=policy.compat32)["DKIM-Signature"])
    return dict(tag.split("=", 1) for tag in re.sub(r"\s+", "", value).split(";") if tag)


def unsigned(raw: bytes) -> bytes:
    """`raw` without the DKIM-Signature in front (its first line and continuation lines)."""
    assert raw.startswith(b"DKIM-Signature: ")
    return re.sub(rb"\ADKIM-Signature: [^\r]*\r\n(?:[ \t][^\r]*\r\n)*", b"", raw)


def readers() -> list[tuple[str, str]]:
    with BUILTIN_SUBSCRIBERS.open(newline="") as handle:
        return [(row["email"], row["name"]) for row in csv.DictReader(handle)]


def config_in(root: Path, **sections: dict[str, object]) -> Config:
    raw = {
        "templates": {"dir": str(REPO / "templates")},
        "paths": {"var_dir": str(root / "var")},
        **sections,
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_config(path)


def received(config: Config) -> list[bytes]:
    """The messages in the capture server's Maildir, without the two trace lines it adds."""
    outbox = mailbox.Maildir(config.outbox_dir, create=False)
    messages = []
    for key in outbox.iterkeys():
        trace_from, trace_to, message = outbox.get_bytes(key).split(b"\r\n", 2)
        assert trace_from.startswith(b"X-Envelope-From: ")
        assert trace_to.startswith(b"X-Envelope-To: ")
        messages.append(message)
    return messages


def composed(config: Config, built: BuiltIssue) -> list[bytes]:
    """The issue's messages as compose builds them for the sample readers, unsigned."""
    info = config.newsletter
    factory = MessageFactory(built.rendered, info, NOW)
    return [
        factory.build(
            Subscriber(address, name),
            message_id(info.list_id, AS_OF, address),
            make_token(UNSUBSCRIBE_SECRET.encode(), info.list_id, address),
        )
        for address, name in readers()
    ]


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass(frozen=True)
class SignedSend:
    config: Config
    issue: list[bytes]
    test_copy: bytes
    planned: DryRun


@pytest.fixture(scope="module")
def signed_send(tmp_path_factory, build_day, rsa_key) -> SignedSend:
    """A dry run, the real send of the 2024-07-16 issue and a test copy, with DKIM on, through
    the built-in capture server (once for this module's tests)."""
    root = tmp_path_factory.mktemp("dkim-send")
    (root / "dkim.pem").write_bytes(pem(rsa_key))
    config = config_in(
        root,
        newsletter={"reply_to": "Editor <editor@example.com>"},
        dkim={"domain": DOMAIN, "selector": SELECTOR, "private_key_file": "dkim.pem"},
    )
    secrets = resolve_secrets(config, {"NEWSLETTER_UNSUBSCRIBE_SECRET": UNSUBSCRIBE_SECRET})
    built = build_day(AS_OF)
    planned = dry_run(config, built, secrets=secrets, clock=lambda: NOW)
    send_issue(config, built, secrets=secrets, clock=lambda: NOW)
    issue = received(config)
    send_test(config, built, "editor@example.net", secrets=secrets, clock=lambda: NOW)
    [test_copy] = [message for message in received(config) if message not in issue]
    close_databases()
    return SignedSend(config, issue, test_copy, planned)


def test_every_message_of_a_real_send_verifies_against_the_published_key(signed_send, rsa_key):
    assert len(signed_send.issue) == len(readers())
    for raw in [*signed_send.issue, signed_send.test_copy]:
        assert dkim.verify(raw, dnsfunc=answering(rsa_key))
        signature = tags(raw)
        assert signature["h"] == ISSUE_HEADERS
        assert (signature["d"], signature["s"]) == (DOMAIN, SELECTOR)
        assert (signature["a"], signature["c"]) == ("rsa-sha256", "relaxed/relaxed")
        assert not re.search(rb"^\.", raw, re.MULTILINE)  # SMTP sends it without dot-stuffing
    assert b"Subject: [TEST] " in signed_send.test_copy


def test_signing_puts_one_header_in_front_of_the_bytes_compose_made(signed_send, build_day):
    """Nothing after signing folds or re-encodes a header: the rest is compose's bytes."""
    expected = composed(signed_send.config, build_day(AS_OF))
    assert sorted(unsigned(raw) for raw in signed_send.issue) == sorted(expected)
    assert signed_send.planned.messages == len(readers())
    assert signed_send.planned.size == sum(len(raw) for raw in signed_send.issue)


def _replace_header(name: bytes, value: bytes) -> Callable[[bytes], bytes]:
    pattern = re.compile(rb"(\r\n" + name + rb":)[^\r]*(\r\n[ \t][^\r]*)*")
    return lambda raw: pattern.sub(lambda found: found[1] + b" " + value, raw, count=1)


TAMPERING = [
    pytest.param(
        lambda raw: raw.replace(b"List-Unsubscribe-Post: ", b"List-Unsubscribe-Post:\r\n   "),
        True,
        id="refolded-by-a-relay",
    ),
    pytest.param(
        _replace_header(b"List-Unsubscribe-Post", b"List-Unsubscribe=Two-Click"),
        False,
        id="list-unsubscribe-post-changed",
    ),
    pytest.param(
        lambda raw: re.sub(rb"\r\nList-Unsubscribe-Post: [^\r]*", b"", raw),
        False,
        id="list-unsubscribe-post-removed",
    ),
    pytest.param(_replace_header(b"Subject", b"You won a prize"), False, id="subject-changed"),
    pytest.param(
        _replace_header(b"List-Unsubscribe", b"<https://evil.example.net/u/x>"),
        False,
        id="list-unsubscribe-changed",
    ),
    pytest.param(
        lambda raw: raw.replace(b"\r\n\r\n", b"\r\n\r\nInjected preamble\r\n", 1),
        False,
        id="body-changed",
    ),
]


@pytest.mark.parametrize(("tamper", "verifies"), TAMPERING)
def test_a_tampered_message_fails_verification(signed_send, rsa_key, tamper, verifies):
    raw = signed_send.issue[0]
    assert dkim.verify(raw, dnsfunc=answering(rsa_key))
    changed = tamper(raw)
    assert changed != raw
    assert dkim.verify(changed, dnsfunc=answering(rsa_key)) is verifies


MINIMAL = (
    b"From: Rotation Digest <digest@example.com>\r\n"
    b"To: reader@example.org\r\n"
    b"Subject: Welcome\r\n"
    b"Date: Tue, 16 Jul 2024 21:05:00 +0000\r\n"
    b"Message-ID: <welcome.1@rotation-digest.example.com>\r\n"
)
BODY = b'MIME-Version: 1.0\r\nContent-Type: text/plain; charset="utf-8"\r\n\r\nHello.\r\n'


@pytest.mark.parametrize(
    ("extra", "signed"),
    [
        pytest.param(b"", "from:to:subject:date:message-id:mime-version:content-type", id="bare"),
        pytest.param(
            b"List-Unsubscribe: <https://digest.example.com/u/t>\r\nX-Mailer: test\r\n",
            "from:to:subject:date:message-id:list-unsubscribe:mime-version:content-type",
            id="no-list-unsubscribe-post",
        ),
        pytest.param(
            b"reply-to: editor@example.com\r\nList-Id: Rotation Digest <rd.example.com>\r\n",
            "from:to:subject:date:message-id:list-id:reply-to:mime-version:content-type",
            id="lower-case-name",
        ),
    ],
)
def test_a_message_signs_only_the_listed_headers_it_has(rsa_key, extra, signed):
    config = Config.model_validate(
        {"dkim": {"domain": DOMAIN, "selector": SELECTOR, "private_key_env": KEY_ENV}}
    )
    secrets = Secrets(dkim_key=parse_dkim_key(pem(rsa_key), "the test key"))
    raw = message_signer(config, secrets)(MINIMAL + extra + BODY)
    assert unsigned(raw) == MINIMAL + extra + BODY
    assert tags(raw)["h"] == signed
    assert dkim.verify(raw, dnsfunc=answering(rsa_key))


def test_without_dkim_a_send_leaves_every_message_as_composed(tmp_path, build_day):
    config = config_in(tmp_path)
    secrets = resolve_secrets(config, {"NEWSLETTER_UNSUBSCRIBE_SECRET": UNSUBSCRIBE_SECRET})
    assert secrets.dkim_key is None
    built = build_day(AS_OF)
    send_issue(config, built, secrets=secrets, clock=lambda: NOW)
    close_databases()
    assert sorted(received(config)) == sorted(composed(config, built))
    assert message_signer(config, secrets)(MINIMAL + BODY) == MINIMAL + BODY


@pytest.mark.parametrize(
    ("bits", "form", "count"),
    [(2048, PKCS8, 2), (2048, PKCS1, 2), (1024, PKCS8, 1)],
    ids=["2048-pkcs8", "2048-pkcs1", "1024-pkcs8"],
)
def test_check_config_prints_the_txt_record_to_publish(
    tmp_path, capsys, monkeypatch, rsa_key, bits, form, count
):
    """A value over 255 characters is split into quoted strings of 255 (RFC 1035 3.3)."""
    key = (
        rsa_key if bits == 2048 else rsa.generate_private_key(public_exponent=65537, key_size=bits)
    )
    monkeypatch.setenv(KEY_ENV, pem(key, form).decode())
    config = config_in(
        tmp_path, dkim={"domain": DOMAIN, "selector": SELECTOR, "private_key_env": KEY_ENV}
    )
    assert main(["check-config", "--config", str(config.source)]) == 0
    out = capsys.readouterr().out
    value = f"v=DKIM1; k=rsa; p={published_key(key)}"
    strings = [string for string in (value[:255], value[255:510], value[510:]) if string]
    assert len(strings) == count
    quoted = " ".join(f'"{string}"' for string in strings)
    assert f"\n{RECORD_NAME} TXT {quoted}\n" in out
    assert f"signed as d={DOMAIN}, s={SELECTOR} with a {bits}-bit RSA key" in out
    assert not [text for text in secret_texts(key) if text in out]


def test_check_config_says_when_dkim_is_off(tmp_path, capsys):
    config = config_in(tmp_path)
    assert main(["check-config", "--config", str(config.source)]) == 0
    assert "DKIM: off (set dkim.domain, dkim.selector and a key to sign" in capsys.readouterr().out


def _openssl_key(bits: int) -> bytes:
    """A key too short for cryptography to make (it refuses under 1024 bits)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    command = ["openssl", "genrsa", str(bits)]
    return subprocess.run(command, capture_output=True, check=True).stdout


BAD_KEYS = [
    pytest.param(
        lambda key: b"not a key\n",
        "dkim.private_key_file {path} is not a PEM private key (-----BEGIN PRIVATE KEY----- "
        f"...); {MAKE_KEY}",
        id="garbage",
    ),
    pytest.param(
        lambda key: key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "dkim.private_key_file {path} is not a PEM private key (-----BEGIN PRIVATE KEY----- "
        f"...); {MAKE_KEY}",
        id="public-key",
    ),
    pytest.param(
        lambda key: key.private_bytes(
            serialization.Encoding.PEM, PKCS8, serialization.BestAvailableEncryption(b"pw")
        ),
        "dkim.private_key_file {path} is encrypted; DKIM signing needs it unencrypted (openssl "
        "pkey -in KEY -out dkim.pem writes it so; keep that file readable by this user only)",
        id="encrypted",
    ),
    pytest.param(
        lambda key: ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, PKCS8, serialization.NoEncryption()
        ),
        "dkim.private_key_file {path} is not an RSA key (Ed25519 signatures are not made here, "
        "and many receivers cannot verify them alone): make an RSA key with `openssl genrsa "
        "-out dkim.pem 2048`",
        id="ed25519",
    ),
    pytest.param(
        lambda key: _openssl_key(768),
        "dkim.private_key_file {path} is a 768-bit RSA key; receivers ignore signatures by keys "
        "under 1024 bits (RFC 8301): make a 2048-bit one with `openssl genrsa -out dkim.pem 2048`",
        id="768-bit",
    ),
    pytest.param(
        None,
        "cannot read the DKIM key {path}: No such file or directory (dkim.private_key_file in "
        "{config})",
        id="missing",
    ),
]


@pytest.mark.parametrize(("content", "message"), BAD_KEYS)
@pytest.mark.parametrize("command", ["check-config", "send"])
def test_a_bad_key_file_is_one_line(
    tmp_path, capsys, monkeypatch, rsa_key, content, message, command
):
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", UNSUBSCRIBE_SECRET)
    path = tmp_path / "dkim.pem"
    if content is not None:
        path.write_bytes(content(rsa_key))
    config = config_in(
        tmp_path, dkim={"domain": DOMAIN, "selector": SELECTOR, "private_key_file": "dkim.pem"}
    )
    argv = [command, "--config", str(config.source)] + (
        ["--as-of", AS_OF] if command == "send" else []
    )
    assert main(argv) == 2
    assert one_line_error(capsys) == "Error: " + message.format(path=path, config=config.source)
    assert not (tmp_path / "var" / "issues").exists()  # refused before anything was built


def test_an_unset_key_variable_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    config = config_in(
        tmp_path, dkim={"domain": DOMAIN, "selector": SELECTOR, "private_key_env": KEY_ENV}
    )
    assert main(["check-config", "--config", str(config.source)]) == 2
    assert one_line_error(capsys) == (
        f"Error: DKIM key not found: env var {KEY_ENV} is unset (set it to the PEM private key, "
        f"or change dkim.private_key_env in {config.source})"
    )


SIGNING = {"domain": DOMAIN, "selector": SELECTOR, "private_key_env": KEY_ENV}
BAD_SETTINGS = [
    pytest.param(
        {"domain": DOMAIN, "private_key_env": KEY_ENV},
        "dkim: set both domain and selector to sign, or neither to send unsigned",
        id="no-selector",
    ),
    pytest.param(
        {"private_key_env": KEY_ENV},
        "dkim: private_key_env is set but domain and selector are not; set them to sign, or "
        "remove private_key_env",
        id="key-without-domain",
    ),
    pytest.param(
        {"domain": DOMAIN, "selector": SELECTOR},
        "dkim: signing needs exactly one of private_key_file (a PEM file) and private_key_env "
        "(the name of an env var holding the PEM)",
        id="no-key",
    ),
    pytest.param(
        {**SIGNING, "private_key_file": "dkim.pem"},
        "dkim: signing needs exactly one of private_key_file (a PEM file) and private_key_env "
        "(the name of an env var holding the PEM)",
        id="two-keys",
    ),
    pytest.param(
        {**SIGNING, "domain": "example"},
        "dkim.domain: must be a domain name such as example.com (ASCII, no trailing dot), got "
        "'example'",
        id="bad-domain",
    ),
    pytest.param(
        {**SIGNING, "selector": "rd 2025"},
        "dkim.selector: must be a DNS label such as rd2025 (letters, digits, inner hyphens; dots "
        "between labels), got 'rd 2025'",
        id="bad-selector",
    ),
    pytest.param(
        {**SIGNING, "domain": "example.org"},
        "dkim: domain example.org does not align with example.com, the domain of "
        "newsletter.from_address, so DMARC would fail: set dkim.domain to example.com (or a "
        "parent or subdomain of it)",
        id="not-aligned",
    ),
    pytest.param(
        {**SIGNING, "domain": "ample.com"},
        "dkim: domain ample.com does not align with example.com, the domain of "
        "newsletter.from_address, so DMARC would fail: set dkim.domain to example.com (or a "
        "parent or subdomain of it)",
        id="suffix-not-a-parent",
    ),
]


@pytest.mark.parametrize(("dkim_section", "message"), BAD_SETTINGS)
def test_a_dkim_setting_that_cannot_work_is_one_line(tmp_path, capsys, dkim_section, message):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"dkim": dkim_section}))
    assert main(["check-config", "--config", str(config)]) == 2
    assert one_line_error(capsys) == f"Error: {config}: {message}"


@pytest.mark.parametrize(
    ("signing", "sender", "aligned"),
    [
        ("example.com", "example.com", True),
        ("Example.COM", "example.com", True),
        ("example.com", "news.example.com", True),  # a parent: relaxed alignment
        ("mail.example.com", "example.com", True),  # a subdomain: the same organisation
        ("ample.com", "example.com", False),
        ("example.com", "example.com.evil.net", False),
        ("example.org", "example.com", False),
    ],
)
def test_dmarc_alignment(signing, sender, aligned):
    assert dmarc_aligned(signing, sender) is aligned


def test_the_key_never_shows_in_output_or_logs(
    fast_cli, write_config, rsa_key, monkeypatch, capsys, caplog
):
    monkeypatch.setenv(KEY_ENV, pem(rsa_key).decode())
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", UNSUBSCRIBE_SECRET)
    config = str(write_config(dkim=SIGNING))
    caplog.set_level(logging.DEBUG)
    test_copy = ["send", "--config", config, "--as-of", AS_OF, "--test", "editor@example.net"]
    assert main([*test_copy, "--verbose"]) == 0
    assert main(["check-config", "--config", config, "--verbose"]) == 0
    shown = capsys.readouterr()
    logged = caplog.text
    assert f"Signing with DKIM as d={DOMAIN}, s={SELECTOR}" in logged  # the logs were captured
    secrets = resolve_secrets(load_config(Path(config)), {KEY_ENV: pem(rsa_key).decode()})
    for where in (shown.out, shown.err, logged, repr(secrets), repr(secrets.dkim_key)):
        assert not [text for text in secret_texts(rsa_key) if text in where]


def _readme_blocks() -> dict[str, str]:
    """The README's DKIM section: its bash, yaml and output blocks by their fence's language."""
    section = (REPO / "README.md").read_text(encoding="utf-8").split("## DKIM\n", 1)[1]
    section = section.split("\n## ", 1)[0]
    return {kind: body for kind, body in re.findall(r"```(\w*)\n(.*?)```", section, re.S)}


def test_the_readme_dkim_steps_work_as_written(tmp_path, capsys, monkeypatch):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    blocks = _readme_blocks()
    subprocess.run(blocks["bash"], shell=True, cwd=tmp_path, check=True, capture_output=True)
    assert (tmp_path / "dkim.pem").stat().st_mode & 0o077 == 0
    config_in(tmp_path, **yaml.safe_load(blocks["yaml"]))
    assert main(["check-config", "--config", str(tmp_path / "config.yaml")]) == 0
    out = capsys.readouterr().out.splitlines()
    shown, record = blocks[""].splitlines()
    assert out[-2] == shown
    head, tail = record.split("…", 1)[0], record.rsplit("…", 1)[1]
    assert out[-1].startswith(head)
    assert out[-1].endswith(tail)
