"""Reading config.yaml into a Config, and the secrets it names from the environment.

Relative paths resolve against the config file's folder. Every problem becomes one ConfigError
naming the file and the dotted key. Secrets never live in the file: it names the environment
variables that hold them.
"""

from __future__ import annotations

import difflib
import reprlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from newsletter.config.checks import mask_url
from newsletter.config.dkim import DkimKey, parse_dkim_key
from newsletter.config.sections import Config
from newsletter.errors import ConfigError

_SHORT = reprlib.Repr()
"""The offending value as an error quotes it: one short line, however large or deep it is."""
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother = 3, 120, 120
_SECRET_KEYS = {"database.url"}

_PATH_KEYS = (
    ("market", "snapshot_dir"),
    ("market", "key_dates_file"),
    ("subscribers", "file"),
    ("smtp", "ca_file"),
    ("dkim", "private_key_file"),
    ("paths", "var_dir"),
    ("paths", "notes_dir"),
    ("templates", "dir"),
    ("bounces", "maildir"),
    ("bounces", "imap_ca_file"),
)


def _known_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        if name == "source":
            continue
        dotted = f"{prefix}{name}"
        keys.append(dotted)
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys.extend(_known_keys(annotation, f"{dotted}."))
    return keys


def _describe(error: dict[str, Any], label: str) -> str:
    key = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        close = difflib.get_close_matches(key, _known_keys(Config), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"{label}: unknown key '{key}'{hint}"
    message = str(error["msg"]).removeprefix("Value error, ")
    value = error.get("input")
    if error["type"] == "value_error" and isinstance(value, dict):
        # a whole section's problem (dkim's key sources): the message names the keys
        return f"{label}: {key}: {message}"
    if key in _SECRET_KEYS and isinstance(value, str):
        value = mask_url(value)
    return f"{label}: {key}: {message}, got {_SHORT.repr(value)}"


def _resolve_paths(raw: dict[str, Any], base: Path) -> None:
    for section, key in _PATH_KEYS:
        block = raw.get(section)
        if isinstance(block, dict) and isinstance(block.get(key), str):
            path = Path(block[key]).expanduser()
            block[key] = path if path.is_absolute() else base / path


def parse_config(raw: object, label: str, base: Path) -> Config:
    """Validate an already-parsed YAML document; `label` names it in messages."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{label}: the top level must be a mapping of sections, got {raw!r}")
    _resolve_paths(raw, base)
    paths = raw.setdefault("paths", {})
    if isinstance(paths, dict):
        paths.setdefault("var_dir", base / "var")
        paths.setdefault("notes_dir", base / "issues")
    try:
        return Config.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        more = len(err.errors()) - 1
        suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        raise ConfigError(_describe(dict(first), label) + suffix) from err


def load_config(path: Path) -> Config:
    """Read and validate `path`; every problem becomes a ConfigError naming the file and key."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise ConfigError(
            f"config file {path} not found (pass --config FILE, or run from the project folder)"
        ) from err
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror}") from err
    try:
        raw = yaml.safe_load(text)
        config = parse_config(raw, str(path), path.resolve().parent)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(
            f"{path}:{where} is not valid YAML ({getattr(err, 'problem', err)})"
        ) from err
    except RecursionError as err:
        raise ConfigError(
            f"{path}: the document is nested too deeply to read (hundreds of levels of brackets "
            "or indentation); a config file needs only sections and their keys"
        ) from err
    return config.model_copy(update={"source": path})


class Secrets(BaseModel):
    """Secrets read from the environment; repr never shows them."""

    model_config = ConfigDict(frozen=True)

    smtp_password: str | None = Field(default=None, repr=False)
    unsubscribe_key: bytes | None = Field(default=None, repr=False)
    dkim_key: DkimKey | None = Field(default=None, repr=False)
    imap_password: str | None = Field(default=None, repr=False)


def resolve_secrets(config: Config, environ: Mapping[str, str]) -> Secrets:
    """Read the secrets `config` names from `environ`; a required one that is unset is an error.

    The unsubscribe key may be unset only with the built-in capture server, where nothing
    leaves the machine (the send then signs with the project's local key and says so). With
    DKIM on, its private key is read and checked here too.
    """
    label = str(config.source or "config")
    password = None
    name = config.smtp.password_env
    if name:
        password = environ.get(name)
        if not password:
            raise ConfigError(
                f"SMTP password not found: env var {name} is unset (set it, or change smtp.password_env in {label})"
            )
    elif config.smtp.username:
        raise ConfigError(
            f"{label}: smtp.username is set but smtp.password_env is not; name the variable holding the password"
        )
    key_name = config.newsletter.unsubscribe_secret_env
    key = environ.get(key_name)
    if not key and not config.smtp.is_builtin:
        raise ConfigError(
            f"unsubscribe secret not found: env var {key_name} is unset (set it to a long random "
            f"string, or change newsletter.unsubscribe_secret_env in {label})"
        )
    imap_name = config.bounces.imap_password_env
    return Secrets(
        smtp_password=password,
        unsubscribe_key=key.encode() if key else None,
        dkim_key=_dkim_key(config, environ, label),
        imap_password=(environ.get(imap_name) or None) if imap_name else None,
    )


def _dkim_key(config: Config, environ: Mapping[str, str], label: str) -> DkimKey | None:
    """The DKIM private key from the env var or the file dkim names (None: DKIM is off)."""
    section = config.dkim
    if not section.enabled:
        return None
    path = section.private_key_file
    if path is not None:
        try:
            data = path.read_bytes()
        except OSError as err:
            raise ConfigError(
                f"cannot read the DKIM key {path}: {err.strerror} (dkim.private_key_file in "
                f"{label})"
            ) from err
        return parse_dkim_key(data, f"dkim.private_key_file {path}")
    name = section.private_key_env or ""  # the section asks for exactly one of the two
    pem = environ.get(name)
    if not pem:
        raise ConfigError(
            f"DKIM key not found: env var {name} is unset (set it to the PEM private key, or "
            f"change dkim.private_key_env in {label})"
        )
    return parse_dkim_key(pem.encode(), f"the DKIM key in env var {name}")


def require_imap_password(config: Config, secrets: Secrets) -> str | None:
    """The IMAP password the bounce mailbox needs (None: it is a Maildir, or none is set up).

    Not checked by resolve_secrets: an unset one stops reading the mailbox, never a send.
    """
    name = config.bounces.imap_password_env
    if not config.bounces.imap_host or name is None:
        return None
    if not secrets.imap_password:
        raise ConfigError(
            f"IMAP password not found: env var {name} is unset (set it, or change "
            f"bounces.imap_password_env in {config.source or 'config'})"
        )
    return secrets.imap_password
