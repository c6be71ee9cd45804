"""DKIM settings and the key: check-config prints the TXT record to publish; a bad key, an
unset variable or a setting that cannot work is one line through the CLI; the signing domain
must align with From; the key never shows; the README's steps work as written.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from newsletter.cli import main
from newsletter.config import load_config, resolve_secrets
from newsletter.config.checks import dmarc_aligned

from .conftest import REPO
from .dkimkeys import (
    DOMAIN,
    KEY_ENV,
    PKCS1,
    PKCS8,
    RECORD_NAME,
    SELECTOR,
    SIGNING,
    UNSUBSCRIBE_SECRET,
    config_in,
    pem,
    published_key,
    secret_texts,
)
from .test_cli import one_line_error

AS_OF = "2024-07-16"
MAKE_KEY = "make one with `openssl genrsa -out dkim.pem 2048`"


@pytest.mark.parametrize(
    ("bits", "form", "count"),
    [(2048, PKCS8, 2), (2048, PKCS1, 2), (1024, PKCS8, 1)],
    ids=["2048-pkcs8", "2048-pkcs1", "1024-pkcs8"],
)
def test_check_config_prints_the_txt_record_to_publish(
    tmp_path, capsys, monkeypatch, dkim_key, bits, form, count
):
    """A value over 255 characters is split into quoted strings of 255 (RFC 1035 3.3)."""
    key = (
        dkim_key if bits == 2048 else rsa.generate_private_key(public_exponent=65537, key_size=bits)
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
    tmp_path, capsys, monkeypatch, dkim_key, content, message, command
):
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", UNSUBSCRIBE_SECRET)
    path = tmp_path / "dkim.pem"
    if content is not None:
        path.write_bytes(content(dkim_key))
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
    fast_cli, write_config, dkim_key, monkeypatch, capsys, caplog
):
    monkeypatch.setenv(KEY_ENV, pem(dkim_key).decode())
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", UNSUBSCRIBE_SECRET)
    config = str(write_config(dkim=SIGNING))
    caplog.set_level(logging.DEBUG)
    test_copy = ["send", "--config", config, "--as-of", AS_OF, "--test", "editor@example.net"]
    assert main([*test_copy, "--verbose"]) == 0
    assert main(["check-config", "--config", config, "--verbose"]) == 0
    shown = capsys.readouterr()
    logged = caplog.text
    assert f"Signing with DKIM as d={DOMAIN}, s={SELECTOR}" in logged  # the logs were captured
    secrets = resolve_secrets(load_config(Path(config)), {KEY_ENV: pem(dkim_key).decode()})
    for where in (shown.out, shown.err, logged, repr(secrets), repr(secrets.dkim_key)):
        assert not [text for text in secret_texts(dkim_key) if text in where]


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
