"""What the DKIM tests share: the test key's names, the record DNS would answer with, config
files in a folder.

The expected public key is DER-encoded here by hand from the key's numbers (not by the code
under test, which asks `cryptography` for it).
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from cryptography.hazmat.primitives import serialization

from newsletter.config import Config, load_config

from .conftest import REPO

if TYPE_CHECKING:
    from collections.abc import Callable

    from cryptography.hazmat.primitives.asymmetric import rsa

DOMAIN, SELECTOR = "example.com", "rd2025"
RECORD_NAME = f"{SELECTOR}._domainkey.{DOMAIN}"
KEY_ENV = "NL_TEST_DKIM_KEY"
SIGNING = {"domain": DOMAIN, "selector": SELECTOR, "private_key_env": KEY_ENV}
UNSUBSCRIBE_SECRET = "test-secret-test-secret"
PKCS8 = serialization.PrivateFormat.PKCS8  # what OpenSSL 3's genrsa writes
PKCS1 = serialization.PrivateFormat.TraditionalOpenSSL  # what OpenSSL 1.x's genrsa wrote


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


def config_in(root: Path, **sections: dict[str, object]) -> Config:
    raw = {
        "templates": {"dir": str(REPO / "templates")},
        "paths": {"var_dir": str(root / "var")},
        **sections,
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_config(path)
