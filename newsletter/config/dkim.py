"""DKIM's settings: the `dkim:` section, and its private key, checked once and never shown.

The key is parsed when the secrets are read (loading.resolve_secrets). A key that does not
load, is encrypted, is not RSA or is too short for receivers to trust is a ConfigError naming
where it came from and how to make a good one, at the first command that reads the secrets
(check-config, send, run, the scheduler's start) rather than at Friday's send.
`cryptography` reads every PEM form openssl writes (PKCS#1 "RSA PRIVATE KEY" from OpenSSL 1.x,
PKCS#8 "PRIVATE KEY" from OpenSSL 3); dkimpy signs with the key re-encoded as PKCS#1, and DNS
publishes its public half as a base64 SubjectPublicKeyInfo.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from newsletter.errors import ConfigError

MIN_RSA_BITS = 1024
"""RFC 8301 3.2: verifiers must not accept a signature made with a shorter RSA key."""
MAKE_KEY = "openssl genrsa -out dkim.pem 2048"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"(?=.{{1,253}}$)(?:{_LABEL}\.)+[A-Za-z]{{2,63}}")
_SELECTOR = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")


class DkimSection(BaseModel):
    """DKIM signing of every message: off until `domain` and `selector` are set, and then the
    private key comes from exactly one of a file or an environment variable (resolve_secrets
    reads and checks it; it is never printed)."""

    model_config = ConfigDict(extra="forbid", frozen=True)  # as every section (sections.py)

    domain: str | None = None
    selector: str | None = None
    private_key_file: Path | None = None
    private_key_env: str | None = None

    @property
    def enabled(self) -> bool:
        return self.domain is not None

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str | None) -> str | None:
        if value is not None and not _DOMAIN.fullmatch(value):
            raise ValueError("must be a domain name such as example.com (ASCII, no trailing dot)")
        return value.lower() if value else value

    @field_validator("selector")
    @classmethod
    def _selector(cls, value: str | None) -> str | None:
        if value is not None and not _SELECTOR.fullmatch(value):
            raise ValueError(
                "must be a DNS label such as rd2025 (letters, digits, inner hyphens; dots "
                "between labels)"
            )
        return value

    @model_validator(mode="after")
    def _complete(self) -> Self:
        sources = [name for name in ("private_key_file", "private_key_env") if getattr(self, name)]
        if (self.domain is None) != (self.selector is None):
            raise ValueError("set both domain and selector to sign, or neither to send unsigned")
        if self.domain is None and sources:
            raise ValueError(
                f"{sources[0]} is set but domain and selector are not; set them to sign, or "
                f"remove {sources[0]}"
            )
        if self.domain is not None and len(sources) != 1:
            raise ValueError(
                "signing needs exactly one of private_key_file (a PEM file) and private_key_env "
                "(the name of an env var holding the PEM)"
            )
        return self


@dataclass(frozen=True, slots=True)
class DkimKey:
    """An RSA private key ready for dkimpy; its repr shows only the size."""

    private_pem: bytes = field(repr=False)
    """PKCS#1 PEM, unencrypted: the form dkimpy reads."""
    public_key_b64: str
    """The public key as DNS publishes it (the p= tag): DER SubjectPublicKeyInfo in base64."""
    bits: int


def parse_dkim_key(pem: bytes, where: str) -> DkimKey:
    """The key in `pem`, which came from `where` (named in every error, the key never is)."""
    from cryptography.exceptions import UnsupportedAlgorithm  # noqa: PLC0415 (only with DKIM)
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: PLC0415

    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except TypeError:  # cryptography's way of saying that the key needs a password
        raise ConfigError(
            f"{where} is encrypted; DKIM signing needs it unencrypted (openssl pkey -in KEY "
            "-out dkim.pem writes it so; keep that file readable by this user only)"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(
            f"{where} is not a PEM private key (-----BEGIN PRIVATE KEY----- ...); make one "
            f"with `{MAKE_KEY}`"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(
            f"{where} is not an RSA key (Ed25519 signatures are not made here, and many "
            f"receivers cannot verify them alone): make an RSA key with `{MAKE_KEY}`"
        )
    if key.key_size < MIN_RSA_BITS:
        raise ConfigError(
            f"{where} is a {key.key_size}-bit RSA key; receivers ignore signatures by keys under "
            f"{MIN_RSA_BITS} bits (RFC 8301): make a 2048-bit one with `{MAKE_KEY}`"
        )
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public_der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return DkimKey(private_pem, base64.b64encode(public_der).decode(), key.key_size)
